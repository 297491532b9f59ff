"""Every order event reaches each table that must know it: an event added to the domain
and forgotten here would silently skip the read model or the subscription."""

from __future__ import annotations

from domain.orders import ORDER_EVENTS, TRANSITIONS, OrderPlaced, OrderStatus
from handlers.orders.events import _ORDER_CHANGE_TYPES, OrderChangeType
from handlers.orders.read_model import _STATUS_AFTER


def test_every_order_event_is_a_subscription_event_type() -> None:
    assert set(_ORDER_CHANGE_TYPES) == set(ORDER_EVENTS)
    assert set(_ORDER_CHANGE_TYPES.values()) == set(OrderChangeType)


def test_every_move_is_projected_to_the_status_it_leaves() -> None:
    assert set(_STATUS_AFTER) == set(ORDER_EVENTS) - {OrderPlaced}
    reachable = {status for targets in TRANSITIONS.values() for status in targets}
    assert set(_STATUS_AFTER.values()) == reachable
    assert set(TRANSITIONS) == set(OrderStatus)
