"""What a webhook is sent: one JSON body per delivery, made once when the event fans out and
sent unchanged at every attempt, so that its signature and a receiver's dedupe hold.

    {"id": "V2ViaG9va0RlbGl2ZXJ5OjEyMw==", "type": "ORDER_PLACED",
     "occurredAt": "2026-12-01T22:30:00.123456+00:00", "position": "42",
     "data": {"orderId": "T3JkZXI6b...", "customerId": "Q3VzdG9tZXI6Yw==", ...}}

`data` is the event as the log holds it, no more: its fields in camelCase, amounts as
decimal strings, and every entity id as the API's global id. Global ids are Relay's
(base64 of `Kind:id`, schema/ids.py); they are written here by the same rule, since
handlers do not import the schema, and tests/unit/test_webhook_payloads.py holds the two
to the same answers.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from domain.customers import Customer
from domain.orders import Order
from domain.products import Product

DELIVERY_KIND = "WebhookDelivery"
_KINDS = {f"{kind.lower()}_id": kind for kind in (Order.kind, Product.kind, Customer.kind)}
_DELIVERY_IDS = uuid.UUID("7f0c7a6e-6f0b-4d7e-9a51-5c1e0c9a4d21")


def global_id(kind: str, local_id: str) -> str:
    """Relay's global id, as the API shows it (schema/ids.global_id)."""
    return base64.b64encode(f"{kind}:{local_id}".encode()).decode()


def delivery_id(webhook_id: str, event_id: str) -> str:
    """A delivery's id: one per webhook and event, the same whenever it is made."""
    return uuid.uuid5(_DELIVERY_IDS, f"{webhook_id}:{event_id}").hex


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(event_type: type) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(event_type)
    if adapter is None:
        adapter = _ADAPTERS[event_type] = TypeAdapter(event_type)
    return adapter


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _public_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        _camel(key): global_id(_KINDS[key], value)
        if key in _KINDS and isinstance(value, str)
        else _public(value)
        for key, value in fields.items()
    }


def _public(value: object) -> object:
    if isinstance(value, dict):
        return _public_fields(value)
    if isinstance(value, list):
        return [_public(item) for item in value]
    return value


def event_data(event: object) -> dict[str, Any]:
    """The event's fields as a webhook shows them."""
    return _public_fields(_adapter(type(event)).dump_python(event, mode="json"))


def delivery_body(
    delivery: str,
    *,
    event_type: str,
    occurred_at: datetime,
    position: int,
    data: dict[str, Any],
) -> str:
    """The body of one delivery (`delivery` is its local id), as the text every attempt sends."""
    return json.dumps(
        {
            "id": global_id(DELIVERY_KIND, delivery),
            "type": event_type,
            "occurredAt": occurred_at.isoformat(),
            "position": str(position),
            "data": data,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
