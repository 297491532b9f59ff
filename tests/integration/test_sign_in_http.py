"""Signing in again, as a customer who lost its token meets it: over real HTTP, with the code
emailed through the reactor to a real SMTP server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from orderdesk.rate_limits import (
    SIGN_IN_ATTEMPTS_PER_ADDRESS,
    SIGN_IN_CODES_PER_ADDRESS,
    SIGN_IN_CODES_PER_EMAIL,
)
from orderdesk.settings import Settings
from tests.databases import postgres_database_url, sqlite_settings
from tests.graphql_client import JSON, GraphQLClient
from tests.mail_server import MailServer
from tests.served import Served, serve

SUBJECT = "Your sign-in code"
REGISTER = """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
    __typename ... on RegisterCustomerSuccess { customer { id } } } }"""
REQUEST = """mutation($input: RequestSignInCodeInput!) { requestSignInCode(input: $input) {
    __typename ... on RequestSignInCodeSuccess { email codeValidForSeconds }
    ... on ValidationError { fields { path message } } } }"""
SIGN_IN = """mutation($input: SignInInput!) { signIn(input: $input) {
    __typename ... on SignInSuccess { accessToken customer { id email } }
    ... on Error { message } ... on ValidationError { fields { path message } } } }"""
ME = "{ me { id name email } }"


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return sqlite_settings(tmp_path, smtp_url=SecretStr(mail_server.url))


async def register(client: GraphQLClient, name: str) -> str:
    """A new customer's global id; its token is dropped, as the customer lost it."""
    given = {"name": name, "email": f"{name.lower()}@example.com"}
    result = (await client.anonymous().execute(REGISTER, {"input": given}))["registerCustomer"]
    assert result["__typename"] == "RegisterCustomerSuccess", result
    customer_id: str = result["customer"]["id"]
    return customer_id


async def request_code(client: GraphQLClient, email: str) -> JSON:
    answer: JSON = (await client.anonymous().execute(REQUEST, {"input": {"email": email}}))[
        "requestSignInCode"
    ]
    return answer


async def sign_in(client: GraphQLClient, email: str, code: str) -> JSON:
    variables = {"input": {"email": email, "code": code}}
    answer: JSON = (await client.anonymous().execute(SIGN_IN, variables))["signIn"]
    return answer


def plain_text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None, message
    text: str = body.get_content()
    return text


def code_in(message: EmailMessage) -> str:
    codes: list[str] = re.findall(r"^\s+(\d{6})\s*$", plain_text(message), re.MULTILINE)
    [code] = codes
    return code


async def emailed_codes(mail_server: MailServer, to: str, count: int = 1) -> list[str]:
    """The codes of the first `count` sign-in emails to `to`, once they arrived."""
    messages = await mail_server.wait_for(
        lambda m: m["To"] == to and m["Subject"] == SUBJECT, count=count
    )
    return [code_in(message) for message in messages]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def is_refused(answer: JSON) -> bool:
    return (
        answer["__typename"] == "InvalidSignInCodeError"
        and "does not sign you in" in (answer["message"])
    )


async def test_the_emailed_code_signs_in_once_with_a_token_that_reads_me(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    ada = await register(client, "Ada")

    answer = await request_code(client, " Ada@Example.com ")

    assert answer == {
        "__typename": "RequestSignInCodeSuccess",
        "email": "ada@example.com",
        "codeValidForSeconds": 600,
    }
    [message] = await mail_server.wait_for(lambda m: m["Subject"] == SUBJECT)
    assert message["To"] == "ada@example.com"
    text = plain_text(message)
    assert "valid for 10 minutes" in text
    assert "If you did not ask for this, ignore it" in text
    assert message.get_body(("html",)) is not None
    code = code_in(message)

    signed_in = await sign_in(client, "ada@example.com", code)

    assert signed_in["__typename"] == "SignInSuccess", signed_in
    assert signed_in["customer"] == {"id": ada, "email": "ada@example.com"}
    me = (await client.as_customer(signed_in["accessToken"]).execute(ME))["me"]
    assert me == {"id": ada, "name": "Ada", "email": "ada@example.com"}
    # Used up.
    assert is_refused(await sign_in(client, "ada@example.com", code))


async def test_five_wrong_codes_void_it_and_then_the_right_one_fails(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    await register(client, "Ada")
    await request_code(client, "ada@example.com")
    [code] = await emailed_codes(mail_server, "ada@example.com")

    for _ in range(5):
        assert is_refused(await sign_in(client, "ada@example.com", wrong(code)))

    assert is_refused(await sign_in(client, "ada@example.com", code))


async def test_four_wrong_codes_leave_the_right_one_working(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    await register(client, "Ada")
    await request_code(client, "ada@example.com")
    [code] = await emailed_codes(mail_server, "ada@example.com")

    for _ in range(4):
        assert is_refused(await sign_in(client, "ada@example.com", wrong(code)))

    assert (await sign_in(client, "ada@example.com", code))["__typename"] == "SignInSuccess"


async def test_a_second_request_voids_the_first_code(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    await register(client, "Ada")
    await request_code(client, "ada@example.com")
    [first] = await emailed_codes(mail_server, "ada@example.com")
    await request_code(client, "ada@example.com")
    _, second = await emailed_codes(mail_server, "ada@example.com", count=2)

    assert is_refused(await sign_in(client, "ada@example.com", first))
    assert (await sign_in(client, "ada@example.com", second))["__typename"] == "SignInSuccess"


async def test_an_unknown_address_gets_the_same_answer_and_no_email(
    client: GraphQLClient, mail_server: MailServer, served: Served
) -> None:
    await register(client, "Ada")
    events = await client.event_count()

    unknown = await request_code(client, "nobody@example.com")

    assert unknown == {
        "__typename": "RequestSignInCodeSuccess",
        "email": "nobody@example.com",
        "codeValidForSeconds": 600,
    }
    assert await client.event_count() == events
    # Ada's code is asked for after: once hers has arrived, one for nobody would have too.
    known = await request_code(client, "ada@example.com")
    assert known.keys() == unknown.keys()
    await emailed_codes(mail_server, "ada@example.com")
    assert mail_server.to("nobody@example.com") == []
    assert is_refused(await sign_in(client, "nobody@example.com", "123456"))


async def test_an_expired_code_fails(
    tmp_path: Path, mail_server: MailServer, settings: Settings
) -> None:
    ttl = 2.0
    with serve(settings.model_copy(update={"sign_in_code_ttl": ttl})) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            await register(client, "Ada")
            assert (await request_code(client, "ada@example.com"))["codeValidForSeconds"] == 2
            [message] = await mail_server.wait_for(lambda m: m["Subject"] == SUBJECT)
            assert "valid for 2 seconds" in plain_text(message)

            # Past its expiry (the clock has to move: nothing else could show it).
            await asyncio.sleep(ttl)

            assert is_refused(await sign_in(client, "ada@example.com", code_in(message)))


async def test_two_sign_ins_with_the_right_code_at_once_get_one_token(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    await register(client, "Ada")
    await request_code(client, "ada@example.com")
    [code] = await emailed_codes(mail_server, "ada@example.com")

    answers = await asyncio.gather(*(sign_in(client, "ada@example.com", code) for _ in range(4)))

    kinds = sorted(answer["__typename"] for answer in answers)
    assert kinds == ["InvalidSignInCodeError"] * 3 + ["SignInSuccess"], answers


async def test_two_requests_at_once_leave_one_code_that_works(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    await register(client, "Ada")

    answers = await asyncio.gather(*(request_code(client, "ada@example.com") for _ in range(2)))

    assert [answer["__typename"] for answer in answers] == ["RequestSignInCodeSuccess"] * 2
    codes = await emailed_codes(mail_server, "ada@example.com", count=2)
    outcomes = [(await sign_in(client, "ada@example.com", code))["__typename"] for code in codes]
    # The older one is voided (and counted as one wrong attempt at the newer).
    assert outcomes == ["InvalidSignInCodeError", "SignInSuccess"]


async def test_malformed_input_is_a_validation_error(client: GraphQLClient) -> None:
    answer = await sign_in(client, "ada@example.com", "12 34 56")
    assert answer["__typename"] == "ValidationError"
    assert answer["fields"] == [{"path": ["code"], "message": "a sign-in code is 6 digits"}]
    requested = await request_code(client, "not an address")
    assert requested["__typename"] == "ValidationError"


# ---------------------------------------------------------------- budgets


ROOMY = "1000/minute"


def limited(settings: Settings, **overrides: Any) -> Settings:
    """Rate limits on: roomy budgets but the sign-in ones (their defaults)."""
    return settings.model_copy(
        update={
            "rate_limits": True,
            "rate_limit_per_address": ROOMY,
            "rate_limit_per_identity": ROOMY,
            "rate_limit_registrations": ROOMY,
            "rate_limit_failed_auth": ROOMY,
            **overrides,
        }
    )


def per_minute(budget: str) -> int:
    [limit] = [int(part.split("/")[0]) for part in budget.split(";") if part.endswith("minute")]
    return limit


def per_hour(budget: str) -> int:
    [limit] = [int(part.split("/")[0]) for part in budget.split(";") if part.endswith("hour")]
    return limit


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert int(response.headers["retry-after"]) >= 1


async def test_code_requests_over_the_address_budget_are_refused(settings: Settings) -> None:
    allowed = per_minute(SIGN_IN_CODES_PER_ADDRESS)
    with serve(limited(settings)) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served).anonymous()
            for n in range(allowed):
                await request_code(client, f"someone{n}@example.com")
            events = await client.event_count()

            response = await client.post(REQUEST, {"input": {"email": "ada@example.com"}})

            assert_rate_limited(response)
            assert await client.event_count() == events
            # Only sign-in codes are refused; the address may still ask anything else.
            assert (await client.post("{ __typename }")).status_code == 200


async def test_sign_in_attempts_over_the_address_budget_are_refused_even_right_ones(
    settings: Settings, mail_server: MailServer
) -> None:
    allowed = per_minute(SIGN_IN_ATTEMPTS_PER_ADDRESS)
    with serve(limited(settings)) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            await register(client, "Ada")
            await request_code(client, "ada@example.com")
            [code] = await emailed_codes(mail_server, "ada@example.com")
            # Guesses at addresses nobody has count as much as any.
            for n in range(allowed):
                assert is_refused(await sign_in(client, f"nobody{n}@example.com", "123456"))

            variables = {"input": {"email": "ada@example.com", "code": code}}
            assert_rate_limited(await client.anonymous().post(SIGN_IN, variables))


async def test_code_requests_for_one_email_are_bounded_whatever_the_client_address(
    settings: Settings, mail_server: MailServer
) -> None:
    allowed = per_hour(SIGN_IN_CODES_PER_EMAIL)
    # Behind a proxy the test pretends to be: each request from another client address.
    with serve(limited(settings, forwarded_allow_ips="127.0.0.1")) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served).anonymous()
            await register(client, "Ada")
            for n in range(allowed):
                response = await client.post(
                    REQUEST,
                    {"input": {"email": "ada@example.com"}},
                    headers={"X-Forwarded-For": f"203.0.113.{n + 1}"},
                )
                assert response.status_code == 200, response.text

            response = await client.post(
                REQUEST,
                {"input": {"email": "ADA@example.com"}},
                headers={"X-Forwarded-For": "198.51.100.1"},
            )

            assert_rate_limited(response)
            await emailed_codes(mail_server, "ada@example.com", count=allowed)
            # Another mailbox is not held back by Ada's.
            response = await client.post(
                REQUEST,
                {"input": {"email": "bob@example.com"}},
                headers={"X-Forwarded-For": "198.51.100.1"},
            )
            assert response.status_code == 200, response.text


# ---------------------------------------------------------------- PostgreSQL, where rows lock


@pytest.fixture
async def postgres_client(tmp_path: Path, mail_server: MailServer) -> AsyncIterator[GraphQLClient]:
    async with postgres_database_url() as url:
        settings = sqlite_settings(tmp_path, database_url=url, smtp_url=SecretStr(mail_server.url))
        with serve(settings) as served:
            async with httpx.AsyncClient(timeout=60) as http:
                yield GraphQLClient(http, served)


async def test_on_postgresql_concurrent_sign_ins_with_the_right_code_get_one_token(
    postgres_client: GraphQLClient, mail_server: MailServer
) -> None:
    client = postgres_client
    await register(client, "Ada")
    await request_code(client, "ada@example.com")
    [code] = await emailed_codes(mail_server, "ada@example.com")

    answers = await asyncio.gather(*(sign_in(client, "ada@example.com", code) for _ in range(4)))

    kinds = sorted(answer["__typename"] for answer in answers)
    assert kinds == ["InvalidSignInCodeError"] * 3 + ["SignInSuccess"], answers


async def test_on_postgresql_first_requests_at_once_leave_one_code_that_works(
    postgres_client: GraphQLClient, mail_server: MailServer
) -> None:
    client = postgres_client
    await register(client, "Ada")

    answers = await asyncio.gather(*(request_code(client, "ada@example.com") for _ in range(3)))

    assert [answer["__typename"] for answer in answers] == ["RequestSignInCodeSuccess"] * 3
    codes = await emailed_codes(mail_server, "ada@example.com", count=3)
    outcomes = [(await sign_in(client, "ada@example.com", code))["__typename"] for code in codes]
    assert outcomes.count("SignInSuccess") == 1, outcomes
