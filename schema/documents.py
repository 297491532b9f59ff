"""Documents parsed, validated and priced once: the limits on depth, aliases, tokens and cost,
who may introspect and who is told "Did you mean", and a bounded cache of what parsing,
validating and estimating a query text gave.

Strawberry's limiters build new validation rule classes in every instance, and an extension
is built per request, so a cache keyed by (document, rules) never hits when the limiters are
factories; validation then costs more than the whole rest of a small query. Here the rules
are built once per schema, and parse, validate and the cost estimate are cached together
under the query text (a string hashes once, where a document hashes its whole tree at every
lookup). The cache belongs to one schema's limits: two schemas with other limits never share
an entry.

Staff see the schema as it is; where introspection or suggestions are off, everyone else is
validated with other rules (introspection refused) and options (suggestions left out), and
the cache keeps each kind of caller's errors apart.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    get_variable_values,
    parse,
    specified_rules,
    validate,
)
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from handlers.access import identity_of
from schema.context import RequestContext
from schema.cost import QueryCosts, QueryTooComplex, chosen_operation

MAX_CACHED_TEXT = 20_000
"""Longer texts (a string literal may fill the body) are parsed each time: the cache holds
at most `maxsize` times this many characters."""

MAX_COERCION_ERRORS = 50
"""As many variable errors as execution itself would report."""


@dataclass(slots=True)
class _Prepared:
    document: DocumentNode
    errors: dict[bool, tuple[GraphQLError, ...]] = field(default_factory=dict)
    """Validation errors by whether the caller is restricted (not staff, where introspection
    or suggestions are off); empty until validated: a document is parsed in one hook and
    validated in the next."""
    costs: dict[str | None, int] = field(default_factory=dict)
    """The estimate of each operation (by the name it is asked for) whose page sizes are in
    the text; one with a page size from a variable is estimated with each request."""


class PreparedDocuments:
    """Query text -> its document, validation errors and cost, least recently used dropped first.

    Bounded, so a stranger sending endless distinct texts costs a parse each, never memory.
    Only parsed documents are kept: a syntax error is raised afresh (parsing stops at the
    token limit, so it stays cheap).

    `max_cost` None estimates nothing. With `introspection_for_all` False, `__schema` and
    `__type` are refused to all but staff; with `suggestions` False, their errors leave out
    "Did you mean".
    """

    def __init__(
        self,
        *,
        max_depth: int,
        max_aliases: int,
        max_tokens: int,
        max_cost: int | None = None,
        introspection_for_all: bool = True,
        suggestions: bool = True,
        maxsize: int = 512,
    ) -> None:
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.suggestions = suggestions
        self.rules: tuple[type[ASTValidationRule], ...] = (
            *specified_rules,
            depth_rule(max_depth, None),
            aliases_rule(max_aliases),
            # What Strawberry's own validation adds to graphql-core's rules.
            MaybeNullValidationRule,
            OneOfInputValidationRule,
        )
        self.restricted_rules = (
            self.rules if introspection_for_all else (*self.rules, NoSchemaIntrospectionCustomRule)
        )
        self.restricts = not (introspection_for_all and suggestions)
        """Whether anyone is validated otherwise than staff."""
        self._costs: QueryCosts | None = None
        self._maxsize = maxsize
        self._entries: OrderedDict[str, _Prepared] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def price_with(self, schema: GraphQLSchema) -> None:
        """Estimate costs against this schema; raises `UnboundedListField` for a list field
        with no bound. The schema's builder calls it, so a gap fails the start, not a request."""
        self._costs = QueryCosts(schema)

    def parsed(self, query: str) -> DocumentNode:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
            return entry.document
        document = parse(query, max_tokens=self.max_tokens)
        if len(query) <= MAX_CACHED_TEXT:
            self._remember(query, _Prepared(document))
        return document

    def refusals(
        self,
        query: str,
        document: DocumentNode,
        schema: GraphQLSchema,
        *,
        operation_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
        restricted: bool = False,
    ) -> list[GraphQLError]:
        """Why this request must not execute: its validation errors for this kind of caller,
        its variables' errors where suggestions are hidden, or a cost above the limit."""
        entry = self._entries.get(query)
        if entry is not None and entry.document is not document:
            entry = None
        errors = entry.errors.get(restricted) if entry is not None else None
        if errors is None:
            errors = tuple(self._validate(schema, document, restricted))
            if entry is not None:
                entry.errors[restricted] = errors
        if errors:
            return list(errors)
        if restricted and not self.suggestions:
            # Execution coerces the variables too, and its errors suggest enum values and
            # input fields: coerce them here first, quietly.
            variable_errors = _variable_errors(schema, document, operation_name, variables)
            if variable_errors:
                return variable_errors
        if self.max_cost is None:
            return []
        cost = self._cost(entry, schema, document, operation_name, variables)
        if cost > self.max_cost:
            return [QueryTooComplex(cost, self.max_cost)]
        return []

    def extension(self) -> DocumentLimits:
        """A per-request extension over this cache (Strawberry builds one per operation)."""
        return DocumentLimits(self)

    def _validate(
        self, schema: GraphQLSchema, document: DocumentNode, restricted: bool
    ) -> list[GraphQLError]:
        if not restricted:
            return validate(schema, document, self.rules)
        return validate(
            schema, document, self.restricted_rules, hide_suggestions=not self.suggestions
        )

    def _cost(
        self,
        entry: _Prepared | None,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
    ) -> int:
        if entry is not None:
            known = entry.costs.get(operation_name)
            if known is not None:
                return known
        if self._costs is None:
            self._costs = QueryCosts(schema)
        estimate = self._costs.estimate(document, operation_name, variables)
        if entry is not None and not estimate.depends_on_variables:
            entry.costs[operation_name] = estimate.cost
        return estimate.cost

    def _remember(self, query: str, entry: _Prepared) -> None:
        self._entries[query] = entry
        if len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)


def _variable_errors(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> list[GraphQLError]:
    operation = chosen_operation(document, operation_name)
    if operation is None or not operation.variable_definitions:
        return []
    coerced = get_variable_values(
        schema,
        operation.variable_definitions,
        dict(variables or {}),
        max_errors=MAX_COERCION_ERRORS,
        hide_suggestions=True,
    )
    return coerced if isinstance(coerced, list) else []


class DocumentLimits(SchemaExtension):
    """Parses, validates and prices through `PreparedDocuments`, with its limits.

    Per request, as Strawberry sets `execution_context` on each instance; it holds nothing
    but the shared cache. Subscriptions (over either websocket protocol) pass through the
    same hooks as queries and mutations.
    """

    def __init__(self, documents: PreparedDocuments) -> None:
        super().__init__()
        self._documents = documents

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            context.graphql_document = self._documents.parsed(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.query:
            context.pre_execution_errors = self._documents.refusals(
                context.query,
                document,
                context.schema._schema,
                operation_name=context.operation_name,
                variables=context.variables,
                restricted=self._documents.restricts and not self._caller_is_staff(),
            )
        yield

    def _caller_is_staff(self) -> bool:
        context = self.execution_context.context
        caller = identity_of(context.ctx) if isinstance(context, RequestContext) else None
        return caller is not None and caller.is_staff
