"""Orders in GraphQL, a module per role: the `order` and `orders` queries (queries.py), the
inputs of the order mutations (inputs.py) and what they answer (results.py), the mutations
that place and move orders (mutations.py) and the orderEvents subscription (events.py). The
order types themselves are in schema/nodes.py."""

from schema.orders.events import OrderEvent, OrderSubscriptions
from schema.orders.mutations import OrderMutations
from schema.orders.queries import OrderQueries

__all__ = ["OrderEvent", "OrderMutations", "OrderQueries", "OrderSubscriptions"]
