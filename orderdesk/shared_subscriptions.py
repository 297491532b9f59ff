"""Shared subscriptions: one execution per event for every socket that asked the same thing.

Strawberry runs each subscription's selection set once per event per subscriber; with a
thousand subscribers that is a thousand executions of the same query over the same data.
Subscriptions that are the same operation, with the same variables, for the same caller
(so the same access rules), and that do not replay from a cursor, are the same stream: it
is executed once, its `next` payload encoded once, and each socket sends that text with
its own operation id.

A subscription with `after` replays from its own cursor, so it runs on its own. Each
member has a bounded queue of frames; one that falls a whole queue behind is cut off with
SUBSCRIBER_TOO_SLOW (and, when its frames carry `position`, the cursor to resume from),
without slowing the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationType,
    get_operation_ast,
)
from graphql import parse as parse_document
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError

from orderdesk.operation_limits import Parse

logger = logging.getLogger("orderdesk.subscriptions")

Kind = Literal["next", "error", "complete"]


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    payload: str = ""
    """The message's payload, already JSON (for `next` and `error`)."""
    position: str | None = None


def _shareable(parse: Parse, query: str, operation_name: str | None) -> bool:
    """A subscription whose root fields take no `after` cursor."""
    try:
        document = parse(query)
    except GraphQLSyntaxError:
        return False
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.SUBSCRIPTION:
        return False
    return all(
        isinstance(selection, FieldNode)
        and not any(argument.name.value == "after" for argument in selection.arguments or ())
        for selection in operation.selection_set.selections
    )


class _Member:
    __slots__ = ("capacity", "frames", "overflowed", "ready")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.frames: deque[Frame] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False

    def offer(self, frame: Frame) -> None:
        if self.overflowed:
            return
        if len(self.frames) >= self.capacity and frame.kind == "next":
            self.overflowed = True
            self.frames.clear()
        else:
            self.frames.append(frame)
        self.ready.set()


@dataclass(eq=False)
class _Group:
    key: Hashable
    members: set[_Member] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    ended: bool = False


class SharedSubscriptions:
    def __init__(self, *, queue_size: int, parse: Parse = parse_document) -> None:
        """`parse` is the schema's where it has one: bounded by the token limit and cached."""
        self.queue_size = queue_size
        self._parse = parse
        self._groups: dict[Hashable, _Group] = {}
        self.fanned_out: Callable[[int], None] | None = None
        """Told how many sockets each event's frame went to (a metric; set by the app)."""

    def key(
        self,
        query: str,
        variables: dict[str, object] | None,
        operation_name: str | None,
        caller: object,
    ) -> Hashable | None:
        """The group a subscription belongs to, or None if it must run on its own."""
        if not _shareable(self._parse, query, operation_name):
            return None
        try:
            canonical = json.dumps(variables or {}, sort_keys=True)
            hash(caller)
        except (TypeError, ValueError):
            return None
        return (query, canonical, operation_name, caller)

    @property
    def group_count(self) -> int:
        return len(self._groups)

    async def follow(
        self,
        key: Hashable,
        start: Callable[[], Awaitable[Any]],
        send: Callable[[Frame], Awaitable[None]],
        cut_off: Callable[[str | None], Awaitable[None]],
    ) -> None:
        """Deliver the group's frames through `send` until it ends or the caller cancels.

        `start` begins the operation (Strawberry's `schema.stream`) if this caller is the
        group's first; `cut_off` tells a member that fell behind, with its last position.
        """
        group = self._groups.get(key)
        if group is None or group.ended:
            group = _Group(key)
            self._groups[key] = group
            group.task = asyncio.create_task(self._pump(group, start), name="shared-subscription")
        member = _Member(self.queue_size)
        group.members.add(member)
        last_position: str | None = None
        try:
            while True:
                while not member.frames:
                    if member.overflowed:
                        await cut_off(last_position)
                        return
                    member.ready.clear()
                    await member.ready.wait()
                frame = member.frames.popleft()
                await send(frame)
                if frame.kind != "next":
                    return
                last_position = frame.position or last_position
        finally:
            group.members.discard(member)
            if not group.members and not group.ended:
                self._end(group)
                if group.task is not None:
                    group.task.cancel()

    def _end(self, group: _Group) -> None:
        group.ended = True
        if self._groups.get(group.key) is group:
            del self._groups[group.key]

    async def _pump(self, group: _Group, start: Callable[[], Awaitable[Any]]) -> None:
        ending = Frame("complete")
        try:
            source = await start()
            async with aclosing(source):
                first = True
                async for result in source:
                    if first and isinstance(result, PreExecutionError):
                        ending = Frame("error", _errors_json(result.errors or []))
                        return
                    first = False
                    frame = _next_frame(result)
                    for member in group.members:
                        member.offer(frame)
                    if self.fanned_out is not None and group.members:
                        self.fanned_out(len(group.members))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("a shared subscription failed")
            ending = Frame("error", _errors_json([GraphQLError("Internal server error")]))
        finally:
            self._end(group)
            for member in group.members:
                member.offer(ending)


def _errors_json(errors: list[GraphQLError]) -> str:
    return json.dumps([error.formatted for error in errors])


def _next_frame(result: ExecutionResult) -> Frame:
    payload: dict[str, object] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    position = None
    if isinstance(result.data, dict) and len(result.data) == 1:
        (event,) = result.data.values()
        if isinstance(event, dict) and isinstance(event.get("position"), str):
            position = event["position"]
    return Frame("next", json.dumps(payload), position)
