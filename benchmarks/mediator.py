"""How much the mediator costs per call, against a direct call and against two PyPI peers.

Run: ``python benchmarks/mediator.py``. Prints microseconds per call (best of several
repeats of a timed loop awaited on one event loop), then the ratios the mediator's targets
are stated in: send without behaviors at most 2x a direct call, at most 0.3 us per
behavior, and faster than each peer. The peers are for comparison only, not dependencies:
``pip install mediatr python-cqrs``; a missing one is reported and skipped.
"""

import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

# Run as a script, Python puts benchmarks/ first on sys.path, where this very file would
# shadow the package it measures; the repository root goes there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from mediator import Context, Next, Notification, Query, Registry, Sequential  # noqa: E402

T = TypeVar("T")

DIRECT = "direct await handler(msg, ctx)"
SEND = "send, no behaviors"
SEND_5 = "send, 5 behaviors"

ITERATIONS = 200_000
REPEATS = 7


@dataclass(frozen=True, slots=True)
class Double(Query[int]):
    n: int


@dataclass(frozen=True, slots=True)
class Doubled(Notification):
    n: int


async def double(query: Double, ctx: Context) -> int:
    return query.n * 2


async def passthrough(message: object, next: Next[Any], ctx: Context) -> Any:
    return await next()


Loop = Callable[[int], Awaitable[None]]


async def measure(loops: dict[str, Loop]) -> dict[str, float]:
    """Microseconds per call of each loop: the best of REPEATS runs of ITERATIONS awaits.

    The repeats take turns across the loops, so a burst of load on the machine slows one
    repeat of each rather than every repeat of one, and the best of each stays comparable.
    """
    for loop in loops.values():
        await loop(ITERATIONS // 10)  # warm up: caches filled, the interpreter specialized
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(REPEATS):
        for name, loop in loops.items():
            started = time.perf_counter()
            await loop(ITERATIONS)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: seconds / ITERATIONS * 1e6 for name, seconds in best.items()}


async def peer_mediatr() -> Loop | None:
    try:
        # Optional: a peer to compare with, not a dependency (see the module docstring).
        import mediatr  # noqa: PLC0415
    except ImportError:
        return None

    @dataclass(frozen=True, slots=True)
    class MediatrDouble:
        n: int

    # mediatr finds a function handler's request type from its first parameter's annotation
    # and keeps handlers in a module-level registry; no behaviors are registered.
    async def handle(request: MediatrDouble) -> int:
        return request.n * 2

    mediatr.Mediator.register_handler(handle)
    peer = mediatr.Mediator()
    request = MediatrDouble(21)
    assert await peer.send_async(request) == 42

    async def loop(iterations: int) -> None:
        for _ in range(iterations):
            await peer.send_async(request)

    return loop


async def peer_cqrs() -> Loop | None:
    try:
        import cqrs  # noqa: PLC0415 - optional, as mediatr above
    except ImportError:
        return None

    class CqrsDouble(cqrs.Request[int]):
        n: int

    # python-cqrs bounds a handler's result to its Response models or None; the same trivial
    # int as the other handlers keeps the work equal, so the result is typed Any here.
    class CqrsDoubleHandler(cqrs.RequestHandler[CqrsDouble, Any]):
        async def handle(self, request: CqrsDouble) -> Any:
            return request.n * 2

    handler = CqrsDoubleHandler()

    class OneHandler:
        """The cheapest container python-cqrs accepts: it resolves to one prepared handler,
        where bootstrap() would build one per call through a DI container."""

        @property
        def external_container(self) -> None:
            return None

        def attach_external_container(self, container: None) -> None:
            return None

        async def resolve(self, type_: type[T]) -> T:
            return cast(T, handler)

    requests: cqrs.RequestMap[type[CqrsDouble]] = cqrs.RequestMap()
    requests.bind(CqrsDouble, CqrsDoubleHandler)
    # RequestMediator directly, without bootstrap's default LoggingMiddleware: the peer's
    # fastest configuration, so the comparison flatters it, not us.
    peer = cqrs.RequestMediator(request_map=requests, container=OneHandler())
    request = CqrsDouble(n=21)
    assert await peer.send(request) == 42

    async def loop(iterations: int) -> None:
        for _ in range(iterations):
            await peer.send(request)

    return loop


async def our_loops(ctx: Context) -> dict[str, Loop]:
    """The loops that measure this package, each the same tight ``for`` around one await,
    so the loop's own cost is the same in every figure and the ratios compare calls alone."""
    query = Double(21)
    note = Doubled(21)

    bare = Registry()
    bare.handle(Double, double)
    plain = bare.build()

    wrapped = Registry()
    wrapped.handle(Double, double)
    for _ in range(5):
        wrapped.behavior(passthrough)
    behaved = wrapped.build()

    publishing = Registry()
    for _ in range(3):
        # Three distinct handlers: the same function twice would be one subscription.
        async def handler(note: Doubled, ctx: Context) -> None:
            return None

        publishing.subscribe(Doubled, handler)
    publisher = publishing.build(publisher=Sequential())

    assert await plain.send(query, ctx) == 42
    assert await behaved.send(query, ctx) == 42

    async def direct_loop(iterations: int) -> None:
        for _ in range(iterations):
            await double(query, ctx)

    async def send_loop(iterations: int) -> None:
        for _ in range(iterations):
            await plain.send(query, ctx)

    async def send5_loop(iterations: int) -> None:
        for _ in range(iterations):
            await behaved.send(query, ctx)

    async def publish_loop(iterations: int) -> None:
        for _ in range(iterations):
            await publisher.publish(note, ctx)

    return {
        DIRECT: direct_loop,
        SEND: send_loop,
        SEND_5: send5_loop,
        "publish to 3 handlers (Sequential)": publish_loop,
    }


def report(timings: dict[str, float], peers: list[str], missing: list[str]) -> None:
    direct, send, send5 = timings[DIRECT], timings[SEND], timings[SEND_5]
    per_behavior = (send5 - send) / 5
    print(f"python {sys.version.split()[0]}, {ITERATIONS} calls a loop, best of {REPEATS} loops")
    for name, microseconds in timings.items():
        print(f"{name:<38}{microseconds:8.3f} us")
    for name in missing:
        print(f"{name:<38} skipped: not installed (pip install {name})")
    print()
    checks = [
        ("send / direct", f"{send / direct:6.2f}x", "<= 2x", send / direct <= 2),
        ("per behavior", f"{per_behavior:6.3f} us", "<= 0.3 us", per_behavior <= 0.3),
    ]
    checks += [
        (
            f"{peer} / send",
            f"{timings[peer + ', send'] / send:6.1f}x",
            "> 1x",
            timings[peer + ", send"] > send,
        )
        for peer in peers
    ]
    for label, figure, target, met in checks:
        print(f"{label:<22}{figure:>10}   target {target:<10}{'met' if met else 'MISSED'}")


async def main() -> None:
    ctx = Context(correlation_id="benchmark")
    loops = await our_loops(ctx)
    peers = {"mediatr": await peer_mediatr(), "python-cqrs": await peer_cqrs()}
    for name, loop in peers.items():
        if loop is not None:
            loops[f"{name}, send"] = loop

    gc.disable()  # collections landing in one loop and not another would only add noise
    timings = await measure(loops)
    gc.enable()

    report(
        timings,
        peers=[name for name, loop in peers.items() if loop is not None],
        missing=[name for name, loop in peers.items() if loop is None],
    )


if __name__ == "__main__":
    asyncio.run(main())
