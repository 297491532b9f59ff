"""What a registration sets off, in a served app with a real SMTP server: the welcome email,
the profile (`me { preferences }`, changed by updatePreferences) and, for a customer who
opted in, a note to the marketing team."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from orderdesk.settings import Settings
from tests.databases import postgres_database_url, sqlite_settings
from tests.graphql_client import JSON, GraphQLClient
from tests.mail_server import MailServer
from tests.served import serve

MARKETING = "marketing@shop.test"

REGISTER = """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
    __typename ... on RegisterCustomerSuccess { accessToken customer { id } }
    ... on ValidationError { fields { path message } } } }"""
ME = "{ me { id version preferences { marketingOptIn language } } }"
UPDATE = """mutation($input: UpdatePreferencesInput!) { updatePreferences(input: $input) {
    __typename
    ... on UpdatePreferencesSuccess {
        preferences { marketingOptIn language } customer { version } }
    ... on ConflictError { expectedVersion actualVersion }
    ... on ValidationError { fields { path message } }
    ... on Error { message } } }"""


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return sqlite_settings(tmp_path, smtp_url=SecretStr(mail_server.url), marketing_email=MARKETING)


async def register(client: GraphQLClient, name: str, **choices: Any) -> GraphQLClient:
    """A new customer, as a client speaking with its token."""
    given = {"name": name, "email": f"{name.lower()}@example.com", **choices}
    result = (await client.anonymous().execute(REGISTER, {"input": given}))["registerCustomer"]
    assert result["__typename"] == "RegisterCustomerSuccess", result
    return client.as_customer(result["accessToken"])


async def profile_of(customer: GraphQLClient, within: float = 10.0) -> JSON:
    """`me` once its profile exists: the reaction that creates it lags the registration."""
    started = time.monotonic()
    while True:
        me: JSON = (await customer.execute(ME))["me"]
        if me["preferences"] is not None:
            return me
        assert time.monotonic() - started < within, "no profile within the time allowed"
        await asyncio.sleep(0.05)


def plain_text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None, "no plain-text body"
    text: str = body.get_content()
    return text


async def update(customer: GraphQLClient, **given: Any) -> JSON:
    answer: JSON = (await customer.execute(UPDATE, {"input": given}))["updatePreferences"]
    return answer


async def test_a_new_customer_is_welcomed_by_email(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    await register(client, "Ada")
    [welcome] = await mail_server.wait_for(lambda m: m["To"] == "ada@example.com")
    assert welcome["Subject"] == "Welcome, Ada"
    assert "Thank you for registering" in plain_text(welcome)
    assert welcome.get_body(("html",)) is not None


async def test_the_profile_has_the_choices_made_at_registration(client: GraphQLClient) -> None:
    ada = await register(client, "Ada", marketingOptIn=True, language="pt-br")
    bob = await register(client, "Bob")
    me = await profile_of(ada)
    assert me["preferences"] == {"marketingOptIn": True, "language": "pt-BR"}
    assert me["version"] == 2
    assert (await profile_of(bob))["preferences"] == {"marketingOptIn": False, "language": "en"}


async def test_staff_see_a_customers_preferences_and_other_customers_do_not(
    client: GraphQLClient,
) -> None:
    ada = await register(client, "Ada", marketingOptIn=True)
    bob = await register(client, "Bob")
    ada_id = (await profile_of(ada))["id"]
    await profile_of(bob)
    query = "query($id: ID!) { customer(id: $id) { preferences { marketingOptIn } } }"
    as_staff = await client.execute(query, {"id": ada_id})
    assert as_staff["customer"] == {"preferences": {"marketingOptIn": True}}
    assert (await bob.execute(query, {"id": ada_id}))["customer"] is None


async def test_a_customer_changes_its_preferences(client: GraphQLClient) -> None:
    ada = await register(client, "Ada")
    version = (await profile_of(ada))["version"]
    answer = await update(ada, marketingOptIn=True, language="fr", expectedVersion=version)
    assert answer["__typename"] == "UpdatePreferencesSuccess", answer
    assert answer["preferences"] == {"marketingOptIn": True, "language": "fr"}
    assert answer["customer"] == {"version": version + 1}
    me = await ada.execute(ME)
    assert me["me"]["preferences"] == {"marketingOptIn": True, "language": "fr"}


async def test_a_stale_version_is_a_conflict_and_changes_nothing(client: GraphQLClient) -> None:
    ada = await register(client, "Ada")
    version = (await profile_of(ada))["version"]
    await update(ada, marketingOptIn=True, language="fr")
    events = await client.event_count()
    answer = await update(ada, marketingOptIn=False, language="de", expectedVersion=version)
    assert answer["__typename"] == "ConflictError", answer
    assert (answer["expectedVersion"], answer["actualVersion"]) == (version, version + 1)
    assert await client.event_count() == events
    assert (await ada.execute(ME))["me"]["preferences"]["language"] == "fr"


@pytest.mark.parametrize("language", ["English", "en_US", "", "e" * 10_000])
async def test_a_language_that_is_no_language_tag_is_refused(
    client: GraphQLClient, language: str
) -> None:
    ada = await register(client, "Ada")
    events = await client.event_count()
    answer = await update(ada, marketingOptIn=True, language=language)
    assert answer["__typename"] == "ValidationError", answer
    assert answer["fields"] == [
        {"path": ["language"], "message": "a language tag such as en, fr or pt-BR"}
    ]
    assert await client.event_count() == events


async def test_registering_with_a_bad_language_is_refused(client: GraphQLClient) -> None:
    given = {"name": "Ada", "email": "ada@example.com", "language": "klingon!"}
    answer = (await client.anonymous().execute(REGISTER, {"input": given}))["registerCustomer"]
    assert answer["__typename"] == "ValidationError"
    assert answer["fields"] == [
        {"path": ["language"], "message": "a language tag such as en, fr or pt-BR"}
    ]
    assert await client.event_count() == 0


@pytest.mark.parametrize("caller", ["anonymous", "staff"])
async def test_only_a_customer_may_change_preferences(client: GraphQLClient, caller: str) -> None:
    who = client.anonymous() if caller == "anonymous" else client
    answer = await update(who, marketingOptIn=True, language="en")
    assert answer["__typename"] == "NotAuthorizedError", answer


async def test_marketing_hears_only_of_customers_who_opted_in(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    await register(client, "Ada", marketingOptIn=True)
    await register(client, "Bob")
    await register(client, "Cy", marketingOptIn=True, language="fr")
    ada, cy = await mail_server.wait_for(lambda m: m["To"] == MARKETING, count=2)
    assert ada["Subject"] == "Marketing opt-in: ada@example.com"
    assert "Ada <ada@example.com>" in plain_text(ada)
    assert "Write to them in: fr" in plain_text(cy)
    # The note handler takes events in log order, so Cy's note means Bob's registration was
    # handled; and every customer is welcomed, so no reaction to it is still to come.
    await mail_server.wait_for(lambda m: m["To"].endswith("@example.com"), count=3)
    assert [m["Subject"] for m in mail_server.to(MARKETING)] == [
        "Marketing opt-in: ada@example.com",
        "Marketing opt-in: cy@example.com",
    ]


async def test_marketing_hears_of_a_customer_who_turns_marketing_on_later(
    client: GraphQLClient, mail_server: MailServer
) -> None:
    bob = await register(client, "Bob")
    await profile_of(bob)
    answer = await update(bob, marketingOptIn=True, language="en")
    assert answer["__typename"] == "UpdatePreferencesSuccess", answer
    [note] = await mail_server.wait_for(lambda m: m["To"] == MARKETING)
    assert "Bob <bob@example.com>" in plain_text(note)
    assert "in their preferences" in plain_text(note)


async def test_on_postgresql_the_profile_and_a_customers_changes_take_turns(
    tmp_path: Path, mail_server: MailServer
) -> None:
    """The profile's command and the customer's own lock the customer's row (FOR NO KEY
    UPDATE) rather than fail on its version."""
    async with postgres_database_url() as url:
        settings = sqlite_settings(tmp_path, database_url=url, smtp_url=SecretStr(mail_server.url))
        with serve(settings) as running:
            async with httpx.AsyncClient(timeout=60) as http:
                client = GraphQLClient(http, running)
                ada = await register(client, "Ada", language="de")
                # Before the profile exists, or right after: either way the customer's wins.
                answer = await update(ada, marketingOptIn=True, language="fr")
                assert answer["__typename"] == "UpdatePreferencesSuccess", answer
                await mail_server.wait_for(lambda m: m["To"] == "ada@example.com")
                me = await profile_of(ada)
                assert me["preferences"] == {"marketingOptIn": True, "language": "fr"}
                stale = await update(ada, marketingOptIn=False, language="fr", expectedVersion=1)
                assert stale["__typename"] == "ConflictError", stale
