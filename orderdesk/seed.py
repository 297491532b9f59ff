"""Demo data for a first look at the API: a small catalog, a few customers, and orders in every
status, made through the command handlers as a client's mutations would make them, so that the
event log, the read models and the subscriptions' history are the real thing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from domain.orders import Address, OrderStatus
from handlers.access import Identity, Role
from handlers.customers import RegisterCustomer
from handlers.orders import (
    CancelOrder,
    ConfirmOrder,
    DeliverOrder,
    LineRequest,
    PlaceOrder,
    ShipOrder,
)
from handlers.products import CreateProduct
from handlers.written import Written
from mediator import Command, Context
from orderdesk.bootstrap import Services
from persistence.tables import customers, products


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    name: str
    email: str
    address: Address


@dataclass(frozen=True, slots=True)
class DemoOrder:
    customer: str
    """The customer's email."""
    lines: tuple[tuple[str, int], ...]
    """(sku, quantity) pairs."""
    status: OrderStatus
    special_instructions: str = ""


PRODUCTS = (
    CreateProduct(
        "KB-SPLIT-01",
        "Ergonomic Split Keyboard",
        Decimal("149.00"),
        description="Tented split layout with hot-swappable switches.",
        stock=40,
    ),
    CreateProduct(
        "MS-VERT-02",
        "Vertical Wireless Mouse",
        Decimal("59.90"),
        description="Handshake grip, three DPI steps, USB-C charging.",
        stock=65,
    ),
    CreateProduct(
        "MN-27Q-03",
        '27" QHD Monitor',
        Decimal("329.00"),
        description="2560x1440 IPS panel, 75 Hz, height-adjustable stand.",
        stock=18,
    ),
    # Low on stock: its two orders leave one.
    CreateProduct(
        "DK-FRAME-04",
        "Standing Desk Frame",
        Decimal("489.00"),
        description="Dual-motor frame, 62-127 cm, four memory presets.",
        stock=3,
    ),
    CreateProduct(
        "CH-MESH-05",
        "Mesh Office Chair",
        Decimal("279.00"),
        description="Breathable back, adjustable lumbar support and 4D armrests.",
        stock=22,
    ),
    CreateProduct(
        "LS-ALU-06",
        "Aluminium Laptop Stand",
        Decimal("39.50"),
        description="Folds flat; six heights for laptops up to 17 inches.",
        stock=120,
    ),
    CreateProduct(
        "HB-USBC-07",
        "USB-C Hub, 7 Ports",
        Decimal("45.00"),
        description="HDMI 4K60, two USB-A, SD and microSD, 100 W pass-through.",
        stock=80,
    ),
    CreateProduct(
        "HP-ANC-08",
        "Noise-Cancelling Headphones",
        Decimal("199.00"),
        description="Over-ear, 30 hours of battery, multipoint Bluetooth.",
        stock=30,
    ),
    CreateProduct(
        "WC-4K-09",
        "4K Webcam",
        Decimal("119.00"),
        description="Autofocus, dual microphones and a privacy shutter.",
        stock=25,
    ),
    CreateProduct(
        "DL-LED-10",
        "LED Desk Lamp",
        Decimal("34.95"),
        description="Dimmable, five colour temperatures, wireless charging base.",
        stock=75,
    ),
    CreateProduct(
        "CB-TB4-11",
        "Thunderbolt 4 Cable, 1 m",
        Decimal("29.00"),
        description="40 Gbit/s, 100 W charging, braided.",
        stock=150,
    ),
    CreateProduct(
        "MT-XL-12",
        "Extended Desk Mat",
        Decimal("24.00"),
        description="90 x 40 cm, stitched edges, water-resistant.",
        stock=90,
    ),
)
"""The catalog, as the commands staff send to create it."""

CUSTOMERS = (
    DemoCustomer(
        "Ada Lovelace",
        "ada@example.com",
        Address("12 St James's Square", "London", "SW1Y 4JH", "GB"),
    ),
    DemoCustomer(
        "Grace Hopper",
        "grace@example.com",
        Address("1200 Navy Pentagon", "Arlington", "22202", "US", state="VA"),
    ),
    DemoCustomer(
        "Alan Turing",
        "alan@example.com",
        Address("78 High Street", "Wilmslow", "SK9 1AB", "GB"),
    ),
    DemoCustomer(
        "Katherine Johnson",
        "katherine@example.com",
        Address("21 Langley Boulevard", "Hampton", "23681", "US", state="VA"),
    ),
)

ORDERS = (
    DemoOrder(
        "ada@example.com",
        (("KB-SPLIT-01", 1), ("MT-XL-12", 1)),
        OrderStatus.DELIVERED,
    ),
    DemoOrder(
        "ada@example.com",
        (("MN-27Q-03", 2), ("HB-USBC-07", 1), ("CB-TB4-11", 2)),
        OrderStatus.SHIPPED,
        "Leave with the concierge.",
    ),
    DemoOrder("ada@example.com", (("DL-LED-10", 1),), OrderStatus.PENDING),
    DemoOrder(
        "grace@example.com",
        (("DK-FRAME-04", 1), ("CH-MESH-05", 1)),
        OrderStatus.CONFIRMED,
        "Deliver to the loading dock, weekdays 9-17.",
    ),
    DemoOrder("grace@example.com", (("HP-ANC-08", 1),), OrderStatus.DELIVERED),
    DemoOrder(
        "alan@example.com",
        (("WC-4K-09", 1), ("MS-VERT-02", 1)),
        OrderStatus.CANCELLED,
    ),
    DemoOrder(
        "katherine@example.com",
        (("LS-ALU-06", 2), ("DK-FRAME-04", 1)),
        OrderStatus.PENDING,
    ),
)

_MOVES: dict[OrderStatus, tuple[Callable[[str], Command[Written]], ...]] = {
    OrderStatus.PENDING: (),
    OrderStatus.CONFIRMED: (ConfirmOrder,),
    OrderStatus.SHIPPED: (ConfirmOrder, ShipOrder),
    OrderStatus.DELIVERED: (ConfirmOrder, ShipOrder, DeliverOrder),
    OrderStatus.CANCELLED: (
        lambda order_id: CancelOrder(order_id, reason="Ordered the wrong model."),
    ),
}
"""The commands that take a placed (PENDING) order to each status."""

_STAFF = Identity("seed", Role.STAFF)
_CORRELATION_ID = "seed"


class DatabaseNotEmpty(Exception):
    """Demo data goes into an empty database only: it would mix with real data otherwise."""

    def __init__(self, products: int, customers: int) -> None:
        super().__init__(
            f"the database already holds {products} products and {customers} customers; "
            "demo data goes into an empty database only"
        )
        self.products = products
        self.customers = customers


@dataclass(frozen=True, slots=True)
class Seeded:
    products: int
    customers: dict[str, str]
    """Each demo customer's id, by email, in the order they were registered."""
    orders: Counter[OrderStatus]

    @property
    def first_customer(self) -> tuple[DemoCustomer, str]:
        """The first demo customer, who has orders in several states, and its id."""
        first = CUSTOMERS[0]
        return first, self.customers[first.email]


async def existing_rows(services: Services) -> tuple[int, int]:
    """How many products and customers the write model holds (the source of truth, whatever
    the read models have applied)."""
    async with services.write_engine.connect() as connection:
        product_count = await connection.scalar(select(func.count()).select_from(products))
        customer_count = await connection.scalar(select(func.count()).select_from(customers))
    return int(product_count or 0), int(customer_count or 0)


async def seed(services: Services) -> Seeded:
    """Fill the empty database of started `services` with the demo data; returns what it
    made once every running projection has applied it.

    Staff create the catalog and move the orders along, each customer registers itself and
    places its own orders, as their mutations would.
    """
    product_count, customer_count = await existing_rows(services)
    if product_count or customer_count:
        raise DatabaseNotEmpty(product_count, customer_count)
    send = services.mediator.send

    def as_staff() -> Context:
        return Context(correlation_id=_CORRELATION_ID, identity=_STAFF)

    def as_customer(customer_id: str) -> Context:
        identity = Identity(customer_id, Role.CUSTOMER)
        return Context(correlation_id=_CORRELATION_ID, identity=identity)

    product_ids: dict[str, str] = {}
    for product in PRODUCTS:
        created = await send(product, as_staff())
        product_ids[product.sku] = created.entity_id

    customer_ids: dict[str, str] = {}
    for customer in CUSTOMERS:
        # Anonymous, as a sign-up is.
        registered = await send(
            RegisterCustomer(name=customer.name, email=customer.email),
            Context(correlation_id=_CORRELATION_ID),
        )
        customer_ids[customer.email] = registered.entity_id

    addresses = {customer.email: customer.address for customer in CUSTOMERS}
    statuses: Counter[OrderStatus] = Counter()
    for order in ORDERS:
        customer_id = customer_ids[order.customer]
        placed = await send(
            PlaceOrder(
                lines=tuple(
                    LineRequest(product_ids[sku], quantity) for sku, quantity in order.lines
                ),
                shipping_address=addresses[order.customer],
                special_instructions=order.special_instructions,
            ),
            as_customer(customer_id),
        )
        for move in _MOVES[order.status]:
            # A customer cancels its own order; staff move orders on.
            mover = (
                as_customer(customer_id) if order.status is OrderStatus.CANCELLED else as_staff()
            )
            await send(move(placed.entity_id), mover)
        statuses[order.status] += 1

    # Each command waited for its own read models already; this covers every projection.
    head = await services.projector.log_head()
    await services.projector.wait_for(head, services.settings.read_your_writes_timeout)
    return Seeded(products=len(product_ids), customers=customer_ids, orders=statuses)
