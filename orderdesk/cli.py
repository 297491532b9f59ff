"""The `orderdesk` command line."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from strawberry import relay
from strawberry.printer import print_schema

from domain.aggregate import is_possible_id
from domain.customers import Customer
from domain.orders import OrderStatus
from handlers.access import Identity, Role
from orderdesk import server
from orderdesk.bootstrap import bootstrap, tokens_for
from orderdesk.seed import DatabaseNotEmpty, Seeded, seed
from orderdesk.settings import Settings
from persistence.database import create_engine, is_sqlite, is_unavailable
from persistence.projector import UnknownProjection
from persistence.tables import customers
from schema.ids import global_id
from schema.possible_types import possible_types_json
from schema.root import build_schema

cli = typer.Typer(help="orderdesk: an order-management GraphQL API.", no_args_is_help=True)
projections_cli = typer.Typer(help="Inspect the read-model projections.", no_args_is_help=True)
cli.add_typer(projections_cli, name="projections")


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


@cli.command()
def token(
    staff: Annotated[bool, typer.Option("--staff", help="A staff token.")] = False,
    customer: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="A token for this customer: its id as the API gives it (Q3VzdG9tZXI6…).",
        ),
    ] = None,
    subject: Annotated[str, typer.Option(help="Who a staff token names.")] = "staff",
    days: Annotated[int, typer.Option(min=1, max=366, help="Days until it expires.")] = 30,
) -> None:
    """Issue a bearer token (with the server's ORDERDESK_JWT_SECRET)."""
    if staff == (customer is not None):
        raise typer.BadParameter("give exactly one of --staff and --customer")
    settings = Settings()
    if customer is None:
        identity = Identity(subject, Role.STAFF)
    else:
        identity = Identity(_registered_customer(settings, customer), Role.CUSTOMER)
    typer.echo(tokens_for(settings).issue(identity, lifetime=timedelta(days=days)))


def _registered_customer(settings: Settings, given: str) -> str:
    """The customer id inside a Customer's global id, once the database knows that customer:
    a token for nobody would be refused by nothing until its first request."""
    try:
        decoded = relay.GlobalID.from_id(given)
    except ValueError:
        raise typer.BadParameter(
            f"{given!r} is not an id the API gives; pass a customer's `id` "
            "(from registerCustomer, `me` or `customers`), such as Q3VzdG9tZXI6…",
            param_hint="--customer",
        ) from None
    if decoded.type_name != Customer.kind:
        raise typer.BadParameter(
            f"{given!r} is the id of a {decoded.type_name}, not of a {Customer.kind}",
            param_hint="--customer",
        )
    customer_id = decoded.node_id

    async def registered() -> bool:
        engine = create_engine(settings.database_url, timeout=settings.database_timeout)
        try:
            # The write model: a customer just registered may not be in the read models yet.
            async with engine.connect() as connection:
                found = await connection.scalar(
                    select(customers.c.id).where(customers.c.id == customer_id)
                )
            return found is not None
        finally:
            await engine.dispose()

    _require_database(settings)
    try:
        known = is_possible_id(customer_id) and asyncio.run(registered())
    except (DBAPIError, OSError) as error:
        raise typer.Exit(_unreadable(error, "the customers")) from None
    if not known:
        typer.echo(f"no customer has the id {given} in {_shown(settings.database_url)}", err=True)
        raise typer.Exit(1)
    return customer_id


@cli.command("seed")
def seed_command() -> None:
    """Fill an empty database with demo products, customers and orders; print tokens to try
    them with.

    Migrates first (unless ORDERDESK_MIGRATE_ON_START=false), and refuses a database that
    already holds products or customers.
    """
    settings = Settings()
    if settings.cache_url is None:
        # Its own reads need no cache, and one in this process would claim the SQLite file's
        # cache lock from a server started beside it. A shared (Redis) cache stays on: the
        # projections this process applies must invalidate what the servers cached.
        settings = settings.model_copy(update={"query_cache": False})
    # A line per command and migration would bury the tokens; warnings still show.
    logging.getLogger().setLevel(logging.WARNING)

    async def run() -> Seeded:
        services = bootstrap(settings)
        try:
            await services.start()
            return await seed(services)
        finally:
            await services.stop()

    try:
        seeded = asyncio.run(run())
    except DatabaseNotEmpty as error:
        typer.echo(
            f"{_shown(settings.database_url)} already holds {error.products} products and "
            f"{error.customers} customers: `orderdesk seed` fills an empty database only, "
            "and changed nothing.",
            err=True,
        )
        raise typer.Exit(1) from None
    except (DBAPIError, OSError) as error:
        hint = (
            "check ORDERDESK_DATABASE_URL: does the database exist, and may it be written?"
            if settings.migrate_on_start
            else MIGRATE_HINT
        )
        raise typer.Exit(_unreadable(error, "the database", hint)) from None
    tokens = tokens_for(settings)
    lifetime = timedelta(days=30)
    customer, customer_id = seeded.first_customer
    staff_token = tokens.issue(Identity("staff", Role.STAFF), lifetime=lifetime)
    customer_token = tokens.issue(Identity(customer_id, Role.CUSTOMER), lifetime=lifetime)
    statuses = ", ".join(
        f"{seeded.orders[status]} {status.value.lower()}"
        for status in OrderStatus
        if seeded.orders[status]
    )
    port = os.environ.get("ORDERDESK_PORT", "8000")
    typer.echo(
        f"Seeded {_shown(settings.database_url)}: {seeded.products} products, "
        f"{len(seeded.customers)} customers, {sum(seeded.orders.values())} orders ({statuses}).\n"
        "\n"
        "Staff token (30 days), for GraphiQL's Headers:\n"
        f'  {{"Authorization": "Bearer {staff_token}"}}\n'
        "\n"
        f"Customer token (30 days) for {customer.name} <{customer.email}>, "
        f"id {global_id(Customer.kind, customer_id)}:\n"
        f'  {{"Authorization": "Bearer {customer_token}"}}\n'
        "\n"
        f"Run `orderdesk serve` and open http://127.0.0.1:{port}/graphql"
    )


@cli.command()
def handlers() -> None:
    """Every message type with its handler and the behaviors that apply, in order."""
    services = bootstrap(Settings())
    typer.echo(services.mediator.describe_text())


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


def _shown(url: str) -> str:
    """A database URL as it may be printed: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _require_database(settings: Settings) -> None:
    """Stop with a clear message where the SQLite file does not exist, rather than have the
    driver make an empty one that a read then finds without tables."""
    url = make_url(settings.database_url)
    on_disk = is_sqlite(url) and url.database not in (None, "", ":memory:")
    if on_disk and not Path(str(url.database)).exists():
        typer.echo(
            f"there is no database at {url.database}; "
            "run `orderdesk migrate` (or `orderdesk seed`) first.",
            err=True,
        )
        raise typer.Exit(1)


MIGRATE_HINT = "is the database migrated? Run `orderdesk migrate`."


def _unreadable(error: DBAPIError | OSError, what: str, hint: str = MIGRATE_HINT) -> int:
    """The message for a database that cannot be read: unreachable, or not migrated. The
    driver's own words, first line only (never the statement or a traceback)."""
    reason = error.orig if isinstance(error, DBAPIError) else error
    said = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    if isinstance(error, OSError) or is_unavailable(error):
        typer.echo(
            f"cannot reach the database ({said}); "
            "check ORDERDESK_DATABASE_URL and that the database is running.",
            err=True,
        )
    else:
        typer.echo(
            f"cannot read {what} ({said}); {hint}",
            err=True,
        )
    return 1


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
