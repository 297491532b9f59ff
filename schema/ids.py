"""Global ids (Relay): the opaque `ID`s clients see, and the local ids inside them."""

from __future__ import annotations

from strawberry import relay

from domain.errors import NotFound


def local_id(global_id: relay.GlobalID, kind: str) -> str:
    """The id inside a global id of `kind`; another type's id names nothing of that kind."""
    if global_id.type_name != kind:
        raise NotFound(kind, global_id.node_id)
    return global_id.node_id


def global_id(kind: str, entity_id: str) -> str:
    return str(relay.GlobalID(kind, entity_id))
