"""`orderdesk reactions status|retry`: the reaction handlers' checkpoints as the database
holds them, whichever process delivers to them; and `orderdesk trace`, what one request
caused. The `orderdesk` app (orderdesk/cli.py) registers them."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError

from orderdesk.bootstrap import bootstrap
from orderdesk.settings import Settings
from orderdesk.trace import EFFECTS, trace
from persistence.reaction_checkpoints import NotParked, UnknownReaction

reactions_cli = typer.Typer(
    help="Inspect and resume the reaction handlers (emails, webhooks, expiry).",
    no_args_is_help=True,
)


@reactions_cli.command("status")
def reactions_status() -> None:
    """Each reaction handler's position against the log's head and, if parked, why.

    Reads the checkpoints only: it delivers nothing and changes nothing.
    """

    async def run() -> None:
        services = bootstrap(Settings())
        try:
            try:
                head = await services.projector.log_head()
                statuses = await services.reactor.stored_status()
            except DBAPIError as error:
                raise typer.Exit(_unreadable(error)) from None
            for status in statuses:
                state = f"parked: {status.parked_error}" if status.parked_error else "running"
                leader = f"\tdelivered by {status.leader}" if status.leader else ""
                typer.echo(
                    f"{status.name}\tposition {status.position} of {head} "
                    f"({max(0, head - status.position)} behind)\t{state}{leader}"
                )
        finally:
            await services.stop()

    asyncio.run(run())


@reactions_cli.command("retry")
def reactions_retry(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Handlers to try again; every parked one when none is named."),
    ] = None,
) -> None:
    """Try parked reaction handlers again from the event they stopped at.

    Clears their parked error in the database; the server process that delivers to them
    notices within a poll interval. What a handler did before it was parked is keyed by
    the event, so nothing it did is done again.
    """

    async def run() -> None:
        services = bootstrap(Settings())
        try:
            try:
                retried = await services.reactor.retry(names or None)
            except UnknownReaction as error:
                raise typer.BadParameter(str(error)) from None
            except DBAPIError as error:
                raise typer.Exit(_unreadable(error)) from None
            if not retried:
                typer.echo("no reaction handler was parked")
            for name in retried:
                typer.echo(f"{name}\tretrying")
        finally:
            await services.stop()

    asyncio.run(run())


@reactions_cli.command("skip")
def reactions_skip(
    name: Annotated[str, typer.Argument(help="The parked handler to move on.")],
) -> None:
    """Move a parked handler past the event it is stuck at, and let it go on with the next.

    For an event it can never handle: a mail server that refuses one address for good, a
    partner that rejects one record. The event is not handled by this handler, ever; the
    others are not affected. Fix the cause and `retry` instead whenever that can work.
    """

    async def run() -> None:
        services = bootstrap(Settings())
        try:
            try:
                skipped = await services.reactor.skip(name)
            except (UnknownReaction, NotParked) as error:
                raise typer.BadParameter(str(error)) from None
            except DBAPIError as error:
                raise typer.Exit(_unreadable(error)) from None
            if skipped is None:
                typer.echo(f"{name}	nothing to skip; retrying")
            else:
                typer.echo(
                    f"{name}	skipped #{skipped.position} {skipped.event_type} "
                    f"(correlation id {skipped.correlation_id}); going on with the next"
                )
        finally:
            await services.stop()

    asyncio.run(run())


def trace_command(
    correlation_id: Annotated[
        str,
        typer.Argument(
            help="A request's id: its X-Request-ID header, on the answer and in its log lines."
        ),
    ],
) -> None:
    """Print what one request caused, in order: each command and its events, the
    projections that applied them, each reaction's outcome, the emails and webhook
    deliveries sent, and the commands reactions sent in turn."""

    async def run() -> None:
        services = bootstrap(Settings())
        try:
            try:
                lines = await trace(services, correlation_id, effects=EFFECTS)
            except DBAPIError as error:
                raise typer.Exit(_unreadable(error)) from None
            for line in lines:
                typer.echo(line)
        finally:
            await services.stop()

    asyncio.run(run())


def _unreadable(error: DBAPIError) -> int:
    typer.echo(
        f"cannot read the reactions' checkpoints ({type(error.orig).__name__}); "
        "is the database migrated? Run `orderdesk migrate`.",
        err=True,
    )
    return 1
