"""`orderdesk export-schema --possible-types FILE`: Apollo Client's possibleTypes map."""

from __future__ import annotations

import json
from pathlib import Path

from graphql import GraphQLInterfaceType, GraphQLUnionType, build_schema
from typer.testing import CliRunner

from orderdesk.cli import cli


def export(tmp_path: Path, name: str) -> tuple[str, str]:
    sdl, possible = tmp_path / f"{name}.graphql", tmp_path / f"{name}.json"
    result = CliRunner().invoke(
        cli, ["export-schema", "--output", str(sdl), "--possible-types", str(possible)]
    )
    assert result.exit_code == 0, result.output
    return sdl.read_text(), possible.read_text()


def test_possible_types_name_every_union_and_interface_with_its_object_types(
    tmp_path: Path,
) -> None:
    sdl, text = export(tmp_path, "first")
    possible = json.loads(text)
    # Read back from the SDL the same command wrote, as a client's tooling would.
    schema = build_schema(sdl)
    abstract = {
        name: sorted(t.name for t in schema.get_possible_types(named))
        for name, named in schema.type_map.items()
        if isinstance(named, GraphQLUnionType | GraphQLInterfaceType)
    }
    assert possible == abstract
    assert list(possible) == sorted(possible)
    assert possible["Node"] == ["Customer", "Order", "Product", "Webhook"]
    assert possible["PlaceOrderResult"] == [
        "NotAuthorizedError",
        "NotFoundError",
        "OutOfStockError",
        "PlaceOrderSuccess",
        "ValidationError",
    ]
    assert possible["RegisterCustomerResult"] == ["RegisterCustomerSuccess", "ValidationError"]
    # The six of the first cut, and InvalidSignInCodeError.
    assert len(possible["Error"]) == 7


def test_the_map_is_the_same_every_time(tmp_path: Path) -> None:
    assert export(tmp_path, "first")[1] == export(tmp_path, "second")[1]


def test_without_the_option_only_the_sdl_is_printed(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export-schema"])
    assert result.exit_code == 0, result.output
    assert (
        'scalar DateTime @specifiedBy(url: "https://scalars.graphql.org/andimarek/date-time")'
        in (result.output)
    )
    assert list(tmp_path.iterdir()) == []
