"""Trusted documents: the operations a frontend was built with, from the manifest its build
wrote, and nothing else (settings.persisted_only).

Two manifest formats are read, both as their tools write them:

- GraphQL Code Generator's client preset (`persisted-documents.json`):
  `{"<hash>": "<document text>", ...}`;
- Apollo's `generate-persisted-query-manifest`:
  `{"format": "apollo-persisted-query-manifest", "version": 1,
  "operations": [{"id": ..., "name": ..., "type": ..., "body": ...}]}`.

A document is found by the manifest's own id, by its SHA-256 (what Apollo's
PersistedQueryLink sends; `sha256:<hex>` as the GraphQL-over-HTTP persisted documents
proposal writes it), or by its text. The manifest is read once, at start-up: a missing or
malformed one stops the start, since serving without it would refuse every request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orderdesk.persisted_queries import document_hash
from orderdesk.settings import Settings

APOLLO_FORMAT = "apollo-persisted-query-manifest"
SHA256_PREFIX = "sha256:"


class InvalidManifest(ValueError):
    """The trusted documents cannot be read: the service must not start."""


@dataclass(frozen=True, slots=True)
class TrustedDocuments:
    by_id: Mapping[str, str]
    """Text by the manifest's ids and by each text's SHA-256."""
    hashes: frozenset[str]
    """The SHA-256 of every trusted text."""

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, document_id: str) -> str | None:
        """The text a documentId or an APQ hash names, None if it is not trusted."""
        if document_id.startswith(SHA256_PREFIX):
            document_id = document_id[len(SHA256_PREFIX) :].lower()
        return self.by_id.get(document_id)

    def trusts(self, text: str) -> bool:
        return document_hash(text) in self.hashes

    @classmethod
    def load(cls, path: Path) -> TrustedDocuments:
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise InvalidManifest(
                f"the persisted document manifest {str(path)!r} cannot be read: "
                f"{error.strerror or error}"
            ) from None
        try:
            manifest = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidManifest(
                f"the persisted document manifest {str(path)!r} is not JSON: {error}"
            ) from None
        try:
            return cls.of(manifest)
        except InvalidManifest as error:
            raise InvalidManifest(
                f"the persisted document manifest {str(path)!r}: {error}"
            ) from None

    @classmethod
    def of(cls, manifest: object) -> TrustedDocuments:
        """From a decoded manifest of either format."""
        if isinstance(manifest, dict) and "format" in manifest:
            documents = _apollo_operations(manifest)
        elif isinstance(manifest, dict):
            documents = _client_preset_documents(manifest)
        else:
            raise InvalidManifest(_NEITHER)
        if not documents:
            raise InvalidManifest("it lists no documents: every request would be refused")
        by_id: dict[str, str] = {}
        for document_id, text in documents:
            by_id[document_id] = text
            by_id[document_hash(text)] = text
        return cls(by_id, frozenset(document_hash(text) for _, text in documents))


_NEITHER = (
    "it is neither GraphQL Code Generator's persisted-documents.json "
    '({"<hash>": "<document>"}) nor an apollo-persisted-query-manifest'
)


def _client_preset_documents(manifest: dict[object, object]) -> list[tuple[str, str]]:
    documents = []
    for key, text in manifest.items():
        if not isinstance(key, str) or not isinstance(text, str) or not text.strip():
            raise InvalidManifest(f"{_NEITHER}: the entry {str(key)[:80]!r} is not a document")
        documents.append((key, text))
    return documents


def _apollo_operations(manifest: dict[object, object]) -> list[tuple[str, str]]:
    if manifest.get("format") != APOLLO_FORMAT:
        raise InvalidManifest(f"its format is {manifest.get('format')!r}, not {APOLLO_FORMAT!r}")
    if manifest.get("version") != 1:
        raise InvalidManifest(
            f"it is version {manifest.get('version')!r} of {APOLLO_FORMAT}; version 1 is read"
        )
    operations = manifest.get("operations")
    if not isinstance(operations, list):
        raise InvalidManifest("its `operations` is not a list")
    documents = []
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise InvalidManifest(f"operation {index} is not an object")
        document_id, body = operation.get("id"), operation.get("body")
        if not isinstance(document_id, str) or not document_id:
            raise InvalidManifest(f"operation {index} has no string `id`")
        if not isinstance(body, str) or not body.strip():
            raise InvalidManifest(f"operation {index} ({document_id!r}) has no `body`")
        documents.append((document_id, body))
    return documents


def trusted_documents_for(settings: Settings) -> TrustedDocuments | None:
    """The manifest these settings name, read now; None when none is named. persisted_only
    without a manifest is a configuration error, raised here at start-up."""
    if settings.persisted_manifest is None:
        if settings.persisted_only:
            raise InvalidManifest(
                "ORDERDESK_PERSISTED_ONLY serves only the documents of a manifest: set "
                "ORDERDESK_PERSISTED_MANIFEST to the path of persisted-documents.json (GraphQL "
                "Code Generator) or of Apollo's persisted-query manifest"
            )
        return None
    return TrustedDocuments.load(Path(settings.persisted_manifest))
