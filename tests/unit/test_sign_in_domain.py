"""A customer's sign-in codes: derived from their ids, working once, for a while, until
guessed wrong too often or replaced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.sign_in import (
    MAX_WRONG_ATTEMPTS,
    CodeKey,
    CodeState,
    CustomerSignedIn,
    SignInCodeIssued,
    SignInCodeRefused,
    SignInCodes,
    SignInCodeVoided,
)

KEY = CodeKey(b"k" * 32)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)


def issued(code_id: str = "code-1") -> SignInCodes:
    codes = SignInCodes.for_customer("s1", "c1")
    codes.issue(code_id, email="ada@example.com", now=NOW, ttl=TEN_MINUTES)
    codes.mark_stored()
    return codes


def wrong(code_id: str = "code-1") -> str:
    """A code that is not `code_id`'s."""
    return f"{(int(KEY.code_for(code_id)) + 1) % 10**6:06d}"


def test_a_code_is_six_digits_from_its_id_and_the_key_alone() -> None:
    codes = {KEY.code_for(f"code-{n}") for n in range(200)}
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    # Zero-padded, and spread out: 200 ids give (nearly) 200 codes.
    assert len(codes) > 190
    assert KEY.code_for("code-1") == CodeKey(b"k" * 32).code_for("code-1")
    assert KEY.code_for("code-1") != CodeKey(b"other key").code_for("code-1")
    # The key never shows in a repr (a failure's message, a log line).
    assert "kkkk" not in repr(KEY)


def test_matches_is_false_for_anything_but_the_code() -> None:
    code = KEY.code_for("code-1")
    assert KEY.matches("code-1", code)
    for given in (wrong(), "", code + "0", code[:5], "١٢٣٤٥٦", "\udcff" * 6):
        assert not KEY.matches("code-1", given), given


def test_issuing_records_the_code_id_and_expiry_never_the_code() -> None:
    codes = SignInCodes.for_customer("s1", "c1")
    codes.issue("code-1", email="ada@example.com", now=NOW, ttl=TEN_MINUTES)

    assert codes.pending_events == [
        SignInCodeIssued("c1", "ada@example.com", "code-1", NOW + TEN_MINUTES)
    ]
    assert KEY.code_for("code-1") not in repr(codes.pending_events)
    assert codes.version == 1


def test_the_right_code_signs_in_once() -> None:
    codes = issued()

    assert codes.sign_in(KEY.code_for("code-1"), key=KEY, now=NOW)
    assert codes.pending_events == [CustomerSignedIn("c1", "code-1")]
    assert codes.code is not None
    assert codes.code.state is CodeState.USED
    codes.mark_stored()

    assert not codes.sign_in(KEY.code_for("code-1"), key=KEY, now=NOW)
    assert codes.pending_events == []


def test_an_expired_code_fails_and_counts_nothing() -> None:
    codes = issued()
    at_expiry = NOW + TEN_MINUTES

    assert not codes.sign_in(KEY.code_for("code-1"), key=KEY, now=at_expiry)
    assert not codes.sign_in(wrong(), key=KEY, now=at_expiry)
    assert codes.pending_events == []
    # A moment before, it worked.
    assert issued().sign_in(
        KEY.code_for("code-1"), key=KEY, now=at_expiry - timedelta(microseconds=1)
    )


def test_wrong_codes_are_counted_and_fewer_than_the_limit_leave_it_working() -> None:
    codes = issued()
    for attempt in range(1, MAX_WRONG_ATTEMPTS):
        assert not codes.sign_in(wrong(), key=KEY, now=NOW)
        assert codes.pending_events[-1] == SignInCodeRefused("c1", "code-1", attempt)

    assert codes.sign_in(KEY.code_for("code-1"), key=KEY, now=NOW)


def test_the_fifth_wrong_code_voids_it_and_the_right_one_fails_after() -> None:
    codes = issued()
    for _ in range(MAX_WRONG_ATTEMPTS):
        assert not codes.sign_in(wrong(), key=KEY, now=NOW)

    assert codes.pending_events[-2:] == [
        SignInCodeRefused("c1", "code-1", MAX_WRONG_ATTEMPTS),
        SignInCodeVoided("c1", "code-1"),
    ]
    assert codes.code is not None
    assert codes.code.state is CodeState.VOIDED
    codes.mark_stored()
    assert not codes.sign_in(KEY.code_for("code-1"), key=KEY, now=NOW)
    assert not codes.sign_in(wrong(), key=KEY, now=NOW)
    # Nothing is left to guess, so nothing more is counted.
    assert codes.pending_events == []


def test_a_new_code_voids_the_one_before_and_starts_its_count_afresh() -> None:
    codes = issued("code-1")
    for _ in range(MAX_WRONG_ATTEMPTS - 1):
        codes.sign_in(wrong("code-1"), key=KEY, now=NOW)

    codes.issue("code-2", email="ada@example.com", now=NOW, ttl=TEN_MINUTES)

    # The old code is a wrong one now, the first counted against the new code.
    assert not codes.sign_in(KEY.code_for("code-1"), key=KEY, now=NOW)
    assert codes.pending_events[-1] == SignInCodeRefused("c1", "code-2", 1)
    for _ in range(MAX_WRONG_ATTEMPTS - 2):
        assert not codes.sign_in(wrong("code-2"), key=KEY, now=NOW)
    assert codes.sign_in(KEY.code_for("code-2"), key=KEY, now=NOW)


def test_codes_never_issued_sign_nobody_in() -> None:
    codes = SignInCodes.for_customer("s1", "c1")
    assert not codes.sign_in("000000", key=KEY, now=NOW)
    assert codes.pending_events == []


@pytest.mark.parametrize("code_id", ["code-1", "", "x" * 64])
def test_every_code_id_has_a_code(code_id: str) -> None:
    assert KEY.matches(code_id, KEY.code_for(code_id))
