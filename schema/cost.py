"""What executing a document may cost, estimated from the document before anything runs.

Each field costs 1, plus what it holds times how many times it holds it. A list holds its
items up to a bound: a connection's `edges` as many as the page its field asked for (`first`:
the literal, the request's variable, or the argument's default page size), `Order.lines` as
many as an order may have; every other list field of the schema must have a bound in
`LIST_BOUNDS`. A field of an interface or union costs what its costliest possible type would.

Two aliases of one field cost twice: each is resolved apart. A field selected twice under one
name (by two fragments, say) costs twice too, though execution merges the two: the estimate
errs high, never low. `@skip` and `@include` are not read, for the same reason.
Introspection fields cost 1 each whatever they select: they read the schema in memory, never
the database, and the depth and alias limits already bound them.

The estimate counts what resolvers may produce, so a document that asks for a hundred pages of
a hundred orders each is refused before the first row is read, however few rows there are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
)

from domain.orders import MAX_LINES
from domain.webhooks import OFFERED_EVENTS
from handlers.webhooks import MAX_SHOWN_ATTEMPTS

MAX_INPUT_DEPTH = 3
"""The longest path into an input that a field issue names: ("lines", "2", "quantity")."""
MAX_FIELD_ISSUES = 3 * MAX_LINES + 10
"""What one refused input reports at most, in practice: three issues on each line of the
largest order (quantity, a repeated product, a deleted product), and its other fields."""

LIST_BOUNDS: Mapping[str, int] = {
    "Order.lines": MAX_LINES,
    "ValidationError.fields": MAX_FIELD_ISSUES,
    "FieldError.path": MAX_INPUT_DEPTH,
    "Webhook.events": len(OFFERED_EVENTS),
    "WebhookDelivery.attempts": MAX_SHOWN_ATTEMPTS,
}
"""The most items each list field of the schema returns (`Type.field`), but for connections'
`edges`, which hold at most the page asked for."""

PAGE_SIZE_ARGUMENT = "first"
CONNECTION_SUFFIX = "Connection"
PAGE_LIST = "edges"


class UnboundedListField(TypeError):
    """A list field with no known bound, whose cost therefore cannot be estimated.

    Raised when the schema is built, so a new list field cannot reach a client unpriced.
    """


class QueryTooComplex(GraphQLError):
    """A document estimated above the limit: refused before anything of it executes."""

    def __init__(self, cost: int, limit: int) -> None:
        super().__init__(
            f"Query too complex: its estimated cost is {cost}, above the limit of {limit}. "
            "Ask for smaller pages (`first`), fewer aliases or fewer nested lists.",
            extensions={"code": "QUERY_TOO_COMPLEX", "cost": cost, "maxCost": limit},
        )


@dataclass(frozen=True, slots=True)
class Estimate:
    cost: int
    depends_on_variables: bool
    """Whether a page size came from a variable: the estimate then holds for these variables
    only, and cannot be kept with the document."""


@dataclass(frozen=True, slots=True)
class _Field:
    type_name: str
    """The named type it returns."""
    is_list: bool
    multiplier: int | None
    """How many of what it returns: 1, a list's bound, or None for a page of the enclosing
    connection."""
    default_page_size: int | None
    """For a connection field, the page size when `first` is not given; else None."""


_NOT_GIVEN = object()


@dataclass(slots=True)
class _Walk:
    """What one estimate reads and remembers as it goes."""

    fragments: dict[str, FragmentDefinitionNode]
    variables: Mapping[str, object]
    variable_defaults: dict[str, int]
    memo: dict[tuple[int, str, int], int] = field(default_factory=dict)
    """A selection set's cost on an object type at a page size: a fragment spread many times
    over (or nested spreads that double at each level) is priced once."""
    depends_on_variables: bool = False


class QueryCosts:
    """Estimates the cost of documents against one schema, whose list fields it checks first.

    `bounds` maps `Type.field` to the most items that list field returns; a list field that
    is neither there nor a connection's `edges`, and a connection field without a default
    `first`, raise `UnboundedListField` here, as does a bound that names no list field.
    """

    def __init__(self, schema: GraphQLSchema, bounds: Mapping[str, int] = LIST_BOUNDS) -> None:
        self._schema = schema
        self._fields: dict[str, dict[str, _Field]] = {}
        self._covers: dict[str, tuple[str, ...]] = {}
        bounded: set[str] = set()
        for named in schema.type_map.values():
            if named.name.startswith("__"):
                continue
            if isinstance(named, GraphQLObjectType):
                self._covers[named.name] = (named.name,)
                self._fields[named.name] = {
                    name: _field(named, name, bounds, bounded) for name in named.fields
                }
            elif is_abstract_type(named):
                possible = schema.get_possible_types(named)
                self._covers[named.name] = tuple(t.name for t in possible)
        stale = set(bounds) - bounded
        if stale:
            raise UnboundedListField(
                f"LIST_BOUNDS names fields that are not lists of this schema: {sorted(stale)}"
            )

    def estimate(
        self,
        document: DocumentNode,
        operation_name: str | None = None,
        variables: Mapping[str, object] | None = None,
    ) -> Estimate:
        """The cost of the operation `operation_name` (or the only one) of a valid document.

        A document that validation refused may name what does not exist: estimate only
        documents that passed it. An operation that is not there costs 0: executing it
        fails without touching anything.
        """
        operation = chosen_operation(document, operation_name)
        root = self._root(operation) if operation is not None else None
        if operation is None or root is None:
            return Estimate(0, depends_on_variables=False)
        walk = _Walk(
            fragments={
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            },
            variables=variables or {},
            variable_defaults={
                d.variable.name.value: int(d.default_value.value)
                for d in operation.variable_definitions or ()
                if isinstance(d.default_value, IntValueNode)
            },
        )
        cost = self._cost_in(operation.selection_set, root, 0, walk)
        return Estimate(cost, walk.depends_on_variables)

    def _root(self, operation: OperationDefinitionNode) -> str | None:
        root = {
            OperationType.QUERY: self._schema.query_type,
            OperationType.MUTATION: self._schema.mutation_type,
            OperationType.SUBSCRIPTION: self._schema.subscription_type,
        }[operation.operation]
        return root.name if root is not None else None

    def _cost_on(
        self, selection_set: SelectionSetNode, type_name: str, page: int, walk: _Walk
    ) -> int:
        """On a field's type: the costliest of the object types it may be."""
        return max(
            (self._cost_in(selection_set, name, page, walk) for name in self._covers[type_name]),
            default=0,
        )

    def _cost_in(
        self, selection_set: SelectionSetNode, object_name: str, page: int, walk: _Walk
    ) -> int:
        """On one object type, at the page size of the connection it is (if it is one)."""
        key = (id(selection_set), object_name, page)
        known = walk.memo.get(key)
        if known is not None:
            return known
        fields = self._fields[object_name]
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._field_cost(selection, fields, page, walk)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or object_name in self._covers.get(condition.name.value, ()):
                    total += self._cost_in(selection.selection_set, object_name, page, walk)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = walk.fragments.get(selection.name.value)
                if fragment is not None and object_name in self._covers.get(
                    fragment.type_condition.name.value, ()
                ):
                    total += self._cost_in(fragment.selection_set, object_name, page, walk)
        walk.memo[key] = total
        return total

    def _field_cost(
        self, node: FieldNode, fields: dict[str, _Field], page: int, walk: _Walk
    ) -> int:
        described = fields.get(node.name.value)
        if described is None:  # __typename, __schema, __type
            return 1
        times = page if described.multiplier is None else described.multiplier
        if node.selection_set is None:
            return 1 + times if described.is_list else 1
        inner_page = 0
        if described.default_page_size is not None:
            inner_page = _page_size(node, described.default_page_size, walk)
        return 1 + times * self._cost_on(node.selection_set, described.type_name, inner_page, walk)


def _field(
    owner: GraphQLObjectType,
    name: str,
    bounds: Mapping[str, int],
    bounded: set[str],
) -> _Field:
    definition = owner.fields[name]
    path = f"{owner.name}.{name}"
    returned: GraphQLNamedType = get_named_type(definition.type)
    nullable = get_nullable_type(definition.type)
    multiplier: int | None = 1
    is_list = isinstance(nullable, GraphQLList)
    if is_list:
        if isinstance(get_nullable_type(nullable.of_type), GraphQLList):
            raise UnboundedListField(f"{path} is a list of lists: give its cost a rule of its own")
        if path in bounds:
            multiplier = bounds[path]
            bounded.add(path)
        elif owner.name.endswith(CONNECTION_SUFFIX) and name == PAGE_LIST:
            multiplier = None
        else:
            raise UnboundedListField(
                f"{path} returns a list with no known bound: add the most items it can return "
                "to LIST_BOUNDS in schema/cost.py"
            )
    default_page_size = None
    if returned.name.endswith(CONNECTION_SUFFIX):
        first = definition.args.get(PAGE_SIZE_ARGUMENT)
        default = first.default_value if first is not None else None
        if is_list or not isinstance(default, int) or isinstance(default, bool):
            raise UnboundedListField(
                f"{path} returns a connection without a `{PAGE_SIZE_ARGUMENT}: Int` argument "
                "with a default: its edges have no bound"
            )
        default_page_size = default
    return _Field(returned.name, is_list, multiplier, default_page_size)


def chosen_operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation that executing `document` with `name` runs: the named one, or the only
    one; None where execution would find none (and so run nothing)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name is not None and o.name.value == name), None)


def _page_size(node: FieldNode, default: int, walk: _Walk) -> int:
    """`first` as this request gives it, as graphql-core will coerce it; any other value is
    refused when the variables are coerced, so it costs what the default would."""
    for argument in node.arguments or ():
        if argument.name.value != PAGE_SIZE_ARGUMENT:
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return max(0, int(value.value))
        if isinstance(value, VariableNode):
            walk.depends_on_variables = True
            name = value.name.value
            given = walk.variables.get(name, _NOT_GIVEN)
            if given is _NOT_GIVEN:
                given = walk.variable_defaults.get(name, default)
            if isinstance(given, int) and not isinstance(given, bool):
                return max(0, given)
            if isinstance(given, float) and given.is_integer():
                # graphql-core coerces an integral float (100.0) to the Int 100.
                return max(0, int(given))
    return default
