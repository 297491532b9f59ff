"""`orderdesk reactions status|retry|skip` against a served app whose mail server turns
every email away for a while: the welcome email's handler is parked, the command line shows
why, a retry once the server is back sends it (once), and a skip moves a handler past an
event it can never send."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from orderdesk.cli import cli
from orderdesk.settings import Settings
from tests.databases import sqlite_settings
from tests.graphql_client import GraphQLClient
from tests.mail_server import MailServer
from tests.served import Served
from tests.ws_client import register

WELCOME = "customers.welcome_email"


@pytest.fixture
def settings(tmp_path: Path, mail_server: MailServer) -> Settings:
    return sqlite_settings(tmp_path, smtp_url=SecretStr(mail_server.url), reaction_max_attempts=2)


@pytest.fixture(autouse=True)
def environment(
    settings: Settings, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the command line reads: the served app's database and mail server."""
    monkeypatch.setenv("ORDERDESK_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ORDERDESK_SMTP_URL", mail_server.url)
    monkeypatch.setenv("ORDERDESK_OUTBOX_DIR", settings.outbox_dir)


async def invoke(*arguments: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["reactions", *arguments])
    return result.exit_code, result.output


async def parked(served: Served) -> None:
    async with asyncio.timeout(20):
        while not any(s.parked_error for s in served.services.reactor.status()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_parked_handler_is_shown_and_resumed_from_the_command_line(
    served: Served, client: GraphQLClient, mail_server: MailServer
) -> None:
    mail_server.refuse_next(2, "451 4.3.0 Mailbox busy")
    await register(client, "Ada")
    await parked(served)

    code, output = await invoke("status")
    assert code == 0, output
    welcome = next(line for line in output.splitlines() if line.startswith(f"{WELCOME}\t"))
    assert "behind)\tparked: SMTPDataError" in welcome
    assert "451" in welcome
    assert "\tdelivered by " in welcome
    profile = next(line for line in output.splitlines() if line.startswith("customers.profile\t"))
    assert "(0 behind)\trunning" in profile, "the others went on"

    code, output = await invoke("retry", WELCOME)
    assert code == 0, output
    assert output.splitlines() == [f"{WELCOME}\tretrying"]
    await mail_server.wait_for(lambda m: "ada@example.com" in str(m["To"]), timeout=20)
    code, output = await invoke("retry")
    assert output.splitlines() == ["no reaction handler was parked"]
    await asyncio.sleep(0.5)
    assert len(mail_server.to("ada@example.com")) == 1


async def test_a_skip_moves_a_parked_handler_past_its_event(
    served: Served, client: GraphQLClient, mail_server: MailServer
) -> None:
    code, output = await invoke("skip", WELCOME)
    assert code == 2, "not parked: a usage error"
    assert "is not parked" in output

    mail_server.refuse_next(2, "451 4.3.0 Mailbox busy", when=lambda m: "ada@" in str(m["To"]))
    await register(client, "Ada")
    await parked(served)
    await register(client, "Bob")

    code, output = await invoke("skip", WELCOME)
    assert code == 0, output
    assert output.startswith(f"{WELCOME}\tskipped #")
    assert "CustomerRegistered" in output
    await mail_server.wait_for(lambda m: "bob@example.com" in str(m["To"]), timeout=20)
    await asyncio.sleep(0.5)
    assert mail_server.to("ada@example.com") == []

    code, output = await invoke("retry", "nobody.at_all")
    assert code == 2
    assert "no reaction handler is named nobody.at_all" in output
