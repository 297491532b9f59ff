"""Global ids (Relay): the opaque `ID`s clients see, and the local ids inside them."""

from __future__ import annotations

from strawberry import relay

from domain.aggregate import is_possible_id
from domain.errors import NotFound


def local_id(global_id: relay.GlobalID, kind: str) -> str:
    """The id inside a global id of `kind`; another type's id, or one no entity could have
    (empty, too long, a NUL), names nothing of that kind: a NotFoundError, as any unknown id
    is, rather than a ValidationError no result union of a command on it lists."""
    if global_id.type_name != kind or not is_possible_id(global_id.node_id):
        raise NotFound(kind, global_id.node_id)
    return global_id.node_id


def global_id(kind: str, entity_id: str) -> str:
    return str(relay.GlobalID(kind, entity_id))
