"""The `orderdesk` command line."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import DBAPIError
from strawberry.printer import print_schema

from orderdesk import seed_and_token_commands, server
from orderdesk.bootstrap import bootstrap
from orderdesk.reaction_commands import reactions_cli, trace_command
from orderdesk.settings import Settings
from persistence.projector import UnknownProjection
from schema.possible_types import possible_types_json
from schema.root import build_schema

cli = typer.Typer(help="orderdesk: an order-management GraphQL API.", no_args_is_help=True)
projections_cli = typer.Typer(help="Inspect the read-model projections.", no_args_is_help=True)
cli.add_typer(projections_cli, name="projections")
cli.add_typer(reactions_cli, name="reactions")


@cli.command()
def serve(
    host: Annotated[
        str,
        typer.Option(
            envvar="ORDERDESK_HOST",
            help="Interface to listen on; 0.0.0.0 for every one (in a container).",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="ORDERDESK_PORT", help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, envvar="ORDERDESK_WORKERS", help="Worker processes.")
    ] = 1,
) -> None:
    """Serve the API (GraphiQL at http://HOST:PORT/graphql), configured by ORDERDESK_*."""
    settings = Settings()
    if workers > 1 and settings.query_cache and settings.cache_url is None:
        # An in-process query cache would not see the other workers' writes in time; the
        # workers read this from the environment they inherit.
        os.environ["ORDERDESK_QUERY_CACHE"] = "false"
        typer.echo(
            "the query cache is off: several workers share it only through "
            "ORDERDESK_CACHE_URL (redis://...)",
            err=True,
        )
    app = "orderdesk.app:create_app"  # an import string: each worker builds its own app
    server.run(
        server.server_config(app, settings, host=host, port=port, workers=workers, app_logging=True)
    )


@cli.command("migrate")
def migrate_command() -> None:
    """Bring the databases to the newest schema."""

    async def run() -> None:
        services = bootstrap(Settings())
        try:
            await services.migrate()
        finally:
            await services.stop()

    asyncio.run(run())
    typer.echo("databases are at the newest schema")


@cli.command("export-schema")
def export_schema(
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    possible_types: Annotated[
        Path | None,
        typer.Option(
            help="Also write Apollo Client's possibleTypes map (every union and interface "
            "with its object types) to this file, as JSON."
        ),
    ] = None,
) -> None:
    """Print the GraphQL schema (SDL)."""
    schema = build_schema()
    sdl = print_schema(schema)
    if possible_types is not None:
        possible_types.write_text(possible_types_json(schema._schema))
    if output is None:
        typer.echo(sdl)
    else:
        output.write_text(sdl + "\n")


# Here, between export-schema and handlers: `orderdesk --help` lists commands as registered.
cli.command()(seed_and_token_commands.token)
cli.command("seed")(seed_and_token_commands.seed_command)


@cli.command()
def handlers() -> None:
    """Every message type with its handler and the behaviors that apply, in order."""
    services = bootstrap(Settings())
    typer.echo(services.mediator.describe_text())


cli.command("trace")(trace_command)


@projections_cli.command("status")
def projections_status() -> None:
    """Each projection's position against the log's head and, if parked, why.

    Reads the checkpoints only: it applies no events and changes nothing.
    """

    async def run() -> None:
        services = bootstrap(Settings())
        try:
            try:
                head = await services.projector.log_head()
                statuses = await services.projector.stored_status()
            except DBAPIError as error:
                raise typer.Exit(_not_migrated(error)) from None
            for status in statuses:
                state = f"parked: {status.parked_error}" if status.parked_error else "running"
                leader = f"\tapplied by {status.leader}" if status.leader else ""
                behind = head - status.position
                typer.echo(
                    f"{status.name}\tposition {status.position} of {head} "
                    f"({behind} behind)\t{state}{leader}"
                )
        finally:
            await services.stop()

    asyncio.run(run())


@projections_cli.command("rebuild")
def projections_rebuild(
    names: Annotated[
        list[str] | None, typer.Argument(help="Projections to rebuild; all when none is named.")
    ] = None,
) -> None:
    """Replay projections from the start of the log into emptied read models.

    One transaction empties a projection's tables and sets its checkpoint to 0; then the
    log is applied again in batches. A server running meanwhile reads the rebuilt models
    empty, then filling up, until the rebuild reaches the head, and holds its subscribers
    back meanwhile; it takes applying the projection back once the rebuild is done.
    """

    async def run() -> None:
        services = bootstrap(Settings())
        try:
            await services.migrate()
            try:
                await services.projector.rebuild(names or None)
            except UnknownProjection as error:
                raise typer.BadParameter(str(error)) from None
            wanted = set(names or [])
            for status in await services.projector.stored_status():
                if not wanted or status.name in wanted:
                    state = f"parked: {status.parked_error}" if status.parked_error else "rebuilt"
                    typer.echo(f"{status.name}\tposition {status.position}\t{state}")
        finally:
            await services.stop()

    asyncio.run(run())


@projections_cli.command("retry")
def projections_retry(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Projections to try again; every parked one when none is named."),
    ] = None,
) -> None:
    """Try parked projections again from where they stopped, once the cause is fixed.

    Clears their parked error in the database; the server process that applies them
    notices within a poll interval and goes on from its checkpoint, and subscribers held
    back meanwhile get every event they missed.
    """

    async def run() -> None:
        services = bootstrap(Settings())
        try:
            try:
                retried = await services.projector.retry(names or None)
            except UnknownProjection as error:
                raise typer.BadParameter(str(error)) from None
            except DBAPIError as error:
                raise typer.Exit(_not_migrated(error)) from None
            if not retried:
                typer.echo("no projection was parked")
            for name in retried:
                typer.echo(f"{name}\tretrying")
        finally:
            await services.stop()

    asyncio.run(run())


def _not_migrated(error: DBAPIError) -> int:
    typer.echo(
        f"cannot read the projections ({type(error.orig).__name__}); "
        "is the database migrated? Run `orderdesk migrate`.",
        err=True,
    )
    return 1


def main() -> None:
    logging.basicConfig(level=logging.INFO, format=server.LOG_FORMAT)
    cli()


if __name__ == "__main__":  # python -m orderdesk.cli
    main()
