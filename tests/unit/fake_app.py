"""The real mediator and pipeline (access, validation, transaction) over in-memory fakes."""

from __future__ import annotations

from functools import partial

from handlers import customers, orders, products
from handlers.access import Identity, Role, authorize
from handlers.transaction import in_transaction
from handlers.validation import validate_command
from mediator import Command, Context, Mediator, Registry, Request
from persistence.unit_of_work import UnitOfWork
from tests.unit.fakes import FakeStore, FakeUnitOfWork

POLICIES = {**products.POLICIES, **customers.POLICIES, **orders.POLICIES}


def sequential_ids(prefix: str) -> partial[str]:
    counter = iter(range(1, 1_000_000))
    return partial(lambda: f"{prefix}{next(counter)}")


def command_mediator(store: FakeStore) -> Mediator:
    def unit_of_work(_ctx: Context) -> UnitOfWork:
        return FakeUnitOfWork(store)

    registry = Registry()
    registry.behavior(authorize(POLICIES), applies_to=Request)
    registry.behavior(validate_command, applies_to=Command)
    registry.behavior(in_transaction(unit_of_work), applies_to=Command)
    registry.handle(
        products.CreateProduct, partial(products.create_product, new_id=sequential_ids("p"))
    )
    registry.handle(products.UpdateProduct, products.update_product)
    registry.handle(products.RestockProduct, products.restock_product)
    registry.handle(products.DeleteProduct, products.delete_product)
    registry.handle(
        customers.RegisterCustomer,
        partial(customers.register_customer, new_id=sequential_ids("c")),
    )
    registry.handle(orders.PlaceOrder, partial(orders.place_order, new_id=sequential_ids("o")))
    registry.handle(orders.ConfirmOrder, orders.confirm_order)
    registry.handle(orders.ShipOrder, orders.ship_order)
    registry.handle(orders.DeliverOrder, orders.deliver_order)
    registry.handle(orders.CancelOrder, orders.cancel_order)
    return registry.build()


def as_staff() -> Context:
    return Context(identity=Identity("staff-1", Role.STAFF))


def as_customer(customer_id: str) -> Context:
    return Context(identity=Identity(customer_id, Role.CUSTOMER))
