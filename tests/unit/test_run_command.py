"""Each command gets a context of its own: behaviors keep per-command state on it (the unit of
work, the idempotency claim), and one websocket runs many operations on one RequestContext."""

from __future__ import annotations

from typing import Any

from handlers.access import Identity, Role
from handlers.products import RestockProduct
from handlers.written import Written
from mediator import Context
from schema.messages import run_command
from schema.products import RestockProductResult


class RecordingMediator:
    def __init__(self) -> None:
        self.contexts: list[Context] = []

    async def send(self, message: object, ctx: Context) -> Written:
        self.contexts.append(ctx)
        return Written("p1", 2, 7)


class FakeInfo:
    def __init__(self, mediator: RecordingMediator, ctx: Context) -> None:
        self.context: Any = type("C", (), {"mediator": mediator, "ctx": ctx})()


async def test_commands_never_share_the_request_context() -> None:
    shared = Context(correlation_id="req-1", identity=Identity("s", Role.STAFF))
    mediator = RecordingMediator()
    info: Any = FakeInfo(mediator, shared)

    async def present(written: Written) -> int:
        return written.position

    assert (
        await run_command(info, lambda: RestockProduct("p1", 1), present, RestockProductResult) == 7
    )
    assert (
        await run_command(info, lambda: RestockProduct("p1", 1), present, RestockProductResult) == 7
    )
    first, second = mediator.contexts
    assert len({id(shared), id(first), id(second)}) == 3
    assert {c.correlation_id for c in (first, second)} == {"req-1"}
    assert first.identity == second.identity == shared.identity
