"""Selections of a mutation's typed errors, one per type, for the errors its result lists:
a fragment on a type the union does not have is a validation error, as for any client."""

from __future__ import annotations

SELECTIONS = {
    "ValidationError": "... on ValidationError { fields { path message } }",
    "NotFoundError": "... on NotFoundError { id }",
    "ConflictError": "... on ConflictError { expectedVersion actualVersion }",
    "OutOfStockError": "... on OutOfStockError { productId requested available }",
    "InvalidTransitionError": "... on InvalidTransitionError { from to }",
    "NotAuthorizedError": "... on NotAuthorizedError { message }",
}


def error_fields(*types: str) -> str:
    """`__typename`, every error's message, and the fields of each of `types`."""
    return " ".join(["__typename", "... on Error { message }", *(SELECTIONS[t] for t in types)])
