"""Which document an operation runs: the text it sent, the text of an automatic persisted
query's hash, or a trusted document named by hash or `documentId`; and whether this caller
may run it (settings.persisted_only, with staff excepted if asked).

What is found here is only a text: it then goes through every limit (length, depth,
aliases, tokens, cost, deadline) as a text sent in the body would, on every use.

Refusals of the request itself (a hash that is not one, a hash that is not the query's, an
unknown version) are `RequestRefused`, HTTP 400. Refusals of the document are GraphQL
errors with no data, answered as the view answers a document that does not validate (200
for application/json clients, 400 for application/graphql-response+json): Apollo's
PersistedQueryLink reads either, and retries with the text on `PERSISTED_QUERY_NOT_FOUND`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from graphql import GraphQLError
from strawberry.types import ExecutionResult

from orderdesk.operation_requests import OperationRequest, RequestRefused
from orderdesk.persisted_queries import SHA256_HEX, PersistedQueries, document_hash
from orderdesk.trusted_documents import TrustedDocuments

APQ_VERSION = 1


@dataclass(frozen=True, slots=True)
class Chosen:
    """The operation with the text it runs; `register` the hash to store that text under
    once it has run (a new APQ registration), else None."""

    operation: OperationRequest
    register: str | None = None


def not_found() -> ExecutionResult:
    # The message and the code are what Apollo's PersistedQueryLink looks for.
    return _refused("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")


def not_allowed() -> ExecutionResult:
    return _refused(
        "only trusted documents are served here: this document is not in the server's "
        "persisted document manifest",
        "PERSISTED_QUERY_NOT_ALLOWED",
    )


def not_supported() -> ExecutionResult:
    # The code makes Apollo's PersistedQueryLink stop hashing and send texts from then on.
    return _refused(
        "automatic persisted queries are turned off on this server: send the query text",
        "PERSISTED_QUERY_NOT_SUPPORTED",
    )


def _refused(message: str, code: str) -> ExecutionResult:
    return ExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])


class PersistedDocuments:
    """The policy over persisted documents; `store` is None when APQ is off, `trusted` None
    when no manifest is named."""

    def __init__(
        self,
        *,
        trusted: TrustedDocuments | None,
        persisted_only: bool,
        staff_excepted: bool,
    ) -> None:
        if persisted_only and trusted is None:
            raise ValueError("persisted_only needs the trusted documents")
        self.trusted = trusted
        self.persisted_only = persisted_only
        self.staff_excepted = staff_excepted

    async def choose(
        self, operation: OperationRequest, *, store: PersistedQueries | None, staff: bool
    ) -> Chosen | ExecutionResult:
        restricted = self.persisted_only and not (self.staff_excepted and staff)
        persisted = (operation.extensions or {}).get("persistedQuery")
        if operation.document_id is not None:
            if operation.query is not None or persisted is not None:
                raise RequestRefused(
                    "send a documentId or a query (or a persistedQuery hash), not both",
                    code="BAD_REQUEST",
                )
            return self._by_document_id(operation, restricted=restricted)
        if persisted is not None:
            sha256 = persisted_query_hash(persisted)
            if operation.query is None:
                return await self._by_hash(operation, sha256, store, restricted=restricted)
            return self._registering(operation, operation.query, sha256, store, restricted)
        if operation.query is None or not restricted:
            # No query at all is Strawberry's to answer ("No GraphQL query found").
            return Chosen(operation)
        assert self.trusted is not None
        return Chosen(operation) if self.trusted.trusts(operation.query) else not_allowed()

    def _by_document_id(
        self, operation: OperationRequest, *, restricted: bool
    ) -> Chosen | ExecutionResult:
        assert operation.document_id is not None
        text = None if self.trusted is None else self.trusted.find(operation.document_id)
        if text is None:
            return not_allowed() if restricted else not_found()
        return Chosen(dataclasses.replace(operation, query=text, document_id=None))

    async def _by_hash(
        self,
        operation: OperationRequest,
        sha256: str,
        store: PersistedQueries | None,
        *,
        restricted: bool,
    ) -> Chosen | ExecutionResult:
        text = None if self.trusted is None else self.trusted.find(sha256)
        if text is None:
            if restricted:
                return not_allowed()
            if store is None:
                return not_supported()
            # In persisted_only mode nothing is registered, so a staff caller's hash is not
            # found and its client sends the text, which staff may.
            text = None if self.persisted_only else await store.find(sha256)
            if text is None:
                return not_found()
        return Chosen(dataclasses.replace(operation, query=text))

    def _registering(
        self,
        operation: OperationRequest,
        query: str,
        sha256: str,
        store: PersistedQueries | None,
        restricted: bool,
    ) -> Chosen | ExecutionResult:
        if document_hash(query) != sha256:
            raise RequestRefused(
                "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query text; "
                "nothing was stored",
                code="PERSISTED_QUERY_HASH_MISMATCH",
            )
        if self.trusted is not None and sha256 in self.trusted.hashes:
            return Chosen(operation)
        if restricted:
            return not_allowed()
        if store is None:
            return not_supported()
        # A staff caller's text runs in persisted_only mode; it is not registered.
        return Chosen(operation, register=None if self.persisted_only else sha256)


def persisted_query_hash(persisted: object) -> str:
    """The hash of an `extensions.persistedQuery`, lower-cased; RequestRefused for anything
    but `{"version": 1, "sha256Hash": "<64 hex digits>"}`."""
    if not isinstance(persisted, dict):
        raise RequestRefused(
            'extensions.persistedQuery must be an object: {"version": 1, "sha256Hash": "..."}',
            code="BAD_REQUEST",
        )
    version = persisted.get("version")
    if version != APQ_VERSION or isinstance(version, bool):
        raise RequestRefused(
            f"persisted query version {str(version)[:20]!r} is not supported; version "
            f"{APQ_VERSION} is",
            code="PERSISTED_QUERY_VERSION_NOT_SUPPORTED",
            supportedVersions=[APQ_VERSION],
        )
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not SHA256_HEX.fullmatch(sha256):
        raise RequestRefused(
            "extensions.persistedQuery.sha256Hash must be a SHA-256: 64 hexadecimal digits",
            code="PERSISTED_QUERY_HASH_INVALID",
        )
    return sha256.lower()
