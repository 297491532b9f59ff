"""Rate limits counted in the process: each budget admits up to its limits and then says how
long to wait; counters that do not answer admit (and are counted); and the registration
budget applied by the real mediator before any handler work."""

from __future__ import annotations

import asyncio
import logging

import pytest
from graphql import GraphQLError
from limits.errors import StorageError
from prometheus_client import CollectorRegistry

from handlers import customers
from handlers.access import CLIENT_ADDRESS
from handlers.rate_limit import RateLimited
from mediator import Context, Mediator
from orderdesk import rate_limits as module
from orderdesk.rate_limits import LocalCounters, RateLimits, rate_limits_for
from orderdesk.settings import Settings
from schema.errors import finish_errors, is_fault
from tests.unit.fakes import FakeStore, fake_mediator

ROOMY = "1000/minute"


def rate_limits(
    counters: LocalCounters | None = None,
    *,
    per_address: str = ROOMY,
    per_identity: str = ROOMY,
    registrations: str = ROOMY,
    failed_auth: str = ROOMY,
    metrics: CollectorRegistry | None = None,
) -> RateLimits:
    return RateLimits(
        counters or LocalCounters(),
        per_address=per_address,
        per_identity=per_identity,
        registrations=registrations,
        failed_auth=failed_auth,
        metrics=metrics,
    )


async def test_an_address_is_admitted_up_to_its_budget_then_told_how_long_to_wait() -> None:
    limits = rate_limits(per_address="3/minute")

    assert [await limits.admit_address("10.0.0.1") for _ in range(3)] == [None, None, None]
    wait = await limits.admit_address("10.0.0.1")

    assert wait is not None
    assert 58 < wait <= 60
    assert await limits.admit_address("10.0.0.2") is None


async def test_a_burst_is_refused_by_the_shortest_window_with_its_own_wait() -> None:
    limits = rate_limits(per_address="100/minute;2/second")

    assert await limits.admit_address("10.0.0.1") is None
    assert await limits.admit_address("10.0.0.1") is None
    wait = await limits.admit_address("10.0.0.1")

    assert wait is not None
    assert 0 < wait <= 1


async def test_each_budget_counts_apart_even_for_the_same_key() -> None:
    limits = rate_limits(per_identity="2/minute")

    assert await limits.admit_identity("10.0.0.1") is None
    assert await limits.admit_identity("10.0.0.1") is None
    assert await limits.admit_identity("10.0.0.1") is not None

    assert await limits.admit_address("10.0.0.1") is None
    assert await limits.admit_registration("10.0.0.1") is None
    assert await limits.auth_blocked("10.0.0.1") is None


async def test_registrations_have_a_budget_of_their_own() -> None:
    limits = rate_limits(registrations="1/minute")

    assert await limits.admit_registration("10.0.0.1") is None
    assert await limits.admit_registration("10.0.0.1") is not None
    assert await limits.admit_address("10.0.0.1") is None


async def test_an_address_that_used_up_its_refused_tokens_is_blocked_before_verifying() -> None:
    limits = rate_limits(failed_auth="2/minute")

    assert await limits.auth_blocked("10.0.0.1") is None
    assert await limits.failed_auth("10.0.0.1") is None
    assert await limits.auth_blocked("10.0.0.1") is None
    assert await limits.failed_auth("10.0.0.1") is None

    blocked = await limits.auth_blocked("10.0.0.1")
    assert blocked is not None
    assert 58 < blocked <= 60
    # One more refused token (one let through by a race) is over the budget too.
    over = await limits.failed_auth("10.0.0.1")
    assert over is not None
    assert 58 < over <= 60
    assert await limits.auth_blocked("10.0.0.2") is None


async def test_looking_at_the_refused_tokens_budget_spends_nothing() -> None:
    limits = rate_limits(failed_auth="1/minute")

    for _ in range(5):
        assert await limits.auth_blocked("10.0.0.1") is None
    assert await limits.failed_auth("10.0.0.1") is None
    assert await limits.auth_blocked("10.0.0.1") is not None


async def test_refusals_are_counted_by_budget() -> None:
    registry = CollectorRegistry()
    limits = rate_limits(per_address="1/minute", metrics=registry)

    await limits.admit_address("10.0.0.1")
    await limits.admit_address("10.0.0.1")
    await limits.admit_address("10.0.0.1")

    refused = registry.get_sample_value("orderdesk_rate_limited_total", {"budget": "address"})
    assert refused == 2


def test_rate_limits_are_on_by_default_with_a_shops_budgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDERDESK_RATE_LIMITS")  # the suite turns them off
    limits = rate_limits_for(Settings())

    assert limits is not None
    assert isinstance(limits.storage, LocalCounters)
    per_address = [(i.amount, i.get_expiry()) for i in limits.per_address.limits]
    assert per_address == [(20, 1), (600, 60)]
    assert [(i.amount, i.get_expiry()) for i in limits.registrations.limits] == [(20, 60)]
    assert [(i.amount, i.get_expiry()) for i in limits.failed_auths.limits] == [(10, 60)]


def test_rate_limits_can_be_turned_off() -> None:
    assert rate_limits_for(Settings(rate_limits=False)) is None


def test_a_budget_the_notation_cannot_read_stops_the_start() -> None:
    with pytest.raises(ValueError, match="lots"):
        rate_limits_for(Settings(rate_limits=True, rate_limit_per_address="lots"))


def test_only_redis_can_hold_the_counters_of_every_process() -> None:
    with pytest.raises(ValueError, match="redis://"):
        rate_limits_for(Settings(rate_limits=True, rate_limit_url="memcached://localhost"))


async def test_counters_whose_window_ended_are_swept() -> None:
    counters = LocalCounters()
    await counters.incr("ended", 0)
    await counters.incr("running", 60)

    counters.sweep()

    assert set(counters.storage) == {"running"}
    assert set(counters.expirations) == {"running"}


async def test_an_open_rate_limits_sweeps_on_a_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "SWEEP_INTERVAL", 0.01)
    counters = LocalCounters()
    limits = rate_limits(counters)
    await limits.open()
    try:
        await counters.incr("ended", 0)
        await asyncio.sleep(0.1)
        assert "ended" not in counters.storage
    finally:
        await limits.close()


class UnreachableCounters(LocalCounters):
    """Counters in the process that can be made to fail as a Redis that went away does."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.calls = 0

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        self.calls += 1
        if self.down:
            raise StorageError(ConnectionError("Connection refused"))
        return await super().incr(key, expiry, amount)


async def test_counters_that_do_not_answer_admit_each_request_and_count_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    counters = UnreachableCounters()
    limits = rate_limits(counters, per_address="1/minute", metrics=registry)

    with caplog.at_level(logging.WARNING, "orderdesk.rate_limits"):
        assert [await limits.admit_address("10.0.0.1") for _ in range(3)] == [None] * 3

    assert registry.get_sample_value("orderdesk_rate_limit_unchecked_total") == 3
    # One try, then none until the retry interval has passed; one warning for the outage.
    assert counters.calls == 1
    assert len([r for r in caplog.records if "do not answer" in r.message]) == 1


async def test_counters_are_tried_again_and_count_once_they_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(module, "STORE_RETRY_INTERVAL", 0.0)
    counters = UnreachableCounters()
    limits = rate_limits(counters, per_address="1/minute")
    assert await limits.admit_address("10.0.0.1") is None

    counters.down = False
    with caplog.at_level(logging.INFO, "orderdesk.rate_limits"):
        assert await limits.admit_address("10.0.0.1") is None
        assert await limits.admit_address("10.0.0.1") is not None

    assert [r.message for r in caplog.records if "answer again" in r.message]


# ---------------------------------------------------------------- the registration budget


def registration_mediator(store: FakeStore, registrations: str) -> Mediator:
    settings = Settings(
        database_url="sqlite+aiosqlite:///:memory:",
        rate_limits=True,
        rate_limit_registrations=registrations,
    )
    return fake_mediator(store, settings)


def from_address(address: str) -> Context:
    ctx = Context()
    ctx.set(CLIENT_ADDRESS, address)
    return ctx


def registration(n: int) -> customers.RegisterCustomer:
    return customers.RegisterCustomer(name=f"Customer {n}", email=f"c{n}@example.com")


async def test_registrations_over_the_address_budget_are_refused_before_any_work() -> None:
    store = FakeStore()
    mediator = registration_mediator(store, "2/minute")

    await mediator.send(registration(1), from_address("10.0.0.1"))
    await mediator.send(registration(2), from_address("10.0.0.1"))
    with pytest.raises(RateLimited) as refused:
        await mediator.send(registration(3), from_address("10.0.0.1"))

    assert 58 < refused.value.retry_after <= 60
    assert refused.value.seconds == 60
    assert "retry after 60 s" in str(refused.value)
    assert len(store.customers) == 2
    assert store.commits == 2


async def test_other_addresses_and_the_service_itself_keep_registering() -> None:
    store = FakeStore()
    mediator = registration_mediator(store, "1/minute")
    await mediator.send(registration(1), from_address("10.0.0.1"))

    await mediator.send(registration(2), from_address("10.0.0.2"))
    await mediator.send(registration(3), Context())  # no address: sent from inside

    assert len(store.customers) == 3


def test_a_rate_limited_resolver_is_a_client_error_with_its_wait() -> None:
    raised = GraphQLError("raised", path=["registerCustomer"], original_error=RateLimited(12.2))

    assert not is_fault(raised)
    (finished,) = finish_errors([raised])

    assert finished.extensions == {"code": "RATE_LIMITED", "retryAfter": 13}
