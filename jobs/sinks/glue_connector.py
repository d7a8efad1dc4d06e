"""The Glue DynamoDB connector as an alternative sink (`--sink glue-connector`).

carve's own writer (jobs.sinks.writer) is the default. This sink hands the items to AWS Glue's
DynamoDB connector (`glueContext.write_dynamic_frame_from_options(connection_type="dynamodb")`)
for teams that prefer the AWS-supported path. Three pieces live here:

1. `connector_plan`: the connection options, from carve's write budget and the table's
   description.
2. `connector_frame`: the items (DynamoDB wire JSON in column `item`) as a DataFrame with
   one typed column per attribute, chosen so that the connector stores the same DynamoDB
   types carve's writer stores; what it cannot express is refused before anything is
   written, naming the attribute.
3. `connector_attribute_value`: a pure-Python model of how the connector turns a typed
   Spark value into an AttributeValue, used by the tests to prove (2).

`GlueConnectorSink` puts them together as the pipeline's write stage. The executors import
this module for the frame's two passes.

What the connector does, and where that was read (the Glue sink itself is closed source;
it is built on awslabs/emr-dynamodb-connector, whose option names and constants it uses):

- Rate: "permittedWcuPerTask = (TableWCU * dynamodb.throughput.write.percent) /
  dynamodb.output.numParallelTasks"; the percent is 0.1 to 1.5 (default 0.5); "When the
  DynamoDB table is in on-demand mode, AWS Glue handles the write capacity of the table as
  40000" (AWS Glue developer guide, "DynamoDB connections", connection option reference and
  "Configuring paralleism in DynamoDB operations"; also awsdocs/aws-glue-developer-guide
  doc_source/aws-glue-programming-etl-connect.md @5a32b8e). In emr-dynamodb-connector,
  WriteIopsCalculator.calculateTargetIops = max(floor(WCU * percent) / maxParallelTasks, 1)
  per task, WCU from DescribeTable or DEFAULT_CAPACITY_FOR_ON_DEMAND = 40000L for
  PAY_PER_REQUEST tables (emr-dynamodb-hadoop .../write/WriteIopsCalculator.java and
  .../constants/DynamoDBConstants.java @0082d23a); AbstractDynamoDBRecordWriter counts
  items per one-second interval (DynamoDBUtil.verifyInterval(intervalBeginTime, 1000L)).
- Retries: "dynamodb.output.retry ... how many retries we perform when there is a
  ProvisionedThroughputExceededException ... default 10" (Glue guide). Underneath,
  DynamoDBClient.writeBatch resends UnprocessedItems with exponential pauses capped at 3 s
  inside a 10-minute DynamoDBFibonacciRetryer (DynamoDBClient.java @0082d23a). When that
  gives up the task fails: there is no dead letter, and items already written stay.
- Endpoint: the Glue sink options document no endpoint (only tableName, throughput.write.
  percent, numParallelTasks, retry, sts.roleArn, sts.roleSessionName). The EMR connector
  has `dynamodb.endpoint`, but nothing documents that Glue passes it through, so this sink
  refuses a local endpoint rather than risk writing to AWS instead.
- Types: emr-dynamodb-hive maps Hive/Spark types to DynamoDB types
  (HiveDynamoDBTypeFactory, DEFAULT_HIVE_DYNAMODB_TYPES, since awslabs/emr-dynamodb-connector
  PR #112 "Hive arrays are serialized to DynamoDB lists rather than sets as the default" and
  PR #113 "Hive structs as DynamoDB maps"): string -> S; bigint and double -> N, written
  with Long.toString / Double.toString (DynamoDBDataParser.getNumber; HiveDynamoDBNumberType
  supports only double and long: no decimal, see open issue #27 "Support DECIMAL hive
  type"); binary -> B; boolean -> BOOL; array -> L; struct and map<string, T> -> M. Sets
  (SS/NS/BS) and NULL exist only as alternate types picked by Hive table properties
  (`dynamodb.type.mapping`, `dynamodb.null.serialization`) that the Glue sink does not
  document. A null column is left out of the item (DynamoDBSerDe.serialize: `if (data !=
  null)` ... `if (attributeValue != null) item.put`); a null inside a list, map or struct
  throws ("Null element found in list", "Null field found in struct")
  (DynamoDBDataParser.getListAttribute / getMapAttribute). carve assumes the Glue sink's
  DynamicRecord conversion follows this mapping: that part is not public and has not been
  run here (no Glue jars).

So the frame carve hands over uses only StringType, LongType, DoubleType, BooleanType,
BinaryType, ArrayType, MapType and StructType, and:

- numbers: LongType when every value of the attribute is an integer of at most 2**53 in
  magnitude, else DoubleType when every value has at most 15 significant digits and a
  decimal exponent from -20 to 15, else refused. Either way the number DynamoDB stores is
  the number carve computed, even if the sink sends longs through a double too (DESIGN.md's
  field notes say numbers become doubles): a double holds those integers exactly, and
  Java 17's Double.toString (Glue 5.1 runs Java 17) prints every such double back as the
  same number. That last part was measured, not assumed: on OpenJDK 17.0.15 it printed
  300,000 random decimals of 1-15 digits correctly for exponents -20..15 and wrongly for a
  few percent of those from 10**16 up (2e23 -> "1.9999999999999998E23", JDK-4511638, fixed
  in JDK 19); tests/unit/test_glue_sink.py re-checks the model against the running JVM.
- sets (SS, NS, BS) and NULL anywhere: refused.
- a map whose values all have one type: MapType (a missing key is simply not there);
  otherwise a StructType, only if every key is in every value of that attribute (a missing
  one would be a null field); otherwise refused.
- a list: ArrayType of its elements' one type; otherwise refused.
- an attribute some items do not have: a null in its column, which the connector leaves
  out, as carve does.
"""

from __future__ import annotations

import base64
import copy
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.sinks.base import SinkContext, WriteOutcome, check_target, prepare_table
from jobs.sinks.writer import task_slots
from transforms.errors import SinkError

CONNECTION_TYPE = "dynamodb"
PERCENT_MIN = Decimal("0.1")  # "Acceptable values are from "0.1" to "1.5", inclusive."
PERCENT_MAX = Decimal("1.5")
PERCENT_DEFAULT = Decimal("0.5")
ON_DEMAND_ASSUMED_WCU = 40_000  # DynamoDBConstants.DEFAULT_CAPACITY_FOR_ON_DEMAND
# The connector's default is 10 retries on ProvisionedThroughputExceededException, after which
# the task (and the job) fails with no dead letter; a bulk load meets throttling often enough
# (on-demand tables start warm at 4,000 WRU/s, one partition takes 1,000 WCU/s) that 10 is
# too few to ride it out.
CONNECTOR_RETRIES = 30

LONG_LIMIT = 2**53  # integers a double holds exactly
DOUBLE_DIGITS = 15  # any decimal of at most 15 significant digits survives a double
DOUBLE_EXPONENTS = range(-20, 16)  # decimal exponents measured safe with Java 17's Double.toString

SET_KINDS = ("SS", "NS", "BS")


class ConnectorError(SinkError):
    """The Glue connector cannot do what the run asks: use the carve sink, or change the budget or mapping."""


class ConnectorTypeError(ConnectorError):
    """Some attributes cannot be handed to the connector without changing their DynamoDB type."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"the Glue DynamoDB connector cannot write {len(problems)} attribute(s) with the types carve built; "
            "nothing was written. Use the carve sink (the default), or change these attributes in the mapping:\n  "
            + "\n  ".join(problems)
        )


# --- 1. connection options --------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorPlan:
    """The options for write_dynamic_frame_from_options and what they add up to."""

    options: dict[str, str]
    billing: str  # PROVISIONED | PAY_PER_REQUEST
    table_wcu: int  # what the connector multiplies the percent with (40,000 for on-demand)
    percent: Decimal  # what the connector will use (its default when carve sets none)
    tasks: int  # numParallelTasks, and the number of partitions handed over
    wcu_per_task: int  # the connector's max(floor(table_wcu * percent) / tasks, 1)
    notes: tuple[str, ...] = ()

    @property
    def wcu_per_second(self) -> int:
        return self.wcu_per_task * self.tasks


def _table_capacity(description: Mapping[str, Any]) -> tuple[str, int]:
    billing = description.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    if billing == "PAY_PER_REQUEST":
        return billing, ON_DEMAND_ASSUMED_WCU
    wcu = int(description.get("ProvisionedThroughput", {}).get("WriteCapacityUnits") or 0)
    if wcu <= 0:
        raise ConnectorError(f"table {description.get('TableName')} reports no provisioned write capacity")
    return billing, wcu


def connector_plan(
    description: Mapping[str, Any],
    max_tasks: int,
    units_per_second: float | None = None,
    percent_of_provisioned: float | None = None,
    region: str | None = None,
) -> ConnectorPlan:
    """Connection options that keep the connector within carve's budget.

    `description` is DescribeTable's Table. The budget is WCU/s for the whole job
    (`units_per_second`) or a share of the table's provisioned capacity; with neither, the
    connector's default (half the table's capacity) applies. The percent is rounded down and
    the task count lowered until each task gets at least one WCU/s, so the connector never
    asks for more than the budget.
    """
    if max_tasks < 1:
        raise ConnectorError("the connector needs at least one task")
    billing, capacity = _table_capacity(description)
    table = description.get("TableName", "?")
    notes: list[str] = []
    if percent_of_provisioned is not None:
        if billing == "PAY_PER_REQUEST":
            raise ConnectorError(
                f"table {table} is on-demand: a share of provisioned capacity means nothing there (the connector would "
                f"take it of an assumed {ON_DEMAND_ASSUMED_WCU:,} WCU); give the budget in WCU/s")
        wanted = Decimal(str(percent_of_provisioned))
    elif units_per_second is not None:
        wanted = Decimal(str(units_per_second)) / capacity
    else:
        wanted = None
    if wanted is None:
        percent = PERCENT_DEFAULT
        notes.append(f"no write budget: the connector's default, {PERCENT_DEFAULT} of {capacity:,} WCU")
    else:
        if wanted < PERCENT_MIN:
            basis = f"its assumed {capacity:,} WCU for on-demand tables" if billing == "PAY_PER_REQUEST" \
                else f"the table's {capacity:,} provisioned WCU"
            raise ConnectorError(
                f"a budget of {float(wanted * capacity):,.0f} WCU/s is below what the Glue connector can be held to: "
                f"{PERCENT_MIN} of {basis}, {math.ceil(PERCENT_MIN * capacity):,} WCU/s. Use the carve sink, which "
                f"keeps any budget")
        if wanted > PERCENT_MAX:
            notes.append(f"budget above {PERCENT_MAX} x {capacity:,} WCU: the connector's ceiling applies")
        percent = min(wanted, PERCENT_MAX).quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
    total = math.floor(capacity * percent)
    if total < 1:
        raise ConnectorError(f"{percent} of {capacity} WCU is less than 1 WCU/s, the least the connector writes at; "
                             "use the carve sink")
    tasks = max(1, min(max_tasks, total))
    if tasks < max_tasks:
        notes.append(f"{tasks} task(s) instead of {max_tasks}: each needs at least 1 WCU/s")
    options = {
        "dynamodb.output.tableName": str(table),
        "dynamodb.output.numParallelTasks": str(tasks),
        "dynamodb.output.retry": str(CONNECTOR_RETRIES),
    }
    if wanted is not None:
        options["dynamodb.throughput.write.percent"] = format(percent.normalize(), "f")
    if region:
        # emr-dynamodb-hadoop's DynamoDBConstants.REGION; without it the job's own region applies.
        options["dynamodb.region"] = region
    return ConnectorPlan(options, billing, capacity, percent, tasks, max(total // tasks, 1), tuple(notes))


# --- 2. the frame handed to the connector -----------------------------------------------------


@dataclass
class NumberStats:
    long_ok: bool = True  # every value an integer within +-2**53
    double_ok: bool = True  # every value survives a double and Java's Double.toString
    example: str | None = None  # a value that fits neither, for the message

    def add(self, text: str) -> None:
        long_ok, double_ok = number_fit(text)
        self.long_ok &= long_ok
        self.double_ok &= double_ok
        if not (long_ok or double_ok) and self.example is None:
            self.example = text

    def merge(self, other: NumberStats) -> None:
        self.long_ok &= other.long_ok
        self.double_ok &= other.double_ok
        self.example = self.example or other.example


@dataclass
class Shape:
    """What the values at one attribute path look like, over every item (merged from the tasks)."""

    count: int = 0
    kinds: Counter = field(default_factory=Counter)
    numbers: NumberStats = field(default_factory=NumberStats)
    fields: dict[str, Shape] = field(default_factory=dict)  # M: per key
    elements: Shape | None = None  # L: every element
    example_key: str | None = None  # an item holding this path, for messages

    def add(self, value: Mapping[str, Any], key: str) -> None:
        ((kind, inner),) = value.items()
        self.count += 1
        self.kinds[kind] += 1
        if self.example_key is None:
            self.example_key = key
        if kind == "N":
            self.numbers.add(inner)
        elif kind == "NS":
            for text in inner:
                self.numbers.add(text)
        elif kind == "M":
            for name, child in inner.items():
                self.fields.setdefault(name, Shape()).add(child, key)
        elif kind == "L":
            for child in inner:
                if self.elements is None:
                    self.elements = Shape()
                self.elements.add(child, key)

    def merge(self, other: Shape) -> Shape:
        self.count += other.count
        self.kinds.update(other.kinds)
        self.numbers.merge(other.numbers)
        self.example_key = self.example_key or other.example_key
        for name, child in other.fields.items():
            if name in self.fields:
                self.fields[name].merge(child)
            else:
                self.fields[name] = child
        if other.elements is not None:
            self.elements = other.elements if self.elements is None else self.elements.merge(other.elements)
        return self


def number_fit(text: str) -> tuple[bool, bool]:
    """(fits a long the connector writes exactly, fits a double it writes back exactly)."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return False, False
    if not number.is_finite():
        return False, False
    integral = number == number.to_integral_value()
    long_ok = integral and abs(number) <= LONG_LIMIT
    if number.is_zero():
        return long_ok, True
    digits = len(number.normalize().as_tuple().digits)
    return long_ok, digits <= DOUBLE_DIGITS and number.adjusted() in DOUBLE_EXPONENTS


def _item_key(item: Mapping[str, Any], partition: str, sort: str | None) -> str:
    def text(name: str | None) -> str:
        value = item.get(name) if name else None
        return next(iter(value.values())) if isinstance(value, Mapping) else "?"

    return f"{text(partition)}/{text(sort)}" if sort else text(partition)


def item_shape(items_json: Iterable[str], partition: str, sort: str | None) -> Shape:
    """One Shape (an M) over every item in `items_json`."""
    shape = Shape()
    for text in items_json:
        item = json.loads(text)
        shape.add({"M": item}, _item_key(item, partition, sort))
    return shape


@dataclass(frozen=True)
class Unfit:
    """An attribute path the connector cannot write as carve built it, and why."""

    path: str
    reason: str
    example_key: str | None

    def __str__(self) -> str:
        where = f" (e.g. item {self.example_key})" if self.example_key else ""
        return f"{self.path}{where}: {self.reason}"


def _kind_names(kinds: Iterable[str]) -> str:
    return ", ".join(sorted(kinds))


def spark_type(shape: Shape, path: str, unfit: list[Unfit]) -> T.DataType | None:
    """The Spark type the values at `path` are handed over as, or None (with an Unfit) if none fits."""
    kinds = set(shape.kinds)

    def refuse(reason: str) -> None:
        unfit.append(Unfit(path, reason, shape.example_key))

    if "NULL" in kinds:
        if "." in path or "[" in path:
            return refuse("NULL inside a map or list: the connector throws on a null element (it has no NULL type)")
        return refuse("NULL values: the connector leaves a null attribute out; `nulls: omit` stores them as missing")
    sets = kinds.intersection(SET_KINDS)
    if sets:
        return refuse(f"a set ({_kind_names(sets)}): the connector writes arrays as lists (L); map it `as: list`")
    if len(kinds) > 1:
        return refuse(f"values of several types ({_kind_names(kinds)}): a column handed to the connector has one")
    (kind,) = kinds
    if kind == "S":
        return T.StringType()
    if kind == "BOOL":
        return T.BooleanType()
    if kind == "B":
        return T.BinaryType()
    if kind == "N":
        if shape.numbers.long_ok:
            return T.LongType()
        if shape.numbers.double_ok:
            return T.DoubleType()
        return refuse(f"numbers the connector cannot write exactly (e.g. {shape.numbers.example}): it writes N from a "
                      f"Java long or double; integers up to 2**53 and decimals of at most {DOUBLE_DIGITS} significant "
                      f"digits fit")
    if kind == "L":
        if shape.elements is None:  # only empty lists: any element type writes L []
            return T.ArrayType(T.StringType(), containsNull=False)
        element = spark_type(shape.elements, path + "[]", unfit)
        return None if element is None else T.ArrayType(element, containsNull=False)
    return _map_type(shape, path, unfit)


def _map_type(shape: Shape, path: str, unfit: list[Unfit]) -> T.DataType | None:
    if not shape.fields:  # only empty maps
        return T.MapType(T.StringType(), T.StringType(), valueContainsNull=False)
    values = Shape()
    for child in shape.fields.values():
        values.merge(_copy(child))
    trial: list[Unfit] = []
    value_type = spark_type(values, path + ".*", trial)
    if value_type is not None:
        return T.MapType(T.StringType(), value_type, valueContainsNull=False)
    missing = sorted(name for name, child in shape.fields.items() if child.count < shape.count)
    if missing:
        unfit.append(Unfit(path, f"a map whose values differ in type ({_kind_names(values.kinds)}) and whose "
                                 f"keys are not in every value (e.g. {', '.join(missing[:3])}): neither a "
                                 "map<string, T> nor a struct without nulls can hold it", shape.example_key))
        return None
    fields = []
    for name in sorted(shape.fields):
        child_type = spark_type(shape.fields[name], f"{path}.{name}", unfit)
        if child_type is not None:
            fields.append(T.StructField(name, child_type, nullable=False))
    return T.StructType(fields) if len(fields) == len(shape.fields) else None


def _copy(shape: Shape) -> Shape:
    # merge() adopts the other side's children: merging copies keeps `shape` itself intact.
    return copy.deepcopy(shape)


def connector_schema(shape: Shape) -> T.StructType:
    """One nullable column per attribute; raises ConnectorTypeError listing every attribute that does not fit."""
    unfit: list[Unfit] = []
    fields = []
    for name in sorted(shape.fields):
        data_type = spark_type(shape.fields[name], name, unfit)
        if data_type is not None:
            fields.append(T.StructField(name, data_type, nullable=True))
    if unfit:
        raise ConnectorTypeError([str(u) for u in unfit])
    return T.StructType(fields)


def to_spark_value(value: Mapping[str, Any], data_type: T.DataType) -> Any:
    """carve's AttributeValue (wire JSON) as the Python value of `data_type`."""
    ((kind, inner),) = value.items()
    if isinstance(data_type, T.StringType):
        return inner
    if isinstance(data_type, T.LongType):
        return int(Decimal(inner))
    if isinstance(data_type, T.DoubleType):
        return float(Decimal(inner))  # correctly rounded: the nearest double
    if isinstance(data_type, T.BooleanType):
        return inner
    if isinstance(data_type, T.BinaryType):
        return bytearray(base64.b64decode(inner, validate=True))
    if isinstance(data_type, T.ArrayType):
        return [to_spark_value(v, data_type.elementType) for v in inner]
    if isinstance(data_type, T.MapType):
        return {k: to_spark_value(v, data_type.valueType) for k, v in inner.items()}
    if isinstance(data_type, T.StructType):
        return tuple(to_spark_value(inner[f.name], f.dataType) for f in data_type.fields)
    raise ConnectorError(f"no conversion to {data_type.simpleString()}")


def to_connector_row(item_json: str, schema: T.StructType) -> tuple:
    item = json.loads(item_json)
    return tuple(to_spark_value(item[f.name], f.dataType) if f.name in item else None for f in schema.fields)


def _summarize_partition(texts: Iterator[str], partition: str, sort: str | None) -> Iterator[Shape]:
    yield item_shape(texts, partition, sort)


def connector_frame(items: DataFrame, tasks: int, partition_key: str, sort_key: str | None) -> DataFrame:
    """The items as the typed DataFrame handed to the connector, in `tasks` partitions.

    Two passes in Python on the executors: one to learn every attribute's shape (refusing what
    the connector cannot write, before anything is written), one to convert.
    """
    spark = items.sparkSession
    ordered = (items.select("pk", "sk", "item").repartition(tasks)
               # The connector writes in partition order: hash order interleaves partition keys,
               # as carve's writer does, so an item collection is not written back to back.
               .sortWithinPartitions(F.xxhash64("pk", "sk")))
    texts = ordered.rdd.map(lambda row: row.item)
    shapes = texts.mapPartitions(lambda part: _summarize_partition(part, partition_key, sort_key))
    shape = shapes.fold(Shape(), lambda a, b: Shape().merge(a).merge(b))
    schema = connector_schema(shape)
    rows = texts.map(lambda text: to_connector_row(text, schema))
    return spark.createDataFrame(rows, schema, verifySchema=False)


class GlueConnectorSink:
    """The write stage through AWS Glue's DynamoDB connector, handed over by the runtime.

    Everything else in the run is the same: reconcile reads the table back, so whatever the
    connector did to an item shows up there.
    """

    name: ClassVar[str] = "glue-connector"

    def __init__(self, context: SinkContext) -> None:
        self.context = context
        self._plan: ConnectorPlan | None = None

    def check(self) -> None:
        check_target(self.context)

    def prepare(self) -> None:
        client = prepare_table(self.context)
        description = client.describe_table(TableName=self.context.address.table)["Table"]
        # The same budget as carve's writer: WCU/s as asked, a share of provisioned capacity as a
        # percent (the connector's own model), nothing asked: the connector's default.
        spec = self.context.budget
        self._plan = connector_plan(description, task_slots(self.context.spark), spec.units if spec else None,
                                    spec.share if spec else None, region=self.context.address.region)

    def describe(self) -> str:
        plan = self._planned()
        for note in plan.notes:
            self.context.say(f"connector: {note}")
        return (f"Glue DynamoDB connector into {self.context.address.table}, {plan.percent} x {plan.table_wcu:,} WCU "
                f"= {plan.wcu_per_second:,} WCU/s, {plan.tasks} tasks")

    def write(self, items: DataFrame, live: Callable[[str], None]) -> WriteOutcome:
        plan = self._planned()
        key = self.context.mapping.target.key
        count = items.count()
        if count:  # an empty frame has no columns to hand over
            frame = connector_frame(items, plan.tasks, key.partition, key.sort)
            self.context.runtime.write_dynamodb(frame, plan.options, self.context.address.endpoint_url)
        return WriteOutcome(
            items_written=count,
            detail="handed over; the connector reports no consumed capacity",
            report={"connector": {"options": plan.options, "billing": plan.billing, "table_wcu": plan.table_wcu,
                                  "wcu_per_task": plan.wcu_per_task, "wcu_per_second": plan.wcu_per_second,
                                  "notes": list(plan.notes)}},
        )

    def _planned(self) -> ConnectorPlan:
        if self._plan is None:
            raise ConnectorError("the connector sink writes only after prepare()")
        return self._plan


# --- 3. the connector's type mapping, modelled ------------------------------------------------


class ConnectorFailure(Exception):
    """What the modelled connector would throw (a NullPointerException, an unsupported type)."""


def java_double_to_string(x: float) -> str:
    """Java's Double.toString, with the shortest round-trip digits (JDK 19+; JDK 17 agrees within DOUBLE_EXPONENTS)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    number = Decimal(repr(x))
    if 1e-3 <= abs(x) < 1e7:
        text = format(number, "f")
        return text if "." in text else text + ".0"
    sign, digits, exponent = number.normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    power = exponent + len(mantissa) - 1
    fraction = mantissa[1:] or "0"
    return f"{'-' if sign else ''}{mantissa[0]}.{fraction}E{power}"


def connector_attribute_value(value: Any, data_type: T.DataType, numbers: str = "emr") -> dict[str, Any]:
    """The AttributeValue the connector writes for a non-null Spark `value` of `data_type`.

    numbers="emr": bigint via Long.toString, double via Double.toString (DynamoDBDataParser).
    numbers="double": every number through a double first (DESIGN.md's field note).
    """
    if value is None:
        raise ConnectorFailure("Null element found (DynamoDBDataParser: NullPointerException)")
    if isinstance(data_type, T.StringType):
        return {"S": value}
    if isinstance(data_type, T.LongType):
        return {"N": java_double_to_string(float(value)) if numbers == "double" else str(int(value))}
    if isinstance(data_type, T.DoubleType):
        return {"N": java_double_to_string(value)}
    if isinstance(data_type, T.BooleanType):
        return {"BOOL": bool(value)}
    if isinstance(data_type, T.BinaryType):
        return {"B": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(data_type, T.ArrayType):
        return {"L": [connector_attribute_value(v, data_type.elementType, numbers) for v in value]}
    if isinstance(data_type, T.MapType):
        return {"M": {k: connector_attribute_value(v, data_type.valueType, numbers) for k, v in value.items()}}
    if isinstance(data_type, T.StructType):
        return {"M": {f.name: connector_attribute_value(v, f.dataType, numbers)
                      for f, v in zip(data_type.fields, value, strict=True)}}
    raise ConnectorFailure(f"Unsupported Hive type: {data_type.simpleString()} (HiveDynamoDBTypeFactory)")


def connector_item(row: Iterable[Any], schema: T.StructType, numbers: str = "emr") -> dict[str, Any]:
    """The item the connector writes for one row: null columns left out (DynamoDBSerDe.serialize)."""
    return {f.name: connector_attribute_value(v, f.dataType, numbers)
            for f, v in zip(schema.fields, row, strict=True) if v is not None}
