"""`orderdesk --help`: every command the README names, in the order a newcomer meets them,
whichever module defines it (seed and token live apart from the others)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from orderdesk.cli import cli

COMMANDS = [
    "serve",
    "migrate",
    "export-schema",
    "token",
    "seed",
    "handlers",
    "trace",
    "projections",
    "reactions",
]


def test_help_lists_every_command_in_order() -> None:
    group = typer.main.get_command(cli)
    assert list(group.commands) == COMMANDS  # type: ignore[attr-defined]
    shown = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert shown.exit_code == 0, shown.output
    places = [shown.output.index(f" {name} ") for name in COMMANDS]
    assert places == sorted(places), shown.output


def test_token_and_seed_say_what_they_do() -> None:
    runner = CliRunner()
    token = runner.invoke(cli, ["token", "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    seed = runner.invoke(cli, ["seed", "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert token.exit_code == 0
    assert seed.exit_code == 0
    assert "--customer" in token.output
    assert "--staff" in token.output
    assert "Fill an empty database with demo products" in seed.output


def test_token_without_staff_or_customer_is_refused_before_anything_is_read() -> None:
    refused = CliRunner().invoke(cli, ["token"], env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert refused.exit_code == 2
    assert "give exactly one of --staff and --customer" in refused.output
