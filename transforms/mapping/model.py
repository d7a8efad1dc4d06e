"""The mapping model: one YAML file per DynamoDB table, typed and frozen.

Attribute values come in a few shapes, told apart by their keys (a discriminated union):

    email: email                                  # a column
    name: "{first_name} {last_name}"              # a template (always a string)
    kind: {literal: customer}                     # a constant
    since: {column: created_at, as: iso8601}      # a column with an explicit conversion
    address: {from: public.address, join: {address_id: address_id}, one: {...}}   # embed one
    lines: {from: public.order_line, join: {order_id: order_id}, many: {...}}      # embed many
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from transforms.templates import IDENTIFIER, TemplateSyntaxError, is_template, parse_template

TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
SOURCE_TABLE = re.compile(r"^([A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*$")
ORDER_TERM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\s+(asc|desc))?$", re.IGNORECASE)


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(f"'{value}' is not a column name (letters, digits and _, not starting with a digit)")
    return value


def _attribute_name(value: str) -> str:
    if not 1 <= len(value.encode("utf-8")) <= 255:
        raise ValueError("attribute names are 1 to 255 bytes long")
    return value


def _source_table(value: str) -> str:
    if not SOURCE_TABLE.match(value):
        raise ValueError(f"'{value}' is not a table name; write table or schema.table")
    return value


def _template(value: str) -> str:
    try:
        parse_template(value)
    except TemplateSyntaxError as exc:
        raise ValueError(str(exc)) from None
    return value


def _order_terms(value: Any) -> Any:
    terms = [value] if isinstance(value, str) else value
    if isinstance(terms, list):
        for term in terms:
            if not isinstance(term, str) or not ORDER_TERM.match(term.strip()):
                raise ValueError(f"'{term}' is not an ordering; write 'column' or 'column desc'")
        return tuple(t.strip() for t in terms)
    return value


ColumnName = Annotated[str, AfterValidator(_identifier)]
AttributeName = Annotated[str, AfterValidator(_attribute_name)]
SourceTable = Annotated[str, AfterValidator(_source_table)]
KeyTemplate = Annotated[str, Field(min_length=1), AfterValidator(_template)]
OrderBy = Annotated[tuple[str, ...], BeforeValidator(_order_terms)]

Conversion = Literal[
    "string", "number", "bool", "binary", "iso8601", "epoch_seconds",
    "json", "list", "string_set", "number_set",
]


def _null_word(value: Any) -> Any:
    # YAML reads a bare `null` as None; after `nulls:` it is the policy's name, not "unset".
    return "null" if value is None else value


NullPolicy = Annotated[Literal["omit", "null"], BeforeValidator(_null_word)]
# Per attribute: None (absent) means "as policy.nulls"; the word null must not read as absent.
NullOverride = Annotated[Literal["omit", "null"] | None, BeforeValidator(_null_word)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _column_shorthand(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


def _template_shorthand(value: Any) -> Any:
    return {"template": value} if isinstance(value, str) else value


class ColumnAttr(Model):
    column: ColumnName
    as_: Conversion | None = Field(None, alias="as")
    nulls: NullOverride = None


class TemplateAttr(Model):
    template: KeyTemplate
    nulls: NullOverride = None


def _literal_value(value: Any) -> Any:
    # One message instead of one per member of str | bool | int.
    if not isinstance(value, (str, bool, int)):
        hint = f"; quote '{value}' to store it as text" if isinstance(value, float) else ""
        raise ValueError(f"a literal is text, a whole number or true/false{hint}")
    return value


class LiteralAttr(Model):
    literal: Annotated[str | bool | int, BeforeValidator(_literal_value)]


class EmbedOne(Model):
    """Many-to-one: the single matching row of another table, embedded as a map."""

    from_: SourceTable = Field(alias="from")
    join: dict[ColumnName, ColumnName] = Field(min_length=1)
    one: dict[AttributeName, "Attribute"] = Field(min_length=1)
    filter: str | None = None
    nulls: NullOverride = None

    body_key: ClassVar[str] = "one"  # where the embedded attributes are in the file

    @property
    def body(self) -> dict[str, Attribute]:
        return self.one


class EmbedMany(Model):
    """One-to-many: the matching rows of another table, embedded as an ordered list of maps."""

    from_: SourceTable = Field(alias="from")
    join: dict[ColumnName, ColumnName] = Field(min_length=1)
    many: dict[AttributeName, "Attribute"] = Field(min_length=1)
    order_by: OrderBy | None = None
    # An item holds 400 KB and each element costs bytes: no list reaches 100,000 elements.
    limit: int | None = Field(None, gt=0, le=100_000)
    filter: str | None = None

    body_key: ClassVar[str] = "many"

    @property
    def body(self) -> dict[str, Attribute]:
        return self.many


def _attribute_kind(value: Any) -> str | None:
    """The union tag; tags start with '~' so the loader can drop them from error paths."""
    if isinstance(value, str):
        return "~template" if is_template(value) else "~column"
    if isinstance(value, dict):
        for kind in ("many", "one", "template", "literal", "column"):
            if kind in value:
                return f"~{kind}"
        # No telling key: report against the closest shape, so a typo reads as "unknown key".
        return "~many" if "from" in value else "~column"
    return None


Attribute = Annotated[
    Union[
        Annotated[ColumnAttr, BeforeValidator(_column_shorthand), Tag("~column")],
        Annotated[TemplateAttr, BeforeValidator(_template_shorthand), Tag("~template")],
        Annotated[LiteralAttr, Tag("~literal")],
        Annotated[EmbedOne, Tag("~one")],
        Annotated[EmbedMany, Tag("~many")],
    ],
    Discriminator(
        _attribute_kind,
        custom_error_type="attribute_shape",
        custom_error_message=(
            "an attribute is a column name, a \"{template}\", or a map with one of: "
            "column, template, literal, one (with from/join), many (with from/join)"
        ),
    ),
]
EmbedOne.model_rebuild()
EmbedMany.model_rebuild()


class Source(Model):
    connection: str = Field(min_length=1)


class KeySchema(Model):
    partition: AttributeName
    sort: AttributeName | None = None


class IndexSchema(Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$")]
    partition: AttributeName
    sort: AttributeName | None = None


class WriteRate(Model):
    """Write units per second for the whole job, or a share of the table's capacity (0.8 = 80 %)."""

    units_per_second: float | None = Field(default=None, gt=0)
    share_of_capacity: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_of(self) -> "WriteRate":
        if (self.units_per_second is None) == (self.share_of_capacity is None):
            raise ValueError("write_rate takes units_per_second or share_of_capacity: exactly one")
        return self


class Target(Model):
    table: Annotated[str, Field(pattern=TABLE_NAME.pattern)]
    key: KeySchema
    indexes: tuple[IndexSchema, ...] = ()
    write_rate: WriteRate | None = None
    ttl: AttributeName | None = None


class Policy(Model):
    nulls: NullPolicy = "omit"
    duplicates: Literal["quarantine", "fail"] = "quarantine"
    out_of_range_numbers: Literal["quarantine", "string"] = "quarantine"
    max_rejected_share: float = Field(0.0, ge=0.0, le=1.0)


class Entity(Model):
    from_: SourceTable | None = Field(None, alias="from")
    query: str | None = None
    filter: str | None = None
    key: dict[AttributeName, KeyTemplate] = Field(min_length=1)
    attributes: dict[AttributeName, Attribute] = {}
    indexes: dict[AttributeName, KeyTemplate] = {}


# --- access patterns: the service's queries, checked against the source ---------------------


def _sort_shorthand(value: Any) -> Any:
    return {"equals": value} if isinstance(value, str) else value


class SortCondition(Model):
    """The sort key condition of a Query: exactly one of these."""

    equals: KeyTemplate | None = None
    begins_with: KeyTemplate | None = None
    between: tuple[KeyTemplate, KeyTemplate] | None = None
    lt: KeyTemplate | None = Field(None, alias="<")
    le: KeyTemplate | None = Field(None, alias="<=")
    gt: KeyTemplate | None = Field(None, alias=">")
    ge: KeyTemplate | None = Field(None, alias=">=")

    @model_validator(mode="after")
    def _one(self) -> "SortCondition":
        if len(self.model_fields_set) != 1:
            raise ValueError("a sort condition is a template (equals) or one of: begins_with, between, <, <=, >, >=")
        return self

    @property
    def operator(self) -> str:
        return next(iter(self.model_fields_set))


class GetOperation(Model):
    """GetItem: the table's whole key, from templates over the pattern's parameters."""

    partition: KeyTemplate | None = None
    sort: KeyTemplate | None = None


class QueryOperation(Model):
    """Query on the table or a GSI: partition key equal to a template, an optional sort condition."""

    index: str | None = None
    partition: KeyTemplate | None = None
    sort: Annotated[SortCondition, BeforeValidator(_sort_shorthand)] | None = None
    order: Literal["ascending", "descending"] = "ascending"


class Expectation(Model):
    """What answers the pattern on the source: SQL with :parameters, returning for `entity` the
    columns of its key templates (the items expected), or with `list` the elements of that
    embedded list (columns named as its attributes). `order_by` (its columns) orders the answer."""

    entity: ColumnName
    sql: str = Field(min_length=1)
    list: AttributeName | None = None
    order_by: OrderBy | None = None


class Pattern(Model):
    description: str | None = None
    parameters: str = Field(min_length=1)  # SQL: its columns are the parameters, its rows the values to sample
    get: GetOperation | None = None
    query: QueryOperation | None = None
    scan: Any = None  # refused with the reason (declared so the refusal can say why)
    expect: Expectation
    samples: int = Field(50, ge=1, le=10_000)


class Watermark(Model):
    """Changes found by a column that only grows (updated_at, an increasing id): inserts and
    updates, never deletes."""

    watermark: ColumnName


SLOT_NAME = r"^[a-z0-9_]{1,63}$"  # PostgreSQL's rule for replication slot names


class PostgresLogical(Model):
    """Changes read from a PostgreSQL logical replication slot (wal2json) that carve creates and
    owns: inserts, updates, deletes and key changes; a truncate stops the sync."""

    postgres_logical: Annotated[str, Field(pattern=SLOT_NAME)]


class MysqlBinlog(Model):
    """Changes read from the MariaDB/MySQL row-based binlog as a replica with this server id (unique
    among the server's replicas, not the server's own): inserts, updates, deletes and key changes;
    a truncate stops the sync."""

    mysql_binlog: int = Field(ge=2, le=4_294_967_295)


DMS_FOLDER = r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/\S+$"


class DmsS3(Model):
    """Changes read from the files AWS DMS writes for this table to an S3 target (CSV, gzip CSV or
    Parquet): full-load files and CDC files with the Op column (I, U, D), in the order DMS names
    them. carve needs the column names in the files (AddColumnName=true for CSV), deletes
    (CdcInsertsOnly and CdcInsertsAndUpdates left false), and before-image columns on updates
    (the task's add-before-image-columns rule, with this prefix)."""

    dms_s3: Annotated[str, Field(pattern=DMS_FOLDER)]  # the table's folder: s3://BUCKET/[BUCKET_FOLDER/]SCHEMA/TABLE/
    before_image_prefix: Annotated[str, Field(min_length=1, max_length=64)] = "BI_"
    csv_null_value: str | None = None  # the endpoint's CsvNullValue; unset: an empty field is NULL


def _change_source_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in ("postgres_logical", "mysql_binlog", "dms_s3"):
            if kind in value:
                return f"~{kind}"
        return "~watermark"
    return None


ChangeSource = Annotated[
    Union[Annotated[Watermark, Tag("~watermark")], Annotated[PostgresLogical, Tag("~postgres_logical")],
          Annotated[MysqlBinlog, Tag("~mysql_binlog")], Annotated[DmsS3, Tag("~dms_s3")]],
    Discriminator(
        _change_source_kind,
        custom_error_type="change_source_shape",
        custom_error_message=("a change source is {watermark: COLUMN}, {postgres_logical: SLOT}, "
                              "{mysql_binlog: SERVER_ID} or {dms_s3: s3://BUCKET/FOLDER/SCHEMA/TABLE/}"),
    ),
]


class Sync(Model):
    """How `carve sync` follows the source: a change source for every table the mapping reads."""

    control_table: Annotated[str, Field(pattern=TABLE_NAME.pattern)] = "carve-sync-state"
    lease_seconds: int = Field(600, ge=5, le=86_400)  # a sync that died leaves the mapping leased this long
    tables: dict[SourceTable, ChangeSource] = Field(min_length=1)


class Mapping(Model):
    version: Literal[1]
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
    description: str | None = None
    source: Source
    target: Target
    policy: Policy = Policy()
    entities: dict[ColumnName, Entity] = Field(min_length=1)
    patterns: dict[ColumnName, Pattern] = {}
    sync: Sync | None = None


def json_schema() -> dict:
    schema = Mapping.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "carve mapping file"
    return schema
