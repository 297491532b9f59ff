"""Documents parsed and validated once: the limits on depth, aliases and tokens, and a bounded
cache of what parsing and validating a query text gave.

Strawberry's limiters build new validation rule classes in every instance, and an extension
is built per request, so a cache keyed by (document, rules) never hits when the limiters are
factories; validation then costs more than the whole rest of a small query. Here the rules
are built once per schema, and parse and validate are cached together under the query text
(a string hashes once, where a document hashes its whole tree at every lookup). The cache
belongs to one schema's limits: two schemas with other limits never share an entry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import ASTValidationRule, DocumentNode, GraphQLError, parse, specified_rules
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document

MAX_CACHED_TEXT = 20_000
"""Longer texts (a string literal may fill the body) are parsed each time: the cache holds
at most `maxsize` times this many characters."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    document: DocumentNode
    errors: tuple[GraphQLError, ...] | None = None
    """None until validated: a document is parsed in one hook and validated in the next."""


class PreparedDocuments:
    """Query text -> its document and validation errors, least recently used dropped first.

    Bounded, so a stranger sending endless distinct texts costs a parse each, never memory.
    Only parsed documents are kept: a syntax error is raised afresh (parsing stops at the
    token limit, so it stays cheap).
    """

    def __init__(
        self, *, max_depth: int, max_aliases: int, max_tokens: int, maxsize: int = 512
    ) -> None:
        self.max_tokens = max_tokens
        self.rules: tuple[type[ASTValidationRule], ...] = (
            *specified_rules,
            depth_rule(max_depth, None),
            aliases_rule(max_aliases),
        )
        self._maxsize = maxsize
        self._entries: OrderedDict[str, _Prepared] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def parsed(self, query: str) -> DocumentNode:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
            return entry.document
        document = parse(query, max_tokens=self.max_tokens)
        if len(query) <= MAX_CACHED_TEXT:
            self._remember(query, _Prepared(document))
        return document

    def errors(self, query: str, document: DocumentNode, schema: object) -> list[GraphQLError]:
        entry = self._entries.get(query)
        if entry is not None and entry.document is document and entry.errors is not None:
            return list(entry.errors)
        errors = validate_document(schema, document, self.rules)  # type: ignore[arg-type]
        if entry is not None and entry.document is document:
            self._entries[query] = _Prepared(document, tuple(errors))
        return errors

    def extension(self) -> DocumentLimits:
        """A per-request extension over this cache (Strawberry builds one per operation)."""
        return DocumentLimits(self)

    def _remember(self, query: str, entry: _Prepared) -> None:
        self._entries[query] = entry
        if len(self._entries) > self._maxsize:
            self._entries.popitem(last=False)


class DocumentLimits(SchemaExtension):
    """Parses and validates through `PreparedDocuments`, with the depth, alias and token limits.

    Per request, as Strawberry sets `execution_context` on each instance; it holds nothing
    but the shared cache.
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
            context.pre_execution_errors = self._documents.errors(
                context.query, document, context.schema._schema
            )
        yield
