"""Products: the catalog's commands, queries, subscription stream and read model."""

from __future__ import annotations

from functools import partial

from domain.products import PRODUCT_EVENTS, Product
from handlers.access import Policy, anyone, staff
from handlers.feature import Feature, Wiring
from handlers.products.commands import (
    CreateProduct,
    DeleteProduct,
    RestockProduct,
    UpdateProduct,
    create_product,
    delete_product,
    restock_product,
    update_product,
)
from handlers.products.events import (
    VIEWS,
    ProductChange,
    ProductChangeType,
    WatchProducts,
    watch_products,
)
from handlers.products.queries import (
    GetProducts,
    ListProducts,
    ProductSort,
    ProductView,
    get_products,
    list_products,
    load_product_views,
)
from handlers.products.reactions import subscribe_alerts
from handlers.products.read_model import (
    PRODUCT_CATALOG,
    catalog_rows_touched,
    project_product_catalog,
)
from handlers.query_cache import Cached
from handlers.transaction import writes
from mediator import Registry

__all__ = [
    "CACHED",
    "EVENT_TYPES",
    "FEATURE",
    "IDEMPOTENT",
    "POLICIES",
    "PRODUCT_CATALOG",
    "VIEWS",
    "CreateProduct",
    "DeleteProduct",
    "GetProducts",
    "ListProducts",
    "ProductChange",
    "ProductChangeType",
    "ProductSort",
    "ProductView",
    "RestockProduct",
    "UpdateProduct",
    "WatchProducts",
    "catalog_rows_touched",
    "create_product",
    "delete_product",
    "get_products",
    "list_products",
    "load_product_views",
    "project_product_catalog",
    "register",
    "restock_product",
    "update_product",
    "watch_products",
]


def register(registry: Registry, wiring: Wiring) -> None:
    new_id = partial(wiring.ids, Product.kind)
    registry.handle(CreateProduct, writes(partial(create_product, new_id=new_id)))
    registry.handle(UpdateProduct, writes(update_product))
    registry.handle(RestockProduct, writes(restock_product))
    registry.handle(DeleteProduct, writes(delete_product))
    registry.handle(GetProducts, partial(get_products, read_engine=wiring.read_engine))
    # Lists count and search: reads whose cost grows with the data (database.create_engine).
    registry.handle(ListProducts, partial(list_products, read_engine=wiring.scan_engine))
    if wiring.tail is not None:
        registry.stream(
            WatchProducts,
            partial(
                watch_products, tail=wiring.tail, public_stock_events=wiring.public_stock_events
            ),
        )
    subscribe_alerts(registry, wiring)


EVENT_TYPES = PRODUCT_EVENTS
POLICIES: dict[type, Policy] = {
    CreateProduct: staff,
    UpdateProduct: staff,
    RestockProduct: staff,
    DeleteProduct: staff,
    GetProducts: anyone,
    ListProducts: anyone,
    WatchProducts: anyone,
}
# Not DeleteProduct: deleting again changes nothing (it is NotFound), so a retry is harmless.
IDEMPOTENT: dict[type, str] = {
    CreateProduct: Product.kind,
    UpdateProduct: Product.kind,
    RestockProduct: Product.kind,
}
# The catalog reads the same for every caller.
CACHED: dict[type, Cached] = {
    GetProducts: Cached(("product_catalog",), lambda q: q.ids, per_caller=False),
    ListProducts: Cached(("product_catalog",), per_caller=False),
}


FEATURE = Feature(
    "products",
    event_types=EVENT_TYPES,
    policies=POLICIES,
    register=register,
    idempotent=IDEMPOTENT,
    cached=CACHED,
    projections=(PRODUCT_CATALOG,),
    views=VIEWS,
)
