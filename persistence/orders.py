"""Where orders are kept on the write side."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, select

from domain.orders import Address, Order, OrderLine, OrderStatus
from persistence.repository import SqlRepository, versioned_update
from persistence.tables import orders


class OrderRepository(Protocol):
    async def get(self, order_id: str) -> Order | None: ...

    def add(self, order: Order) -> None: ...


def _line_json(line: OrderLine) -> dict[str, Any]:
    return {
        "product_id": line.product_id,
        "product_name": line.product_name,
        "unit_price": str(line.unit_price),
        "quantity": line.quantity,
    }


def _line(data: dict[str, Any]) -> OrderLine:
    return OrderLine(
        data["product_id"], data["product_name"], Decimal(data["unit_price"]), data["quantity"]
    )


_BY_ID = select(orders).where(orders.c.id == bindparam("id"))


class SqlOrderRepository(SqlRepository[Order]):
    table = orders
    updating = versioned_update(orders)

    async def get(self, order_id: str) -> Order | None:
        if order_id in self._seen:
            return self._seen[order_id]
        query = _BY_ID.with_for_update() if self._locks_rows else _BY_ID
        row = (await self._connection.execute(query, {"id": order_id})).one_or_none()
        if row is None:
            return None
        return self._track(
            Order(
                row.id,
                customer_id=row.customer_id,
                lines=[_line(line) for line in row.lines],
                currency=row.currency,
                shipping_address=Address(**row.shipping_address),
                special_instructions=row.special_instructions,
                status=OrderStatus(row.status),
                version=row.version,
            )
        )

    async def save(self, aggregate: Order) -> None:
        if aggregate.stored_version == 0:
            await self._connection.execute(
                insert(orders),
                {
                    "id": aggregate.id,
                    "customer_id": aggregate.customer_id,
                    "status": aggregate.status.value,
                    "currency": aggregate.currency,
                    "lines": [_line_json(line) for line in aggregate.lines],
                    "shipping_address": asdict(aggregate.shipping_address),
                    "special_instructions": aggregate.special_instructions,
                    "version": aggregate.version,
                },
            )
            return
        await self._update(aggregate, {"status": aggregate.status.value})
