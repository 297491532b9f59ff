"""Context: typed keys, the correlation id, and deadlines made by with_timeout."""

import asyncio
import time

import pytest

from mediator import Context, ContextKey

TENANT = ContextKey[str]("tenant")
ATTEMPT = ContextKey[int]("attempt")


def test_values_set_under_a_key_are_read_back() -> None:
    ctx = Context()
    ctx.set(TENANT, "acme")
    ctx.set(ATTEMPT, 2)

    assert ctx.get(TENANT) == "acme"
    assert ctx.find(ATTEMPT) == 2


def test_a_missing_key_is_a_key_error_naming_it_for_get_and_none_for_find() -> None:
    ctx = Context()

    with pytest.raises(KeyError, match="tenant"):
        ctx.get(TENANT)
    assert ctx.find(TENANT) is None
    ctx.set(ATTEMPT, 1)
    with pytest.raises(KeyError, match="tenant"):
        ctx.get(TENANT)


def test_keys_with_the_same_name_are_different_keys() -> None:
    other_tenant = ContextKey[str]("tenant")
    ctx = Context()
    ctx.set(TENANT, "acme")

    assert ctx.find(other_tenant) is None
    assert repr(other_tenant) == "ContextKey('tenant')"


def test_the_correlation_id_defaults_to_a_fresh_uuid_hex_and_stays_put() -> None:
    first, second = Context(), Context()

    assert len(first.correlation_id) == 32
    int(first.correlation_id, 16)  # hexadecimal, or this raises
    assert first.correlation_id == first.correlation_id
    assert first.correlation_id != second.correlation_id
    assert Context(correlation_id="req-1").correlation_id == "req-1"


def test_identity_and_deadline_default_to_none() -> None:
    ctx = Context()
    caller = object()

    assert ctx.identity is None
    assert ctx.deadline is None
    assert Context(identity=caller, deadline=3.5).identity is caller


async def test_with_timeout_sets_a_deadline_from_the_loop_clock() -> None:
    now = asyncio.get_running_loop().time()
    ctx = Context(correlation_id="req-1", identity="ada")
    ctx.set(TENANT, "acme")

    limited = ctx.with_timeout(2)

    assert limited is not ctx
    assert limited.deadline is not None
    assert now + 2 <= limited.deadline <= asyncio.get_running_loop().time() + 2
    assert ctx.deadline is None
    assert (limited.correlation_id, limited.identity, limited.get(TENANT)) == (
        "req-1",
        "ada",
        "acme",
    )


async def test_with_timeout_never_extends_an_earlier_deadline() -> None:
    now = asyncio.get_running_loop().time()
    ctx = Context(deadline=now + 1)

    assert ctx.with_timeout(30).deadline == now + 1
    shorter = ctx.with_timeout(0.5).deadline
    assert shorter is not None
    assert shorter < now + 1


def test_a_copy_keeps_everything_even_a_correlation_id_not_yet_read() -> None:
    caller = object()
    ctx = Context(identity=caller, deadline=12.5)
    ctx.set(TENANT, "acme")

    copy = ctx.copy()

    assert copy is not ctx
    assert copy.correlation_id == ctx.correlation_id
    assert (copy.identity, copy.deadline, copy.get(TENANT)) == (caller, 12.5, "acme")


def test_values_set_on_a_copy_stay_on_the_copy() -> None:
    ctx = Context()
    ctx.set(TENANT, "acme")

    copy = ctx.with_timeout(1)
    copy.set(ATTEMPT, 3)
    copy.set(TENANT, "globex")

    assert ctx.find(ATTEMPT) is None
    assert ctx.get(TENANT) == "acme"


def test_with_timeout_works_before_any_loop_runs_on_the_clock_loops_use() -> None:
    before = time.monotonic()

    deadline = Context().with_timeout(1).deadline

    assert deadline is not None
    assert before + 1 <= deadline <= time.monotonic() + 1
