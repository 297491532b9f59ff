"""The commands that get a newcomer into the API: `seed` fills an empty database with demo
data and prints tokens to try it with, `token` issues one for staff or for a customer the
database knows. The `orderdesk` app (orderdesk/cli.py) registers them."""

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

from domain.aggregate import is_possible_id
from domain.customers import Customer
from domain.orders import OrderStatus
from handlers.access import Identity, Role
from orderdesk.bootstrap import bootstrap
from orderdesk.seed import DatabaseNotEmpty, Seeded, seed
from orderdesk.service_secrets import tokens_for
from orderdesk.settings import Settings
from persistence.database import create_engine, is_sqlite, is_unavailable
from persistence.tables import customers
from schema.ids import global_id


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
