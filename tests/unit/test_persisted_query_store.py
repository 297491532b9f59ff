"""The in-process persisted query store: at most its count of texts, the least recently used
dropped first; no text longer than a query may be; new texts within their sender's budget,
known ones whatever the budget."""

from __future__ import annotations

import hashlib

from orderdesk.persisted_queries import LocalPersistedQueries, persisted_queries_for
from orderdesk.rate_limits import LocalCounters, RateLimits, count_as
from orderdesk.settings import Settings

ROOMY = "1000/minute"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def text(n: int) -> str:
    return f"{{ __typename }} # {n:04}"


def budget(persisted_queries: str) -> RateLimits:
    return RateLimits(
        LocalCounters(),
        per_address=ROOMY,
        per_identity=ROOMY,
        registrations=ROOMY,
        failed_auth=ROOMY,
        persisted_queries=persisted_queries,
    )


async def test_the_store_keeps_its_count_of_texts_the_least_recently_used_dropped() -> None:
    store = LocalPersistedQueries(max_text=1_000, max_documents=10)
    for n in range(1_000):
        await store.remember(sha256(text(n)), text(n))
    assert len(store) == 10
    assert await store.find(sha256(text(989))) is None
    assert [await store.find(sha256(text(n))) for n in range(990, 1_000)] == [
        text(n) for n in range(990, 1_000)
    ]

    # Used by its hash, or sent again with its text: the most recently used, then kept.
    assert await store.find(sha256(text(990))) == text(990)
    await store.remember(sha256(text(991)), text(991))
    for n in range(2_000, 2_008):
        await store.remember(sha256(text(n)), text(n))

    assert len(store) == 10
    assert await store.find(sha256(text(990))) == text(990)
    assert await store.find(sha256(text(991))) == text(991)
    assert [await store.find(sha256(text(n))) for n in range(992, 1_000)] == [None] * 8


async def test_a_text_longer_than_a_query_may_be_is_not_stored_in_characters_or_bytes() -> None:
    store = LocalPersistedQueries(max_text=100, max_documents=10)
    too_long = "{ __typename }" + " " * 100
    # 40 characters, 112 bytes in UTF-8: Redis would keep the bytes.
    too_many_bytes = '{ __typename } # "' + "\N{SNOWMAN}" * 30 + '"'
    fits = "{ __typename }" + " " * 86
    for each in (too_long, too_many_bytes, fits):
        await store.remember(sha256(each), each)

    assert await store.find(sha256(too_long)) is None
    assert await store.find(sha256(too_many_bytes)) is None
    assert await store.find(sha256(fits)) == fits
    assert len(store) == 1


async def test_new_texts_are_stored_within_their_sender_s_budget_known_ones_always() -> None:
    store = LocalPersistedQueries(max_text=1_000, max_documents=100)
    limits = budget("2/minute")
    count_as(limits, "10.0.0.1")  # for the rest of this test's task
    await store.remember(sha256(text(1)), text(1))
    for _ in range(5):  # a known text spends nothing
        await store.remember(sha256(text(1)), text(1))
    await store.remember(sha256(text(2)), text(2))
    await store.remember(sha256(text(3)), text(3))  # over the budget: not stored
    count_as(limits, "10.0.0.2")  # for the rest of this test's task
    await store.remember(sha256(text(4)), text(4))  # another address's budget

    assert await store.find(sha256(text(1))) == text(1)
    assert await store.find(sha256(text(2))) == text(2)
    assert await store.find(sha256(text(3))) is None
    assert await store.find(sha256(text(4))) == text(4)
    assert await limits.admit_persisted_query("10.0.0.1") is not None
    # Without an address (or rate limits off) nothing is counted: the text is stored.
    count_as(limits, None)  # for the rest of this test's task
    await store.remember(sha256(text(5)), text(5))
    assert await store.find(sha256(text(5))) == text(5)


def test_the_settings_bound_the_store() -> None:
    store = persisted_queries_for(Settings(apq_max_documents=7, max_query_length=500))
    assert isinstance(store, LocalPersistedQueries)
    assert (store.max_documents, store.max_text) == (7, 500)
