"""The document limits and the cache of prepared documents: built once, shared by requests,
never by schemas with other limits."""

from __future__ import annotations

import asyncio

from schema.documents import PreparedDocuments
from schema.root import build_schema


def _aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: __typename" for i in range(count)) + " }"


SHALLOW = "{ products { totalCount } }"  # depth 2
DEEP = (  # depth 9
    "{ orders { edges { node { lines { product { price { amount } } } } } } }"
)


async def test_concurrent_requests_on_schemas_with_other_limits_stay_apart() -> None:
    strict = build_schema(max_depth=4, max_aliases=2, max_tokens=2_000)
    lenient = build_schema(max_depth=20, max_aliases=30, max_tokens=2_000)
    documents = [_aliases(1), _aliases(5), SHALLOW, DEEP, "{ __typename }"]

    async def run(schema_name: str, document: str) -> tuple[str, str, bool]:
        """Whether the limits let the document through (executing it needs a context
        these tests do not give, which fails later and otherwise)."""
        schema = strict if schema_name == "strict" else lenient
        result = await schema.execute(document)
        limited = [e for e in result.errors or [] if "depth" in e.message or "aliases" in e.message]
        return schema_name, document, not limited

    # Interleaved: the same texts, at once, on both schemas, several times over.
    runs = [
        run(name, document)
        for _ in range(5)
        for document in documents
        for name in ("strict", "lenient")
    ]
    outcomes = await asyncio.gather(*runs)

    refused_by_strict = {_aliases(5), DEEP}
    for name, document, ok in outcomes:
        if name == "lenient":
            assert ok, document
        else:
            assert ok == (document not in refused_by_strict), document


async def test_a_refused_document_stays_refused_and_says_why() -> None:
    schema = build_schema(max_aliases=2)
    for _ in range(3):  # the second and third come from the cache
        result = await schema.execute(_aliases(3))
        assert result.errors is not None
        assert "aliases" in result.errors[0].message


async def test_the_token_limit_holds_before_anything_is_cached() -> None:
    schema = build_schema(max_tokens=20)
    result = await schema.execute(_aliases(15))
    assert result.errors is not None
    assert "token" in result.errors[0].message.lower()


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    documents = PreparedDocuments(max_depth=10, max_aliases=30, max_tokens=2_000, maxsize=2)
    first = documents.parsed("{ a: __typename }")
    documents.parsed("{ b: __typename }")
    assert documents.parsed("{ a: __typename }") is first  # a hit, and now the most recent
    documents.parsed("{ c: __typename }")  # evicts b
    assert len(documents) == 2
    assert documents.parsed("{ a: __typename }") is first
