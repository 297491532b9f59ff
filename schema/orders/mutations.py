"""The mutations that place and move orders: each input makes its command, and each answers
its result union (schema/orders/results.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol, TypeVar

import strawberry

from handlers.orders import ConfirmOrder, DeliverOrder, ShipOrder
from handlers.written import Written
from mediator import Command
from schema.context import Info
from schema.errors import Error
from schema.messages import read_back, run_command
from schema.nodes import Order
from schema.orders.inputs import CancelOrderInput, ChangeOrderInput, PlaceOrderInput
from schema.orders.results import (
    CancelOrderResult,
    CancelOrderSuccess,
    ConfirmOrderResult,
    ConfirmOrderSuccess,
    DeliverOrderResult,
    DeliverOrderSuccess,
    PlaceOrderResult,
    PlaceOrderSuccess,
    ShipOrderResult,
    ShipOrderSuccess,
)

S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)


class _OrderSuccess(Protocol[S_co]):
    """A mutation's Success type, made from the order it wrote."""

    def __call__(self, *, order: Order) -> S_co: ...


async def order_result(
    info: Info,
    build: Callable[[], Command[Written]],
    success: _OrderSuccess[S],
    result: object,
) -> S | Error:
    """Send the command `build` makes: `success` with the order as the command wrote it, or
    the refusal as one of the errors the mutation's `result` union lists."""

    async def present(written: Written) -> S:
        loaders = info.context.loaders
        return success(order=Order.from_view(await read_back(loaders, loaders.orders, written)))

    return await run_command(info, build, present, result)


STAFF_MOVE = " Staff only: others get a NotAuthorizedError."


@strawberry.type
class OrderMutations:
    @strawberry.mutation(
        graphql_type=PlaceOrderResult,
        description="Place an order and reserve its stock, all lines or none. A customer "
        "orders for itself; staff name the customer (`customerId`).",
    )
    async def place_order(
        self,
        info: Info,
        input: Annotated[PlaceOrderInput, strawberry.argument(description="The order.")],
    ) -> PlaceOrderSuccess | Error:
        return await order_result(info, input.command, PlaceOrderSuccess, PlaceOrderResult)

    @strawberry.mutation(
        graphql_type=ConfirmOrderResult,
        description="Move a PENDING order to CONFIRMED." + STAFF_MOVE,
    )
    async def confirm_order(
        self,
        info: Info,
        input: Annotated[ChangeOrderInput, strawberry.argument(description="The order.")],
    ) -> ConfirmOrderSuccess | Error:
        return await order_result(
            info, lambda: input.command(ConfirmOrder), ConfirmOrderSuccess, ConfirmOrderResult
        )

    @strawberry.mutation(
        graphql_type=ShipOrderResult,
        description="Move a CONFIRMED order to SHIPPED." + STAFF_MOVE,
    )
    async def ship_order(
        self,
        info: Info,
        input: Annotated[ChangeOrderInput, strawberry.argument(description="The order.")],
    ) -> ShipOrderSuccess | Error:
        return await order_result(
            info, lambda: input.command(ShipOrder), ShipOrderSuccess, ShipOrderResult
        )

    @strawberry.mutation(
        graphql_type=DeliverOrderResult,
        description="Move a SHIPPED order to DELIVERED." + STAFF_MOVE,
    )
    async def deliver_order(
        self,
        info: Info,
        input: Annotated[ChangeOrderInput, strawberry.argument(description="The order.")],
    ) -> DeliverOrderSuccess | Error:
        return await order_result(
            info, lambda: input.command(DeliverOrder), DeliverOrderSuccess, DeliverOrderResult
        )

    @strawberry.mutation(
        graphql_type=CancelOrderResult,
        description="Cancel a PENDING or CONFIRMED order and give its stock back. Staff cancel "
        "any order, a customer its own.",
    )
    async def cancel_order(
        self,
        info: Info,
        input: Annotated[CancelOrderInput, strawberry.argument(description="The order.")],
    ) -> CancelOrderSuccess | Error:
        return await order_result(info, input.command, CancelOrderSuccess, CancelOrderResult)
