"""The schema: every feature's queries, mutations and subscriptions, and the limits on them."""

from __future__ import annotations

import strawberry
from strawberry import relay

from schema.customers import CustomerMutations, CustomerQueries
from schema.documents import PreparedDocuments
from schema.errors import ErrorPolicy, LoggedSchema
from schema.orders import OrderMutations, OrderQueries, OrderSubscriptions
from schema.products import ProductMutations, ProductQueries, ProductSubscriptions
from schema.scalars import SCALAR_OVERRIDES
from schema.sign_in import SignInMutations
from schema.webhooks import WebhookMutations, WebhookQueries


@strawberry.type(
    description="Every change goes through a mutation. Each takes one `input` and answers a "
    "union: its Success type, or one of the typed errors it lists (all implement Error). "
    "Expected refusals are data; only faults come back as GraphQL errors."
)
class Mutation(
    ProductMutations, CustomerMutations, OrderMutations, SignInMutations, WebhookMutations
):
    pass


@strawberry.type(
    description="Live events over a websocket (graphql-transport-ws or graphql-ws) or SSE. "
    "Each event carries a `position`: subscribe again with `after` to miss nothing."
)
class Subscription(ProductSubscriptions, OrderSubscriptions):
    pass


def build_schema(
    *,
    max_depth: int = 10,
    max_aliases: int = 30,
    max_tokens: int = 2_000,
    max_cost: int | None = None,
    introspection_for_all: bool = True,
    suggestions: bool = True,
) -> LoggedSchema:
    """The schema with its document limits; `max_cost` None estimates no cost, and
    `introspection_for_all` and `suggestions` False keep those from all but staff."""

    # A new Query class each time: Strawberry binds relay's `node` field to the schema
    # that converts it first, and tests build several schemas in one process.
    @strawberry.type(
        description="What can be read. Lists are Relay connections of at most 100 per page. "
        "What a caller may not see reads as null or is left out of lists (only the staff "
        "lists `customers`, `webhooks` and `webhookDeliveries` answer others with an error)."
    )
    class Query(ProductQueries, CustomerQueries, OrderQueries, WebhookQueries):
        node: relay.Node | None = relay.node(description="Any object by its global id.")

    documents = PreparedDocuments(
        max_depth=max_depth,
        max_aliases=max_aliases,
        max_tokens=max_tokens,
        max_cost=max_cost,
        introspection_for_all=introspection_for_all,
        suggestions=suggestions,
    )
    schema = LoggedSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        scalar_overrides=SCALAR_OVERRIDES,
        # Factories, not instances: Strawberry sets per-request state on an extension. The
        # limits' rules and the cache of prepared documents are built once, here.
        extensions=[
            ErrorPolicy,
            documents.extension,
        ],
    )
    # Here rather than at the first request: a list field with no bound fails the start.
    documents.price_with(schema._schema)
    schema.parse = documents.parsed
    return schema
