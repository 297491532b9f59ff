"""Apollo Client's `possibleTypes`: which object types each union and interface can be.

Apollo's cache needs it to match `... on Error` or `... on Node` fragments against results;
without it, it guesses, and warns. Computed from the schema, so it is never out of date with
a narrowed union or a new error type.
"""

from __future__ import annotations

import json

from graphql import GraphQLInterfaceType, GraphQLSchema, GraphQLUnionType


def possible_types(schema: GraphQLSchema) -> dict[str, list[str]]:
    """Every union and interface (introspection's own aside) with the names of its object
    types, all sorted, so that the same schema always gives the same map."""
    abstract = [
        named
        for name, named in schema.type_map.items()
        if not name.startswith("__") and isinstance(named, GraphQLUnionType | GraphQLInterfaceType)
    ]
    return {
        named.name: sorted(member.name for member in schema.get_possible_types(named))
        for named in sorted(abstract, key=lambda named: named.name)
    }


def possible_types_json(schema: GraphQLSchema) -> str:
    return json.dumps(possible_types(schema), indent=2) + "\n"
