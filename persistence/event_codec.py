"""Turns domain events into JSON payloads for the event log, and back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter


class UnknownEventType(LookupError):
    pass


class EventCodec:
    """Knows every event class by name; the name is what the log stores as `event_type`."""

    def __init__(self) -> None:
        self._adapters: dict[str, TypeAdapter[Any]] = {}
        self._names: dict[type, str] = {}

    def register(self, event_types: Iterable[type]) -> None:
        for event_type in event_types:
            name = event_type.__name__
            if name in self._adapters:
                raise ValueError(f"two event types are named {name}")
            self._adapters[name] = TypeAdapter(event_type)
            self._names[event_type] = name

    def name_of(self, event: object) -> str:
        try:
            return self._names[type(event)]
        except KeyError:
            raise UnknownEventType(
                f"{type(event).__qualname__} is not a registered event"
            ) from None

    def encode(self, event: object) -> dict[str, Any]:
        payload: dict[str, Any] = self._adapters[self.name_of(event)].dump_python(
            event, mode="json"
        )
        return payload

    def decode(self, event_type: str, payload: dict[str, Any]) -> object:
        try:
            adapter = self._adapters[event_type]
        except KeyError:
            raise UnknownEventType(f"no event type is named {event_type}") from None
        return adapter.validate_python(payload)
