"""Every element of the schema is described for the frontend developer who reads it in
GraphiQL or in generated types: types, fields, arguments, input fields and enum values."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    specified_scalar_types,
)

from schema.root import build_schema


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Each element without a description, named as a reader would look for it."""
    missing: list[str] = []

    def check(description: str | None, where: str) -> None:
        if not (description or "").strip():
            missing.append(where)

    for name, named in sorted(schema.type_map.items()):
        if name.startswith("__") or name in specified_scalar_types:
            continue
        check(named.description, f"type {name}")
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in named.fields.items():
                check(field.description, f"field {name}.{field_name}")
                for arg_name, arg in field.args.items():
                    check(arg.description, f"argument {name}.{field_name}({arg_name})")
        elif isinstance(named, GraphQLInputObjectType):
            for field_name, input_field in named.fields.items():
                check(input_field.description, f"input field {name}.{field_name}")
        elif isinstance(named, GraphQLEnumType):
            for value_name, value in named.values.items():
                check(value.description, f"enum value {name}.{value_name}")
    return missing


def test_every_element_of_the_schema_has_a_description() -> None:
    assert undescribed(build_schema()._schema) == []


def test_the_check_names_what_it_finds_undescribed() -> None:
    bare = GraphQLSchema(
        query=GraphQLObjectType(
            "Query",
            {},
        ),
        types=[GraphQLScalarType("Bare"), GraphQLEnumType("Shade", {"DARK": 0})],
    )
    assert undescribed(bare) == ["type Bare", "type Query", "type Shade", "enum value Shade.DARK"]


def test_custom_scalars_say_where_their_format_is_specified() -> None:
    schema = build_schema()._schema
    scalars = [schema.type_map[name] for name in ("DateTime", "Decimal")]
    urls = {s.name: s.specified_by_url for s in scalars if isinstance(s, GraphQLScalarType)}
    assert urls == {
        "DateTime": "https://scalars.graphql.org/andimarek/date-time",
        "Decimal": "https://speleotrove.com/decimal/daconvs.html",
    }
