"""The product: what the shop sells, its price, and the stock on hand."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from domain.aggregate import Aggregate
from domain.errors import Issues, NotFound, OutOfStock
from domain.money import Money, canonical_amount

SKU_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_NAME = 200
MAX_DESCRIPTION = 5_000
MAX_STOCK = 1_000_000_000
SKU_RULE = "a SKU is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"


@dataclass(frozen=True, slots=True)
class ProductCreated:
    product_id: str
    sku: str
    name: str
    description: str
    price: Decimal
    currency: str
    stock: int


@dataclass(frozen=True, slots=True)
class ProductUpdated:
    """Carries every editable field as it is after the change, so applying it twice is harmless."""

    product_id: str
    name: str
    description: str
    price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class ProductRestocked:
    product_id: str
    quantity: int
    stock: int


@dataclass(frozen=True, slots=True)
class ProductDeleted:
    product_id: str


@dataclass(frozen=True, slots=True)
class StockReserved:
    """Stock set aside for an order when it is placed; `stock` is what remains."""

    product_id: str
    order_id: str
    quantity: int
    stock: int


@dataclass(frozen=True, slots=True)
class StockReleased:
    """Stock given back when an order is cancelled; `stock` is the result."""

    product_id: str
    order_id: str
    quantity: int
    stock: int


PRODUCT_EVENTS = (
    ProductCreated,
    ProductUpdated,
    ProductRestocked,
    ProductDeleted,
    StockReserved,
    StockReleased,
)


def _check_details(
    issues: Issues, name: str, description: str, price: Decimal, currency: str
) -> None:
    if not name.strip():
        issues.add("name", "a name is required")
    elif len(name) > MAX_NAME:
        issues.add("name", f"a name is at most {MAX_NAME} characters")
    if len(description) > MAX_DESCRIPTION:
        issues.add("description", f"a description is at most {MAX_DESCRIPTION} characters")
    Money.check(issues, price, currency, "price")


class Product(Aggregate):
    kind = "Product"

    def __init__(
        self,
        product_id: str,
        *,
        sku: str,
        name: str,
        description: str,
        price: Money,
        stock: int,
        deleted: bool = False,
        version: int = 0,
    ) -> None:
        super().__init__(product_id, version)
        self.sku = sku
        self.name = name
        self.description = description
        self.price = price
        self.stock = stock
        self.deleted = deleted

    @classmethod
    def create(
        cls,
        product_id: str,
        *,
        sku: str,
        name: str,
        description: str,
        price: Decimal,
        currency: str,
        stock: int,
    ) -> Product:
        issues = Issues()
        if not SKU_PATTERN.fullmatch(sku):
            issues.add("sku", SKU_RULE)
        _check_details(issues, name, description, price, currency)
        if stock < 0:
            issues.add("stock", "stock cannot be negative")
        elif stock > MAX_STOCK:
            issues.add("stock", f"stock is at most {MAX_STOCK}")
        issues.raise_if_any()
        price = canonical_amount(price)
        product = cls(
            product_id,
            sku=sku,
            name=name.strip(),
            description=description,
            price=Money(price, currency),
            stock=stock,
        )
        product._record(
            ProductCreated(product_id, sku, product.name, description, price, currency, stock)
        )
        return product

    def ensure_exists(self) -> None:
        """A deleted product is gone for every command, as it is for every query."""
        if self.deleted:
            raise NotFound(self.kind, self.id)

    def update(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        price: Decimal | None = None,
        currency: str | None = None,
    ) -> None:
        self.ensure_exists()
        new_name = self.name if name is None else name
        new_description = self.description if description is None else description
        new_price = self.price.amount if price is None else price
        new_currency = self.price.currency if currency is None else currency
        issues = Issues()
        _check_details(issues, new_name, new_description, new_price, new_currency)
        issues.raise_if_any()
        new_price = canonical_amount(new_price)
        self.name = new_name.strip()
        self.description = new_description
        self.price = Money(new_price, new_currency)
        self._record(ProductUpdated(self.id, self.name, self.description, new_price, new_currency))

    def restock(self, quantity: int) -> None:
        self.ensure_exists()
        issues = Issues()
        if quantity <= 0:
            issues.add("quantity", "a quantity is at least 1")
        elif self.stock + quantity > MAX_STOCK:
            issues.add(
                "quantity",
                f"stock is at most {MAX_STOCK}; this would take it to {self.stock + quantity}",
            )
        issues.raise_if_any()
        self.stock += quantity
        self._record(ProductRestocked(self.id, quantity, self.stock))

    def reserve(self, quantity: int, order_id: str) -> None:
        """Set stock aside for an order; all of it, or none and OutOfStock."""
        self.ensure_exists()
        if quantity > self.stock:
            raise OutOfStock(self.id, quantity, self.stock)
        self.stock -= quantity
        self._record(StockReserved(self.id, order_id, quantity, self.stock))

    def release(self, quantity: int, order_id: str) -> None:
        """Give back what an order reserved; a deleted product takes its stock back too."""
        self.stock += quantity
        self._record(StockReleased(self.id, order_id, quantity, self.stock))

    def delete(self) -> None:
        self.ensure_exists()
        self.deleted = True
        self._record(ProductDeleted(self.id))
