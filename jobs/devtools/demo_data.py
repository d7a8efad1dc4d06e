"""The demo database: a seeded, deterministic online store in PostgreSQL and MariaDB.

`create_demo_database` builds the same rows in either engine from `random.Random`
streams seeded per table, with fixed base dates (never now()), so two runs with
the same scale and seed hold byte-identical data. Rows are generated as streams
and loaded in chunks (PostgreSQL COPY, MariaDB multi-row INSERT), so scale 30
(over a million order lines) stays in constant memory.

Besides ordinary rows the store always holds (whatever the scale):

- bad rows a migration must notice: the order `BAD_ORDER_NULL_CUSTOMER` without a
  customer, the order `HUGE_ORDER_ID` whose 5,000 lines with their ~120-character
  product names exceed DynamoDB's 400 KB item limit once embedded, and the two
  products `DUPLICATE_SKU_PRODUCT_IDS` sharing `DUPLICATE_SKU`;
- type traps: customer.balance values with 25 decimals or 21+ integer digits,
  customer.lifetime_value values of 39-40 digits (every `OVERSIZED_VALUE_EVERY`-th
  customer, from `OVERSIZED_VALUE_FIRST_ID`), and the `type_trap` table whose
  rows are exactly `TYPE_TRAP_ROWS`.

Usage: python -m jobs.devtools.demo_data --engine postgres --scale 1 --seed 42 [--database NAME]
The password, if any, comes from the CARVE_DEMO_PASSWORD environment variable,
never from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from itertools import accumulate
from typing import Any, Protocol

ENGINES = ("postgres", "mariadb")
DEFAULT_PORTS = {"postgres": 5432, "mariadb": 3306}
DEFAULT_USERS = {"postgres": "postgres", "mariadb": "root"}
PASSWORD_ENV = "CARVE_DEMO_PASSWORD"

# Bump when the generated rows change: a database built by an older generator
# then no longer counts as "already there" and is rebuilt.
GENERATOR_VERSION = "2"  # 2: foreign keys, for carve scaffold to find
META_TABLE = "carve_demo_meta"

# Deliberate bad rows, at fixed ids so tests and mappings can name them.
HUGE_ORDER_ID = 1  # status 'open', HUGE_ORDER_LINES lines of long-named products
HUGE_ORDER_LINES = 5_000
BAD_ORDER_NULL_CUSTOMER = 2  # orders.customer_id IS NULL
FIRST_REGULAR_ORDER_ID = 3
DUPLICATE_SKU = "HOME-00031-BLK"
DUPLICATE_SKU_PRODUCT_IDS = (31, 32)
# Products 1..LONG_NAME_PRODUCTS carry ~120-character names; the huge order uses them.
LONG_NAME_PRODUCTS = 25
LONG_NAME_CHARS = 120

# Customers that make the data realistic, and awkward, at every scale.
WHALE_CUSTOMER_IDS = (7, 21, 42)  # ~1,500 orders each at scale 1
WHALE_ORDERS_AT_SCALE_1 = 1_500
REGULAR_ORDERS_AT_SCALE_1 = 12_000
SHOWCASE_NAMES = {  # non-ASCII names a tokenizer or a key template must survive
    1: ("Zoë", "Martin"),
    2: ("Łukasz", "Nowak"),
    3: ("結衣", "渡辺"),
    4: ("Siobhán", "O'Brien"),
    5: ("Ava 🌻", "Lindqvist"),
}
EMOJI_CUSTOMER_ID = 5
# customer_id % LONG_DECIMAL_EVERY == 7: balance with 25 decimal digits.
LONG_DECIMAL_EVERY = 50
# customer_id % HUGE_INTEGER_EVERY == 11: balance with 21 to 24 integer digits.
HUGE_INTEGER_EVERY = 97
# customer_id % OVERSIZED_VALUE_EVERY == OVERSIZED_VALUE_FIRST_ID: lifetime_value
# of 39 or 40 digits, which no DynamoDB number (38 digits) can hold.
OVERSIZED_VALUE_EVERY = 500
OVERSIZED_VALUE_FIRST_ID = 5
# customer_id % PRECISE_PREFERENCE_EVERY == 3: preferences hold a 30-digit number.
PRECISE_PREFERENCE_EVERY = 100

# Fixed base dates: the data never depends on the day it was generated.
CUSTOMER_START = datetime(2018, 1, 1, tzinfo=UTC)
ORDER_START = datetime(2020, 1, 1, tzinfo=UTC)
ORDER_END = datetime(2025, 1, 1, tzinfo=UTC)
BIRTH_START = date(1940, 1, 1)
HUGE_ORDER_PLACED_AT = datetime(2024, 12, 20, 9, 15, 0, tzinfo=UTC)
BAD_ORDER_PLACED_AT = datetime(2021, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)

CENT = Decimal("0.01")
# Decimal arithmetic rounds to 28 significant digits by default; the traps need up to 50.
EXACT = Context(prec=100)
Row = tuple[Any, ...]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoDatabase:
    """Where to create the demo database. The password never appears in repr or logs."""

    engine: str  # "postgres" | "mariadb"
    host: str = "127.0.0.1"
    port: int | None = None  # 5432 / 3306 by default
    user: str | None = None  # postgres / root by default
    password: str = field(default="", repr=False)
    database: str = "carve_demo"

    @property
    def resolved_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.engine]

    @property
    def resolved_user(self) -> str:
        return self.user or DEFAULT_USERS[self.engine]


# ---------------------------------------------------------------------------
# Schema: one description, rendered for both engines.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    postgres: str  # the PostgreSQL type; the MariaDB type is derived from it
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    # Foreign-key columns indexed after the load (one index each).
    indexed: tuple[str, ...] = ()
    # Foreign keys (column, parent table, parent column), declared after the load and not checked
    # against the rows already there: the demo keeps its deliberate oddities either way.
    references: tuple[tuple[str, str, str], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _columns(spec: str) -> tuple[Column, ...]:
    """Columns from 'name type [NOT NULL]' lines: the table definitions stay readable."""
    columns = []
    for line in spec.strip().splitlines():
        name, _, rest = line.strip().rstrip(",").partition(" ")
        not_null = rest.endswith(" NOT NULL")
        pg_type = rest.removesuffix(" NOT NULL").strip()
        columns.append(Column(name, pg_type, nullable=not not_null))
    return tuple(columns)


ADDRESS = Table(
    "address",
    _columns("""
        address_id bigint NOT NULL
        street text NOT NULL
        city text NOT NULL
        postal_code text
        country char(2) NOT NULL
    """),
    primary_key=("address_id",),
)
CUSTOMER = Table(
    "customer",
    _columns("""
        customer_id bigint NOT NULL
        first_name text NOT NULL
        last_name text NOT NULL
        email text
        address_id bigint
        created_at timestamptz NOT NULL
        birth_date date
        loyalty_points integer NOT NULL
        balance numeric NOT NULL
        lifetime_value numeric(40,2) NOT NULL
        tags text[]
        preferences jsonb
        external_ref uuid NOT NULL
        credit money NOT NULL
        notes text
        last_login timestamp
        avatar bytea
        is_active boolean NOT NULL
    """),
    primary_key=("customer_id",),
    references=(("address_id", "address", "address_id"),),
)
PRODUCT = Table(
    "product",
    _columns("""
        product_id bigint NOT NULL
        sku text NOT NULL
        name text NOT NULL
        description text
        price numeric(12,2) NOT NULL
        weight_kg double precision NOT NULL
        attributes jsonb
        category_ids int[] NOT NULL
        created_at timestamp NOT NULL
    """),
    primary_key=("product_id",),
)
ORDERS = Table(
    "orders",
    _columns("""
        order_id bigint NOT NULL
        customer_id bigint
        placed_at timestamptz NOT NULL
        status text NOT NULL
        total numeric(14,2) NOT NULL
        ship_within interval NOT NULL
        metadata json
    """),
    primary_key=("order_id",),
    indexed=("customer_id",),
    references=(("customer_id", "customer", "customer_id"),),
)
ORDER_LINE = Table(
    "order_line",
    _columns("""
        order_id bigint NOT NULL
        line_no int NOT NULL
        product_id bigint NOT NULL
        quantity int NOT NULL
        unit_price numeric(12,2) NOT NULL
        discount numeric(5,4) NOT NULL
    """),
    primary_key=("order_id", "line_no"),
    references=(("order_id", "orders", "order_id"), ("product_id", "product", "product_id")),
    # No separate index on order_id: the primary key (order_id, line_no) leads with it.
)
PAYMENT = Table(
    "payment",
    _columns("""
        payment_id bigint NOT NULL
        order_id bigint NOT NULL
        method text NOT NULL
        amount numeric(14,2) NOT NULL
        paid_at timestamptz NOT NULL
        reference uuid NOT NULL
    """),
    primary_key=("payment_id",),
    indexed=("order_id",),
    references=(("order_id", "orders", "order_id"),),
)
REVIEW = Table(
    "review",
    _columns("""
        review_id bigint NOT NULL
        product_id bigint NOT NULL
        customer_id bigint NOT NULL
        rating smallint NOT NULL
        title text NOT NULL
        body text
        created_at timestamptz NOT NULL
    """),
    primary_key=("review_id",),
    indexed=("product_id",),
    references=(("product_id", "product", "product_id"), ("customer_id", "customer", "customer_id")),
)
EMPLOYEE = Table(
    "employee",
    _columns("""
        employee_id bigint NOT NULL
        name text NOT NULL
        title text NOT NULL
        reports_to bigint
    """),
    primary_key=("employee_id",),
    references=(("reports_to", "employee", "employee_id"),),
)
# Every column nullable: the last trap row is all NULL.
TYPE_TRAP = Table(
    "type_trap",
    _columns("""
        id int NOT NULL
        numeric_unbounded numeric
        numeric_38 numeric(38,18)
        numeric_40_2 numeric(40,2)
        jsonb_value jsonb
        json_value json
        int_array int[]
        text_array text[]
        numeric_array numeric[]
        bytea_value bytea
        uuid_value uuid
        money_value money
        timestamp_value timestamp
        timestamptz_value timestamptz
        date_value date
        interval_value interval
        boolean_value boolean
        real_value real
        double_value double precision
        text_value text
    """),
    primary_key=("id",),
)
TABLES = (ADDRESS, CUSTOMER, PRODUCT, EMPLOYEE, ORDERS, ORDER_LINE, PAYMENT, REVIEW, TYPE_TRAP)

# PostgreSQL type -> MariaDB type. Arrays become JSON arrays; interval becomes
# ISO-8601 duration text; timestamptz becomes TIMESTAMP (stored in UTC).
MARIADB_TYPES = {
    "bigint": "BIGINT",
    "integer": "INT",
    "int": "INT",
    "smallint": "SMALLINT",
    "text": "TEXT",
    "char(2)": "CHAR(2)",
    "numeric": "DECIMAL(65,30)",
    "jsonb": "JSON",
    "json": "JSON",
    "int[]": "JSON",
    "text[]": "JSON",
    "numeric[]": "JSON",
    "uuid": "UUID",
    "money": "DECIMAL(19,4)",
    "interval": "VARCHAR(64)",
    "bytea": "BLOB",
    "timestamptz": "TIMESTAMP(6)",
    "timestamp": "DATETIME(6)",
    "date": "DATE",
    "boolean": "BOOLEAN",
    "real": "FLOAT",
    "double precision": "DOUBLE",
}
_NUMERIC_WITH_PRECISION = re.compile(r"numeric\((\d+),(\d+)\)")


def mariadb_type(postgres_type: str) -> str:
    match = _NUMERIC_WITH_PRECISION.fullmatch(postgres_type)
    if match:
        return f"DECIMAL({match[1]},{match[2]})"
    return MARIADB_TYPES[postgres_type]


# ---------------------------------------------------------------------------
# The type trap rows: the exact Python values inserted.
# ---------------------------------------------------------------------------

# Python value per column: Decimal for numeric and money; str holding JSON text
# for jsonb/json (PostgreSQL's jsonb normalizes the text, so compare it parsed,
# with parse_float=Decimal); list for arrays; bytes for bytea; uuid.UUID;
# naive datetime for timestamp; datetime with tzinfo=UTC for timestamptz; str
# holding an ISO-8601 duration for interval (in PostgreSQL's canonical iso_8601
# output form); float for real (stored as float4: compare after rounding to
# float32) and double precision.
TYPE_TRAP_ROWS: list[dict[str, Any]] = [
    {  # precision at and past every limit
        "id": 1,
        "numeric_unbounded": Decimal("0.123456789012345678901234567890"),
        "numeric_38": Decimal("12345678901234567890.123456789012345678"),
        "numeric_40_2": Decimal("12345678901234567890123456789012345678.99"),
        "jsonb_value": (
            '{"name": "Zoë \\"Z\\" O\'Brien", "path": "C:\\\\temp\\\\new", '
            '"multiline": "line one\\nline two\\ttab", "escaped": "caf\\u00e9", "emoji": "🛒", '
            '"nested": {"list": [1, 2.5, null, true, false, {"deep": ["渡辺", ""]}], '
            '"empty_object": {}, "empty_list": []}, '
            '"big": 123456789012345678901234567890, "precise": 1234567890.12345678901234567890, '
            '"nothing": null, "blank": ""}'
        ),
        "json_value": '{"b": 2,  "a": [1, 2.50, "x"],\n "c": null}',
        "int_array": [1, 2, 3],
        "text_array": ["red", "red", "Zoë", "with,comma", 'with "quote"', "NULL", "{brace}"],
        "numeric_array": [
            Decimal("1.10"),
            Decimal("0.000000000000000000000000000001"),
            Decimal("12345678901234567890.123456789"),
        ],
        "bytea_value": b"\x00\x01\x02\xfe\xff\x00",
        "uuid_value": uuid.UUID("123e4567-e89b-42d3-a456-426614174000"),
        "money_value": Decimal("-1234.56"),
        "timestamp_value": datetime(2024, 2, 29, 23, 59, 59, 999999),
        "timestamptz_value": datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        "date_value": date(2024, 2, 29),
        "interval_value": "P1Y2M3DT4H5M6.789S",
        "boolean_value": True,
        "real_value": 0.1,
        "double_value": 0.1,
        "text_value": "Grüße 🛒 渡辺 — \"quoted\" 'single'",
    },
    {  # negative and tiny
        "id": 2,
        "numeric_unbounded": Decimal("-0.000000000000000000000000000001"),
        "numeric_38": Decimal("-99999999999999999999.999999999999999999"),
        "numeric_40_2": Decimal("-0.00"),
        "jsonb_value": '[1, "two", [3, [4, [5]]], {"six": 6}]',
        "json_value": '"just a string"',
        "int_array": [None, -2147483648, 2147483647],
        "text_array": [],
        "numeric_array": [Decimal("-1.5"), None],
        "bytea_value": b"",
        "uuid_value": uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"),
        "money_value": Decimal("999999999999.99"),
        "timestamp_value": datetime(1900, 1, 1, 0, 0, 0, 1),
        "timestamptz_value": datetime(1999, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        "date_value": date(1900, 1, 1),
        "interval_value": "P-1D",
        "boolean_value": False,
        "real_value": 1e-7,
        "double_value": 1e-7,
        "text_value": "",
    },
    {  # empties, zeros, and values Spark's decimal(38,18) cannot hold
        "id": 3,
        "numeric_unbounded": Decimal("123456789012345678901234567890.5"),
        "numeric_38": Decimal("0"),
        "numeric_40_2": Decimal("0.01"),
        "jsonb_value": "{}",
        "json_value": "[]",
        "int_array": [],
        "text_array": [""],
        "numeric_array": [],
        "bytea_value": bytes(range(256)),
        "uuid_value": uuid.UUID("00000000-0000-4000-8000-000000000000"),
        "money_value": Decimal("0.00"),
        # 02:30 on 2021-03-28 does not exist in Europe/Berlin: shifts if a session zone leaks in.
        "timestamp_value": datetime(2021, 3, 28, 2, 30),
        "timestamptz_value": datetime(2021, 3, 28, 1, 30, tzinfo=UTC),
        "date_value": date(9999, 12, 31),
        "interval_value": "PT0.000001S",
        "boolean_value": True,
        "real_value": 123456.789,
        "double_value": 123456.789,
        "text_value": "line one\nline two\ttabbed \\ backslash",
    },
    {  # unicode, duplicate JSON keys, extremes
        "id": 4,
        "numeric_unbounded": Decimal("12345678901234567890.123456789012345678901234567890"),
        "numeric_38": Decimal("0.000000000000000001"),
        "numeric_40_2": Decimal("-99999999999999999999999999999999999999.99"),
        "jsonb_value": '{"a": {"b": {"c": {"d": ["deep", {"e": null}]}}}, "ünïcödé": "キー", "emoji": "🛒"}',
        # json keeps duplicate keys and whitespace; jsonb would keep only the last.
        "json_value": '{"duplicate": 1, "duplicate": 2}',
        "int_array": [0],
        "text_array": ["🛒", "渡辺", 'a"b', "back\\slash"],
        "numeric_array": [Decimal("0"), Decimal("-0.00")],
        "bytea_value": b"\x00",
        "uuid_value": uuid.UUID("0b7d5c6e-1c5b-4f2a-9d3a-1234567890ab"),
        "money_value": Decimal("-0.01"),
        "timestamp_value": datetime(2024, 12, 31, 23, 59, 59, 999999),
        "timestamptz_value": datetime(2037, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "date_value": date(1970, 1, 1),
        "interval_value": "PT36H",
        "boolean_value": False,
        "real_value": -2.5,
        "double_value": -0.0,
        "text_value": "Zoë Łukasz 渡辺 👩‍💻",
    },
    {"id": 5, **{column.name: None for column in TYPE_TRAP.columns[1:]}},  # all NULL
]


# ---------------------------------------------------------------------------
# Sizes and small value helpers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """Row counts to generate; each scales linearly, with floors so bad rows always fit."""

    addresses: int
    customers: int
    products: int
    employees: int
    regular_orders: int  # besides HUGE_ORDER_ID and BAD_ORDER_NULL_CUSTOMER
    reviews: int


def sizes_for(scale: float) -> Sizes:
    def scaled(at_scale_1: int, floor: int) -> int:
        return max(floor, round(at_scale_1 * scale))

    return Sizes(
        addresses=scaled(1_800, 40),
        customers=scaled(2_000, 50),  # >= max(WHALE_CUSTOMER_IDS)
        products=scaled(400, 40),  # >= LONG_NAME_PRODUCTS and DUPLICATE_SKU_PRODUCT_IDS
        employees=scaled(20, 5),
        regular_orders=scaled(REGULAR_ORDERS_AT_SCALE_1, 100),
        reviews=scaled(3_000, 20),
    )


def rng_for(seed: int, stream: str) -> random.Random:
    # One stream per table: a change to one generator does not reshuffle the others.
    # A str seed is hashed with SHA-512, so it does not depend on PYTHONHASHSEED.
    return random.Random(f"carve-demo/{seed}/{stream}")


def random_moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span_us = (end - start) // timedelta(microseconds=1)
    return start + timedelta(microseconds=rng.randrange(span_us))


def random_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def shifted(digits: int, places: int) -> Decimal:
    """digits x 10**-places, exactly (a plain scaleb would round to 28 significant digits)."""
    return Decimal(digits).scaleb(-places, EXACT)


def cents(rng: random.Random, low: int, high: int) -> Decimal:
    return shifted(rng.randint(low, high), 2)


def zipf_cumulative_weights(count: int, exponent: float = 1.0, offset: float = 2.0) -> list[float]:
    # The offset flattens the head a little: rank 1 is popular, not dominant.
    return list(accumulate(1.0 / (rank + offset) ** exponent for rank in range(count)))


def to_json(value: Any) -> str:
    """JSON text that keeps Decimals exact (json.dumps would need floats for them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json_string(k)}: {to_json(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# ---------------------------------------------------------------------------
# Word pools
# ---------------------------------------------------------------------------

FIRST_NAMES = (
    "Anna", "Ben", "Chloé", "David", "Elif", "Fatima", "Georg", "Hana", "Ivan", "Jana",
    "Kofi", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quinn", "Rafael", "Sofia", "Tomás",
    "Ursula", "Viktor", "Wei", "Xavier", "Yara", "Zoë", "Łukasz", "Søren", "José", "Ingrid",
    "Aiko", "Björn", "Émilie", "Noah", "Olivia", "Liam", "Mia", "Lucas", "Emma", "Hiroshi",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Müller", "Nowak", "García", "Kowalski", "渡辺", "田中", "Dubois", "O'Brien",
    "Rossi", "Jensen", "Fernández", "Novák", "Ødegaard", "van der Berg", "Nguyễn", "Johnson",
    "Schmidt", "Silva", "Kim", "Andersson", "Yılmaz", "Popescu", "Papadopoulos", "Brown",
    "Wilson", "Martin", "Lefèvre", "Horváth", "Żak",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "example.de", "example.jp")
TAGS = ("vip", "newsletter", "b2b", "wholesale", "returns-risk", "beta-tester", "früh-kunde", "gift")
LANGUAGES = ("en", "de", "fr", "pl", "ja", "pt-BR", "es")
NICKNAMES = ("Zoë ☕", "Kuba", "ゆい", "Chef", "Mr. \"Q\"", "la_reine", "🚲 rider")
NOTES = (
    "Prefers delivery after 18:00",
    "Rückruf erwünscht",
    "VIP — handle with care ☕",
    "Ring twice.\nDog in the garden.",
    "Invoice to:\tACME GmbH",
    'Asked for "eco" packaging',
    "Path on file: C:\\orders\\2023",
    "配達は午前中希望",
)
# (country, cities, streets, postal pattern: 9 = digit, A = letter, None = no postal codes)
COUNTRIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str | None], ...] = (
    ("US", ("Seattle", "Austin", "Boston", "Denver"), ("Main St", "Oak Ave", "5th Ave"), "99999"),
    ("DE", ("Berlin", "München", "Köln", "Düsseldorf"), ("Hauptstraße", "Gartenweg", "Schloßallee"), "99999"),
    ("FR", ("Paris", "Lyon", "Besançon"), ("Rue de la Paix", "Avenue des Champs-Élysées"), "99999"),
    ("PL", ("Kraków", "Łódź", "Gdańsk"), ("ul. Długa", "ul. Świętokrzyska"), "99-999"),
    ("JP", ("東京", "大阪", "札幌"), ("銀座 4-5-6", "本町 1-2"), "999-9999"),
    ("GB", ("London", "Leeds", "Bristol"), ("Baker Street", "High Street"), "A9 9AA"),
    ("NL", ("Amsterdam", "Utrecht"), ("Keizersgracht", "Oudegracht"), "9999 AA"),
    ("BR", ("São Paulo", "Curitiba"), ("Avenida Paulista", "Rua XV de Novembro"), "99999-999"),
    ("IE", ("Dublin", "Galway"), ("O'Connell Street", "Shop Street"), None),
)


@dataclass(frozen=True)
class Category:
    category_id: int
    code: str
    nouns: tuple[str, ...]


CATEGORIES = (
    Category(1, "HOME", ("Mug", "Teapot", "Cutting Board", "Chef's Knife", "Dutch Oven", "Spice Rack")),
    Category(2, "OUTD", ("Tent", "Sleeping Bag", "Headlamp", "Water Bottle", "Trekking Poles")),
    Category(3, "ELEC", ("USB-C Cable", "Wireless Charger", "Bluetooth Speaker", "Power Bank")),
    Category(4, "APPL", ("T-Shirt", "Hoodie", "Rain Jacket", "Wool Socks", "Beanie")),
    Category(5, "TOYS", ("Puzzle", "Board Game", "Building Set", "Plush Bear", "Kite")),
    Category(6, "OFFI", ("Notebook", "Fountain Pen", "Desk Lamp", "Monitor Stand")),
    Category(7, "GARD", ("Watering Can", "Pruning Shears", "Seed Kit", "Planter")),
    Category(8, "INDU", ("Shelving Unit", "Pallet Jack", "Safety Gloves", "Work Bench")),
)
ADJECTIVES = ("Classic", "Compact", "Deluxe", "Eco", "Ergonomic", "Heavy-Duty", "Lightweight",
              "Premium", "Smart", "Vintage", "Café-Style", "Nordic", "Kyoto")  # fmt: skip
COLORS = (("BLK", "Black"), ("WHT", "White"), ("RED", "Red"), ("BLU", "Blue"), ("GRN", "Green"),
          ("GRY", "Grey"), ("NAT", "Natural"))  # fmt: skip
MATERIALS = ("stainless steel", "oak", "recycled plastic", "organic cotton", "aluminium",
             "ceramic", "merino wool", "bamboo")  # fmt: skip
LONG_NAME_DETAILS = (
    "pack of 12", "180 × 90 × 45 cm", "load capacity 875 kg", "powder-coated finish",
    "adjustable feet", "tool-free assembly", "5-year warranty", "food-safe certified",
    "dishwasher safe", "UV-resistant", "for professional and home use", "Made in Portugal",
    "includes spare parts kit", "EU plug (Typ F)", "recyclable packaging",
)  # fmt: skip
DESCRIPTIONS = (
    "Built to last, with a finish that ages well.",
    "Très pratique au quotidien.",
    "Ideal für kleine Küchen.",
    "Ships flat-packed; assembly takes about 10 minutes.",
    "手入れが簡単です。",
    "Not suitable for children under 3 years.",
    'Our "best seller" three years running.',
)
CERTIFICATIONS = ("CE", "FSC", "GOTS", "UL", "TÜV", "RoHS")
REVIEW_TITLES = ("Great value", "Not as described", "Sehr gut!", "Très bien", "最高です",
                 "Broke after a week", "Five stars ⭐⭐⭐⭐⭐", "Meh", "Would buy again")  # fmt: skip
REVIEW_SENTENCES = (
    "Arrived quickly and well packed.",
    "The colour is slightly different from the photos.",
    "Qualität stimmt, Preis auch.",
    "Would recommend to a friend.",
    "Stopped working after two weeks; support replaced it.",
    "サイズがぴったりでした。",
    "Exactly what I needed 👍",
)
EXECUTIVE_TITLES = ("CFO", "VP Engineering", "VP Sales", "VP Operations")
STAFF_TITLES = ("Engineering Manager", "Software Engineer", "Data Engineer", "Account Executive",
                "Warehouse Lead", "Support Specialist", "Buyer", "Analyst")  # fmt: skip
ORDER_CHANNELS = ("web", "ios", "android", "phone", "marketplace")
UTM_SOURCES = ("newsletter", "google", "instagram", "partner-Ü")
SHIP_WITHIN = ("P1D", "P2D", "P3D", "P5D", "P7D", "PT12H", "P1DT12H")  # ISO-8601 durations
PAYMENT_METHODS = ("card", "paypal", "gift_card", "bank_transfer", "klarna")
LINE_COUNTS = (1, 2, 3, 4, 5, 6, 7)
LINE_COUNT_WEIGHTS = (22, 24, 20, 14, 10, 6, 4)  # mean 3.0 lines per order
QUANTITIES = (1, 2, 3, 4, 5, 10, 24)
QUANTITY_WEIGHTS = (60, 20, 8, 4, 4, 3, 1)
DISCOUNTS = tuple(Decimal(d) for d in ("0.0000", "0.0500", "0.1000", "0.1500", "0.0725", "0.3333"))
DISCOUNT_WEIGHTS = (70, 10, 8, 6, 4, 2)


# ---------------------------------------------------------------------------
# Row generators: each yields tuples in its table's column order.
# ---------------------------------------------------------------------------


def postal_code(rng: random.Random, pattern: str | None) -> str | None:
    if pattern is None:
        return None
    alphabet = {"9": "0123456789", "A": "ABCDEFGHJKLMNPRSTUVWXYZ"}
    return "".join(rng.choice(alphabet[c]) if c in alphabet else c for c in pattern)


def address_rows(sizes: Sizes, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "address")
    for address_id in range(1, sizes.addresses + 1):
        country, cities, streets, pattern = rng.choice(COUNTRIES)
        street = f"{rng.randint(1, 250)} {rng.choice(streets)}"
        if rng.random() < 0.15:
            street += f", Apt {rng.randint(1, 40)}"
        yield (address_id, street, rng.choice(cities), postal_code(rng, pattern), country)


_ASCII_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "ı": "i", "'": "", " ": ""})


def email_for(first: str, last: str, customer_id: int, domain: str) -> str:
    def fold(name: str) -> str:
        ascii_name = unicodedata.normalize("NFKD", name.translate(_ASCII_FOLD))
        # CJK names have no ASCII form: keep them (an internationalized address).
        return ascii_name.encode("ascii", "ignore").decode() or name.replace(" ", "")

    return f"{fold(first)}.{fold(last)}{customer_id}@{domain}".lower()


def customer_name(rng: random.Random, customer_id: int) -> tuple[str, str]:
    # Draw even for showcase ids so the stream does not depend on the overrides.
    drawn = (rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES))
    return SHOWCASE_NAMES.get(customer_id, drawn)


def customer_balance(rng: random.Random, customer_id: int) -> Decimal:
    """Unbounded numeric: mostly cents, some 25-decimal and some 21+-integer-digit values."""
    if customer_id % LONG_DECIMAL_EVERY == 7:
        return shifted(rng.randrange(10**24, 10**25), 25)  # like 0.1234567890123456789012345
    if customer_id % HUGE_INTEGER_EVERY == 11:
        return shifted(rng.randrange(10**20, 10**24) * 10 + 5, 1)
    return cents(rng, -5_000, 200_000)


def lifetime_value(rng: random.Random, customer_id: int) -> Decimal:
    """numeric(40,2): mostly small; 39-40 digits for a few customers (over DynamoDB's 38)."""
    if customer_id % OVERSIZED_VALUE_EVERY == OVERSIZED_VALUE_FIRST_ID:
        return shifted(rng.randrange(10**38, 10**40), 2)
    return shifted(int(rng.expovariate(1 / 60_000)), 2)


def customer_tags(rng: random.Random) -> list[str] | None:
    if rng.random() < 0.03:
        return None
    count = rng.choices((0, 1, 2, 3, 4), weights=(35, 30, 20, 10, 5))[0]
    return rng.choices(TAGS, k=count)  # with replacement: duplicates happen, like in real data


def customer_preferences(rng: random.Random, customer_id: int) -> str | None:
    """jsonb text: nested objects and arrays, unicode, '' and null values."""
    if rng.random() < 0.08:
        return None
    doc: dict[str, Any] = {
        "language": rng.choice(LANGUAGES),
        "newsletter": rng.random() < 0.5,
        "channels": rng.sample(("email", "sms", "push", "post"), rng.randint(0, 3)),
        "theme": rng.choice(("", "dark", "light")),
        "sizes": {"shoe": Decimal(rng.randint(70, 96)) / 2, "shirt": rng.choice(("S", "M", "L", "XL"))},
        "referrer": None if rng.random() < 0.7 else f"friend-{rng.randint(1, 9999)}",
    }
    if rng.random() < 0.3:
        doc["nickname"] = rng.choice(NICKNAMES)
    if customer_id % PRECISE_PREFERENCE_EVERY == 3:
        # 30 significant digits: more than a double or a DynamoDB number holds.
        doc["loyalty_multiplier"] = shifted(rng.randrange(10**29, 10**30), 29)
    return to_json(doc)


def customer_notes(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.55:
        return None
    if roll < 0.65:
        return ""
    return rng.choice(NOTES)


def customer_row(rng: random.Random, customer_id: int, sizes: Sizes) -> Row:
    first, last = customer_name(rng, customer_id)
    domain = "example.jp" if first in ("結衣", "Aiko", "Hiroshi") else rng.choice(EMAIL_DOMAINS)
    email = None if rng.random() < 0.05 else email_for(first, last, customer_id, domain)
    address_id = rng.randint(1, sizes.addresses) if rng.random() < 0.9 else None
    created_at = random_moment(rng, CUSTOMER_START, ORDER_END - timedelta(days=180))
    birth_date = None if rng.random() < 0.1 else BIRTH_START + timedelta(days=rng.randrange(66 * 365))
    loyalty_points = int(rng.paretovariate(1.5) * 100) - 100
    last_login = None
    if rng.random() > 0.05:
        # Naive on purpose: the application wrote local wall-clock time.
        last_login = random_moment(rng, created_at, ORDER_END).replace(tzinfo=None)
    avatar = rng.randbytes(rng.randint(16, 96)) if rng.random() < 0.35 else None
    return (
        customer_id, first, last, email, address_id, created_at, birth_date, min(loyalty_points, 2_000_000),
        customer_balance(rng, customer_id), lifetime_value(rng, customer_id), customer_tags(rng),
        customer_preferences(rng, customer_id), random_uuid(rng), cents(rng, -50_000, 500_000),
        customer_notes(rng), last_login, avatar, rng.random() < 0.9,
    )  # fmt: skip


def customer_rows(sizes: Sizes, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "customer")
    for customer_id in range(1, sizes.customers + 1):
        yield customer_row(rng, customer_id, sizes)


def product_prices(sizes: Sizes, seed: int) -> list[Decimal]:
    """Price of product i at index i-1: order lines need them, so they get their own stream."""
    rng = rng_for(seed, "product-price")
    return [max(Decimal("0.99"), shifted(round(rng.lognormvariate(3.2, 1.0) * 100), 2))
            for _ in range(sizes.products)]  # fmt: skip


def long_product_name(rng: random.Random, category: Category) -> str:
    """About LONG_NAME_CHARS characters, the way B2B catalogues name things."""
    name = f"{rng.choice(ADJECTIVES)} {rng.choice(MATERIALS)} {rng.choice(category.nouns)}"
    for detail in rng.sample(LONG_NAME_DETAILS, len(LONG_NAME_DETAILS)):
        if len(name) + 2 + len(detail) <= LONG_NAME_CHARS:
            name += ", " + detail
    return name


def product_attributes(rng: random.Random, color: str) -> str | None:
    if rng.random() < 0.05:
        return None
    return to_json({
        "color": color,
        "material": rng.choice(MATERIALS),
        "dimensions_cm": {"w": cents(rng, 100, 20_000), "h": cents(rng, 100, 20_000), "d": cents(rng, 50, 5_000)},
        "warranty_years": rng.choice((0, 1, 2, 5)),
        "certifications": rng.sample(CERTIFICATIONS, rng.randint(0, 3)),
        "care": None if rng.random() < 0.5 else rng.choice(DESCRIPTIONS),
    })  # fmt: skip


def product_row(rng: random.Random, product_id: int, price: Decimal) -> Row:
    category = rng.choice(CATEGORIES)
    color_code, color = rng.choice(COLORS)
    if product_id <= LONG_NAME_PRODUCTS:
        name = long_product_name(rng, category)
    else:
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(category.nouns)}, {color}"
    sku = f"{category.code}-{product_id:05d}-{color_code}"
    if product_id in DUPLICATE_SKU_PRODUCT_IDS:
        sku = DUPLICATE_SKU  # the deliberate bad row: two products, one sku
    description = None if rng.random() < 0.1 else " ".join(rng.sample(DESCRIPTIONS, rng.randint(1, 3)))
    others = [c.category_id for c in CATEGORIES if c is not category]
    category_ids = [] if rng.random() < 0.03 else [category.category_id, *rng.sample(others, rng.randint(0, 2))]
    weight_kg = round(rng.lognormvariate(0.0, 1.2) * (8 if category.code == "INDU" else 1), 3)
    created_at = random_moment(rng, CUSTOMER_START, ORDER_END).replace(tzinfo=None)
    return (product_id, sku, name, description, price, weight_kg, product_attributes(rng, color),
            category_ids, created_at)  # fmt: skip


def product_rows(sizes: Sizes, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "product")
    for product_id, price in enumerate(product_prices(sizes, seed), start=1):
        yield product_row(rng, product_id, price)


def employee_rows(sizes: Sizes, seed: int) -> Iterator[Row]:
    """A reporting tree: employee 1 reports to no one, everyone else to an earlier employee."""
    rng = rng_for(seed, "employee")
    for employee_id in range(1, sizes.employees + 1):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if employee_id == 1:
            yield (employee_id, name, "CEO", None)
        elif employee_id <= 1 + len(EXECUTIVE_TITLES):
            yield (employee_id, name, EXECUTIVE_TITLES[employee_id - 2], 1)
        else:
            # Managers sit near the top of the id range, so the tree stays a few levels deep.
            manager = rng.randint(2, max(2, min(employee_id - 1, employee_id // 3 + 2)))
            yield (employee_id, name, rng.choice(STAFF_TITLES), manager)


def review_rows(sizes: Sizes, seed: int) -> Iterator[Row]:
    rng = rng_for(seed, "review")
    products = list(range(1, sizes.products + 1))
    rng.shuffle(products)  # popularity is not tied to product_id
    weights = zipf_cumulative_weights(len(products))
    for review_id in range(1, sizes.reviews + 1):
        product_id = rng.choices(products, cum_weights=weights)[0]
        rating = rng.choices((1, 2, 3, 4, 5), weights=(5, 7, 13, 30, 45))[0]
        roll = rng.random()
        body = None if roll < 0.25 else "" if roll < 0.28 else " ".join(rng.sample(REVIEW_SENTENCES, rng.randint(1, 4)))
        created_at = random_moment(rng, ORDER_START, ORDER_END)
        yield (review_id, product_id, rng.randint(1, sizes.customers), rating, rng.choice(REVIEW_TITLES),
               body, created_at)  # fmt: skip


def type_trap_rows() -> Iterator[Row]:
    for row in TYPE_TRAP_ROWS:
        yield tuple(row[name] for name in TYPE_TRAP.column_names)


# ---------------------------------------------------------------------------
# Orders, their lines and payments: generated together so totals add up.
# ---------------------------------------------------------------------------

ORDERS_PER_BATCH = 10_000


@dataclass
class OrderBatch:
    orders: list[Row] = field(default_factory=list)
    lines: list[Row] = field(default_factory=list)
    payments: list[Row] = field(default_factory=list)


class CustomerPicker:
    """Three whales with a fixed share of all orders; Zipf-like popularity for the rest."""

    def __init__(self, rng: random.Random, sizes: Sizes) -> None:
        self.rng = rng
        whales = set(WHALE_CUSTOMER_IDS)
        self.others = [c for c in range(1, sizes.customers + 1) if c not in whales]
        rng.shuffle(self.others)
        self.weights = zipf_cumulative_weights(len(self.others), exponent=0.9, offset=5.0)
        # Share, not count: whales keep ~1,500 orders each per unit of scale.
        self.whale_share = len(WHALE_CUSTOMER_IDS) * WHALE_ORDERS_AT_SCALE_1 / REGULAR_ORDERS_AT_SCALE_1

    def pick(self) -> int:
        if self.rng.random() < self.whale_share:
            return self.rng.choice(WHALE_CUSTOMER_IDS)
        return self.rng.choices(self.others, cum_weights=self.weights)[0]


class OrderFactory:
    """Builds one order with its lines and payments; holds the running payment id."""

    def __init__(self, rng: random.Random, sizes: Sizes, prices: Sequence[Decimal]) -> None:
        self.rng = rng
        self.prices = prices
        self.products = list(range(1, sizes.products + 1))
        rng.shuffle(self.products)
        self.product_weights = zipf_cumulative_weights(len(self.products), exponent=1.05)
        self.next_payment_id = 1

    def regular_lines(self, order_id: int) -> list[Row]:
        rng = self.rng
        count = rng.choices(LINE_COUNTS, weights=LINE_COUNT_WEIGHTS)[0]
        product_ids = rng.choices(self.products, cum_weights=self.product_weights, k=count)
        quantities = rng.choices(QUANTITIES, weights=QUANTITY_WEIGHTS, k=count)
        discounts = rng.choices(DISCOUNTS, weights=DISCOUNT_WEIGHTS, k=count)
        return [(order_id, line_no, product_id, quantity, self.prices[product_id - 1], discount)
                for line_no, (product_id, quantity, discount)
                in enumerate(zip(product_ids, quantities, discounts, strict=True), start=1)]  # fmt: skip

    def huge_lines(self, order_id: int) -> list[Row]:
        # Long-named products only: embedded with their names the order passes 400 KB.
        lines = []
        for line_no in range(1, HUGE_ORDER_LINES + 1):
            product_id = 1 + (line_no - 1) % LONG_NAME_PRODUCTS
            lines.append((order_id, line_no, product_id, 1 + line_no % 3, self.prices[product_id - 1], DISCOUNTS[0]))
        return lines

    def payments(self, order_id: int, status: str, total: Decimal, placed_at: datetime) -> list[Row]:
        rng = self.rng
        paid_share = {"open": 0.5, "cancelled": 0.4}.get(status, 1.0)
        if rng.random() >= paid_share:
            return []
        amounts = [total]
        if rng.random() < 0.08:  # split payment, e.g. a gift card plus a card
            first = (total * Decimal(rng.randint(10, 90)) / 100).quantize(CENT)
            amounts = [first, total - first]
        rows = []
        for amount in amounts:
            paid_at = placed_at + timedelta(seconds=rng.randint(5, 2 * 86_400))
            rows.append((self.next_payment_id, order_id, rng.choice(PAYMENT_METHODS), amount, paid_at,
                         random_uuid(rng)))  # fmt: skip
            self.next_payment_id += 1
        return rows

    def metadata(self) -> str | None:
        rng = self.rng
        if rng.random() < 0.15:
            return None
        doc = {"channel": rng.choice(ORDER_CHANNELS), "coupon": None if rng.random() < 0.8 else "WELCOME10"}
        if rng.random() < 0.3:
            doc["utm"] = {"source": rng.choice(UTM_SOURCES), "campaign": f"c{rng.randint(1, 40)}"}
        return to_json(doc)

    def add(self, batch: OrderBatch, order_id: int, customer_id: int | None, placed_at: datetime,
            status: str, lines: list[Row]) -> None:  # fmt: skip
        total = sum(((price * quantity * (1 - discount)).quantize(CENT, ROUND_HALF_UP)
                     for _, _, _, quantity, price, discount in lines), Decimal("0.00"))  # fmt: skip
        batch.orders.append((order_id, customer_id, placed_at, status, total, self.rng.choice(SHIP_WITHIN),
                             self.metadata()))  # fmt: skip
        batch.lines.extend(lines)
        batch.payments.extend(self.payments(order_id, status, total, placed_at))


def order_status(rng: random.Random, placed_at: datetime) -> str:
    age_days = (ORDER_END - placed_at).days
    if age_days < 3:
        return rng.choices(("open", "shipped"), weights=(70, 30))[0]
    if age_days < 10:
        return rng.choices(("open", "shipped", "delivered", "cancelled"), weights=(10, 55, 30, 5))[0]
    return rng.choices(("delivered", "cancelled", "shipped", "open"), weights=(92, 6, 1, 1))[0]


def special_orders(factory: OrderFactory) -> OrderBatch:
    batch = OrderBatch()
    factory.add(batch, HUGE_ORDER_ID, WHALE_CUSTOMER_IDS[0], HUGE_ORDER_PLACED_AT, "open",
                factory.huge_lines(HUGE_ORDER_ID))  # fmt: skip
    factory.add(batch, BAD_ORDER_NULL_CUSTOMER, None, BAD_ORDER_PLACED_AT, "delivered",
                factory.regular_lines(BAD_ORDER_NULL_CUSTOMER))  # fmt: skip
    return batch


def order_batches(sizes: Sizes, seed: int) -> Iterator[OrderBatch]:
    """Orders in id order, placed_at rising with the id, ORDERS_PER_BATCH at a time."""
    rng = rng_for(seed, "orders")
    customers = CustomerPicker(rng, sizes)
    factory = OrderFactory(rng, sizes, product_prices(sizes, seed))
    yield special_orders(factory)
    span_us = (ORDER_END - ORDER_START) // timedelta(microseconds=1)
    count = sizes.regular_orders
    batch = OrderBatch()
    for index in range(count):
        order_id = FIRST_REGULAR_ORDER_ID + index
        placed_at = ORDER_START + timedelta(microseconds=int(span_us * (index + rng.random()) / count))
        factory.add(batch, order_id, customers.pick(), placed_at, order_status(rng, placed_at),
                    factory.regular_lines(order_id))  # fmt: skip
        if len(batch.orders) >= ORDERS_PER_BATCH:
            yield batch
            batch = OrderBatch()
    if batch.orders:
        yield batch


# ---------------------------------------------------------------------------
# Loaders: one per engine, same rows in.
# ---------------------------------------------------------------------------


class Loader(Protocol):
    def read_meta(self) -> dict[str, str] | None: ...
    def recreate_database(self) -> None: ...
    def create_tables(self) -> None: ...
    def load(self, table: Table, rows: Iterable[Row]) -> int: ...
    def finish(self) -> None: ...
    def write_meta(self, meta: dict[str, str]) -> None: ...
    def close(self) -> None: ...


class PostgresLoader:
    """COPY into tables without keys, then keys, indexes and ANALYZE: the fast order for bulk loads."""

    def __init__(self, target: DemoDatabase) -> None:
        self.target = target
        self.conn: Any = None

    def _connect(self, dbname: str, autocommit: bool = False) -> Any:
        import psycopg

        conn = psycopg.connect(
            host=self.target.host,
            port=self.target.resolved_port,
            user=self.target.resolved_user,
            password=self.target.password or None,
            dbname=dbname,
            autocommit=autocommit,
        )
        conn.execute("SET TIME ZONE 'UTC'")
        # money input and output follow lc_monetary: pin it so '-1234.56' means the same everywhere.
        conn.execute("SET lc_monetary = 'C'")
        return conn

    def read_meta(self) -> dict[str, str] | None:
        with self._connect("postgres", autocommit=True) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.target.database]).fetchone()
        if not found:
            return None
        with self._connect(self.target.database, autocommit=True) as conn:
            if conn.execute("SELECT to_regclass(%s)", [f"public.{META_TABLE}"]).fetchone()[0] is None:
                return None
            return dict(conn.execute(f"SELECT name, value FROM {META_TABLE}").fetchall())

    def recreate_database(self) -> None:
        from psycopg import sql

        name = sql.Identifier(self.target.database)
        with self._connect("postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            # UTF8 with the C collation: text sorts bytewise, the same on every server and in MariaDB's utf8mb4_bin.
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'").format(name)
            )
        self.conn = self._connect(self.target.database)
        # A lost demo database is rebuilt from its seed, so it needs no synchronous commits.
        self.conn.execute("SET synchronous_commit = off")
        self.conn.execute("SET maintenance_work_mem = '256MB'")

    def create_tables(self) -> None:
        from psycopg import sql

        for table in TABLES:
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}{}").format(
                    sql.Identifier(c.name), sql.SQL(c.postgres), sql.SQL("" if c.nullable else " NOT NULL")
                )
                for c in table.columns
            )
            self.conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table.name), columns))
        self.conn.commit()

    def load(self, table: Table, rows: Iterable[Row]) -> int:
        from psycopg import sql

        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.column_names))
        )
        count = 0
        with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        self.conn.commit()
        return count

    def finish(self) -> None:
        from psycopg import sql

        for table in TABLES:
            name = sql.Identifier(table.name)
            keys = sql.SQL(", ").join(map(sql.Identifier, table.primary_key))
            self.conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(name, keys))
            for column in table.indexed:
                index = sql.Identifier(f"{table.name}_{column}_idx")
                self.conn.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(index, name, sql.Identifier(column)))
        for table in TABLES:  # after every primary key: a reference needs its parent's
            for column, parent, parent_column in table.references:
                self.conn.execute(sql.SQL("ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({}) NOT VALID").format(
                    sql.Identifier(table.name), sql.Identifier(column), sql.Identifier(parent),
                    sql.Identifier(parent_column)))
        self.conn.commit()
        self.conn.autocommit = True  # ANALYZE of the whole database cannot run inside a transaction block
        self.conn.execute("ANALYZE")

    def write_meta(self, meta: dict[str, str]) -> None:
        self.conn.execute(f"CREATE TABLE {META_TABLE} (name text PRIMARY KEY, value text NOT NULL)")
        with self.conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {META_TABLE} (name, value) VALUES (%s, %s)", list(meta.items()))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# MariaDB literals. Backslash escapes are valid because the session pins sql_mode
# without NO_BACKSLASH_ESCAPES.
_MARIADB_ESCAPES = str.maketrans(
    {"\0": "\\0", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\x1a": "\\Z", "'": "\\'", '"': '\\"'}
)


def _quoted(text: str) -> str:
    return "'" + text.translate(_MARIADB_ESCAPES) + "'"


def _datetime_literal(value: datetime) -> str:
    # The session runs at time_zone '+00:00': an aware value goes in as its UTC wall clock.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return "'" + value.isoformat(" ") + "'"


_MARIADB_LITERALS: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "NULL",
    bool: lambda v: "1" if v else "0",
    int: str,
    float: repr,
    Decimal: lambda v: format(v, "f"),  # never exponent form: '1E-30' would parse as a double
    str: _quoted,
    bytes: lambda v: "X'" + v.hex() + "'",
    datetime: _datetime_literal,
    date: lambda v: "'" + v.isoformat() + "'",
    uuid.UUID: lambda v: "'" + str(v) + "'",
    list: lambda v: _quoted(to_json(v)),  # arrays are JSON arrays in MariaDB
}


def mariadb_literal(value: Any) -> str:
    return _MARIADB_LITERALS[type(value)](value)


def _backquoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# Keeps each INSERT well under the default 16 MB max_allowed_packet, even in 4-byte UTF-8.
MARIADB_STATEMENT_CHARS = 2_000_000
MARIADB_SESSION = (
    "SET time_zone = '+00:00'",
    # Strict, with backslash escapes (the literals above rely on them).
    "SET sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    # Without it the first TIMESTAMP column silently gets DEFAULT/ON UPDATE CURRENT_TIMESTAMP.
    "SET explicit_defaults_for_timestamp = 1",
    "SET unique_checks = 0",
    "SET foreign_key_checks = 0",
)


class MariaDBLoader:
    """Multi-row INSERTs into InnoDB tables that already have their primary keys.

    InnoDB clusters rows by primary key, so adding it after the load would rebuild
    each table; inserting in key order into a keyed table is the fast path. The
    secondary indexes come after the load.
    """

    def __init__(self, target: DemoDatabase) -> None:
        self.target = target
        self.conn: Any = None

    def _connect(self, database: str | None = None) -> Any:
        import pymysql

        conn = pymysql.connect(
            host=self.target.host,
            port=self.target.resolved_port,
            user=self.target.resolved_user,
            password=self.target.password,
            database=database,
            charset="utf8mb4",
            autocommit=False,
        )
        with conn.cursor() as cursor:
            for statement in MARIADB_SESSION:
                cursor.execute(statement)
        return conn

    def _execute(self, statement: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cursor:
            cursor.execute(statement, args)
            return list(cursor.fetchall())

    def read_meta(self) -> dict[str, str] | None:
        self.conn = self.conn or self._connect()
        found = self._execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            [self.target.database, META_TABLE],
        )
        if not found:
            return None
        rows = self._execute(f"SELECT name, value FROM {_backquoted(self.target.database)}.{META_TABLE}")
        return dict(rows)

    def recreate_database(self) -> None:
        self.conn = self.conn or self._connect()
        name = _backquoted(self.target.database)
        self._execute(f"DROP DATABASE IF EXISTS {name}")
        # utf8mb4_bin: emoji fit, and text compares bytewise like PostgreSQL's C collation.
        self._execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        self._execute(f"USE {name}")

    def create_tables(self) -> None:
        for table in TABLES:
            columns = [
                f"{_backquoted(c.name)} {mariadb_type(c.postgres)} {'NULL' if c.nullable else 'NOT NULL'}"
                for c in table.columns
            ]
            key = ", ".join(map(_backquoted, table.primary_key))
            self._execute(
                f"CREATE TABLE {_backquoted(table.name)} ({', '.join(columns)}, PRIMARY KEY ({key})) ENGINE=InnoDB"
            )

    def load(self, table: Table, rows: Iterable[Row]) -> int:
        head = f"INSERT INTO {_backquoted(table.name)} ({', '.join(map(_backquoted, table.column_names))}) VALUES "
        values: list[str] = []
        size = count = 0
        with self.conn.cursor() as cursor:
            for row in rows:
                text = "(" + ",".join([mariadb_literal(value) for value in row]) + ")"
                values.append(text)
                size += len(text)
                count += 1
                if size >= MARIADB_STATEMENT_CHARS:
                    cursor.execute(head + ",".join(values))
                    values.clear()
                    size = 0
            if values:
                cursor.execute(head + ",".join(values))
        self.conn.commit()
        return count

    def finish(self) -> None:
        for table in TABLES:
            for column in table.indexed:
                index = _backquoted(f"{table.name}_{column}_idx")
                self._execute(f"CREATE INDEX {index} ON {_backquoted(table.name)} ({_backquoted(column)})")
        for table in TABLES:  # foreign_key_checks = 0 in this session: declared, not checked
            for column, parent, parent_column in table.references:
                self._execute(f"ALTER TABLE {_backquoted(table.name)} ADD FOREIGN KEY ({_backquoted(column)}) "
                              f"REFERENCES {_backquoted(parent)} ({_backquoted(parent_column)})")
        self._execute("ANALYZE TABLE " + ", ".join(_backquoted(table.name) for table in TABLES))

    def write_meta(self, meta: dict[str, str]) -> None:
        self._execute(f"CREATE TABLE {META_TABLE} (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)")
        with self.conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {META_TABLE} (name, value) VALUES (%s, %s)", list(meta.items()))
        self.conn.commit()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def open_loader(target: DemoDatabase) -> Loader:
    if target.engine == "postgres":
        return PostgresLoader(target)
    return MariaDBLoader(target)


# ---------------------------------------------------------------------------
# The entry points
# ---------------------------------------------------------------------------


def build_meta(scale: float, seed: int) -> dict[str, str]:
    return {"generator_version": GENERATOR_VERSION, "scale": repr(float(scale)), "seed": str(seed)}


def counts_from_meta(meta: dict[str, str]) -> dict[str, int]:
    return {table.name: int(meta[f"rows.{table.name}"]) for table in TABLES}


def load_tables(loader: Loader, sizes: Sizes, seed: int, say: Progress) -> dict[str, int]:
    counts = dict.fromkeys((table.name for table in TABLES), 0)
    simple = (
        (ADDRESS, address_rows(sizes, seed)),
        (CUSTOMER, customer_rows(sizes, seed)),
        (PRODUCT, product_rows(sizes, seed)),
        (EMPLOYEE, employee_rows(sizes, seed)),
        (REVIEW, review_rows(sizes, seed)),
        (TYPE_TRAP, type_trap_rows()),
    )
    for table, rows in simple:
        started = time.monotonic()
        counts[table.name] = loader.load(table, rows)
        say(f"{table.name}: {counts[table.name]:,} rows in {time.monotonic() - started:.1f}s")
    started = time.monotonic()
    for batch in order_batches(sizes, seed):
        counts["orders"] += loader.load(ORDERS, batch.orders)
        counts["order_line"] += loader.load(ORDER_LINE, batch.lines)
        counts["payment"] += loader.load(PAYMENT, batch.payments)
    say(
        f"orders, order_line, payment: {counts['orders']:,} / {counts['order_line']:,} / "
        f"{counts['payment']:,} rows in {time.monotonic() - started:.1f}s"
    )
    return counts


def _validate(target: DemoDatabase, scale: float) -> None:
    if target.engine not in ENGINES:
        raise ValueError(f"unknown engine {target.engine!r}; use one of {', '.join(ENGINES)}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")


def create_demo_database(
    target: DemoDatabase,
    scale: float = 1.0,
    seed: int = 42,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """(Re)creates the database; returns row counts per table. Idempotent: if the database
    already holds the same scale+seed (recorded in carve_demo_meta), do nothing and return
    the stored counts."""
    _validate(target, scale)
    say = progress or (lambda _message: None)
    wanted = build_meta(scale, seed)
    loader = open_loader(target)
    try:
        stored = loader.read_meta()
        if stored is not None and all(stored.get(k) == v for k, v in wanted.items()):
            say(f"{target.engine} database {target.database} already holds scale {scale}, seed {seed}")
            return counts_from_meta(stored)
        say(f"creating {target.engine} database {target.database} (scale {scale}, seed {seed})")
        loader.recreate_database()
        loader.create_tables()
        counts = load_tables(loader, sizes_for(scale), seed, say)
        started = time.monotonic()
        loader.finish()
        say(f"keys, indexes and statistics in {time.monotonic() - started:.1f}s")
        # Written last: a database that died half-way has no meta and is rebuilt next time.
        loader.write_meta({**wanted, **{f"rows.{name}": str(n) for name, n in counts.items()}})
        return counts
    finally:
        loader.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.devtools.demo_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINES, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database", default="carve_demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--user", default=None)
    return parser.parse_args(argv)


def driver_errors(engine: str) -> tuple[type[Exception], ...]:
    if engine == "postgres":
        import psycopg

        return (psycopg.Error,)
    import pymysql

    return (pymysql.MySQLError,)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    target = DemoDatabase(
        engine=args.engine,
        host=args.host,
        port=args.port,
        user=args.user,
        password=os.environ.get(PASSWORD_ENV, ""),
        database=args.database,
    )
    started = time.monotonic()
    try:
        counts = create_demo_database(target, scale=args.scale, seed=args.seed, progress=lambda m: print(m, flush=True))
    except (ValueError, *driver_errors(args.engine)) as error:
        print(f"demo_data: error: {error}", file=sys.stderr)
        return 1
    for name, count in counts.items():
        print(f"{name:<12} {count:>12,}")
    print(f"{'total':<12} {sum(counts.values()):>12,}")
    print(f"seconds      {time.monotonic() - started:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
