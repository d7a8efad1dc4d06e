"""The target table: where it is, its key schema, and creating it (with its indexes) when it is missing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from jobs.aws import error_code
from transforms.errors import SinkError
from transforms.mapping import Mapping


@dataclass(frozen=True)
class TableAddress:
    """A DynamoDB table and the endpoint it is reached at (None: AWS's own for the region)."""

    table: str
    endpoint_url: str | None
    region: str


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[IndexSpec, ...] = ()

    @classmethod
    def of(cls, mapping: Mapping) -> "TableSpec":
        target = mapping.target
        indexes = tuple(IndexSpec(ix.name, ix.partition, ix.sort) for ix in target.indexes)
        return cls(target.table, target.key.partition, target.key.sort, indexes)

    def key_attributes(self) -> list[str]:
        """Every attribute used in the table's or an index's key, each once."""
        names = [self.partition_key, self.sort_key]
        for index in self.indexes:
            names += [index.partition_key, index.sort_key]
        return list(dict.fromkeys(n for n in names if n))


def dynamodb_client(address: TableAddress, patient: bool = True) -> Any:
    """A low-level boto3 DynamoDB client for table management on the driver (standard retries);
    not patient: two attempts with short timeouts, for the first look at the endpoint."""
    import boto3
    from botocore.config import Config

    if patient:
        config = Config(region_name=address.region, retries={"mode": "standard"}, connect_timeout=5, read_timeout=30)
    else:
        config = Config(region_name=address.region, retries={"mode": "standard", "max_attempts": 2},
                        connect_timeout=3, read_timeout=10)
    return boto3.session.Session().client("dynamodb", endpoint_url=address.endpoint_url, config=config)


def _shown(key_schema: list[dict[str, str]], types: dict[str, str]) -> str:
    return ", ".join(f"{k['AttributeName']} {k['KeyType']} {types.get(k['AttributeName'], '?')}" for k in key_schema)


def fit_problems(table: dict[str, Any], spec: TableSpec) -> list[str]:
    """How an existing table's keys differ from what the mapping writes (every key a string)."""
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    wanted_types = {n: "S" for n in spec.key_attributes()}
    problems = []
    wanted = _key_schema(spec.partition_key, spec.sort_key)
    have = table.get("KeySchema", [])
    if _shown(have, types) != _shown(wanted, wanted_types):
        problems.append(f"its key is ({_shown(have, types)}) but the mapping writes ({_shown(wanted, wanted_types)})")
    indexes = {ix["IndexName"]: ix for ix in table.get("GlobalSecondaryIndexes", [])}
    for index in spec.indexes:
        wanted = _key_schema(index.partition_key, index.sort_key)
        if index.name not in indexes:
            problems.append(f"it has no index {index.name}, which the mapping declares ({_shown(wanted, wanted_types)})")
        elif _shown(indexes[index.name]["KeySchema"], types) != _shown(wanted, wanted_types):
            problems.append(f"its index {index.name} is keyed ({_shown(indexes[index.name]['KeySchema'], types)}) "
                            f"but the mapping declares ({_shown(wanted, wanted_types)})")
    return problems


def check_table(address: TableAddress, spec: TableSpec) -> dict[str, Any] | None:
    """Before anything is read: the endpoint answers, and a table already there fits the mapping.

    Returns the table's description (None when it does not exist yet); raises SinkError in
    seconds when the endpoint cannot be reached or the existing table has other keys.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    where = address.endpoint_url or f"AWS ({address.region})"
    try:
        table = describe(dynamodb_client(address, patient=False), spec.name)
    except ClientError as exc:
        raise SinkError(f"DynamoDB at {where} refused DescribeTable {spec.name}: {error_code(exc)}") from None
    except BotoCoreError as exc:
        raise SinkError(f"cannot reach DynamoDB at {where} ({error_code(exc)}); check --endpoint-url, "
                        "the network and the credentials. Nothing was read") from None
    if table is not None and (problems := fit_problems(table, spec)):
        raise SinkError(f"table {spec.name} already exists at {where} and does not fit the mapping: "
                        f"{'; '.join(problems)}. Write to another target.table, or delete the table. Nothing was read")
    return table


def _key_schema(partition_key: str, sort_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition_key, "KeyType": "HASH"}]
    if sort_key:
        schema.append({"AttributeName": sort_key, "KeyType": "RANGE"})
    return schema


def describe(client: Any, name: str) -> dict[str, Any] | None:
    """DescribeTable's Table, or None when there is no such table."""
    try:
        return client.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def table_exists(client: Any, name: str) -> bool:
    return describe(client, name) is not None


def create_table_request(
    spec: TableSpec, billing: str = "PAY_PER_REQUEST", provisioned_units: int | None = None
) -> dict[str, Any]:
    """CreateTable arguments: every key attribute a string, every index projecting all attributes."""
    if billing not in ("PAY_PER_REQUEST", "PROVISIONED"):
        raise SinkError(f"billing must be PAY_PER_REQUEST or PROVISIONED, not {billing!r}")
    if billing == "PROVISIONED" and not provisioned_units:
        raise SinkError("a PROVISIONED table needs provisioned_units (read and write capacity units)")
    throughput = (
        {"ProvisionedThroughput": {"ReadCapacityUnits": provisioned_units, "WriteCapacityUnits": provisioned_units}}
        if billing == "PROVISIONED"
        else {}
    )
    request: dict[str, Any] = {
        "TableName": spec.name,
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": "S"} for n in spec.key_attributes()],
        "KeySchema": _key_schema(spec.partition_key, spec.sort_key),
        "BillingMode": billing,
        **throughput,
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": _key_schema(index.partition_key, index.sort_key),
                "Projection": {"ProjectionType": "ALL"},
                **throughput,
            }
            for index in spec.indexes
        ]
    return request


def ensure_table(
    client: Any, spec: TableSpec, billing: str = "PAY_PER_REQUEST", provisioned_units: int | None = None
) -> bool:
    """Create the table (and its indexes) unless it exists, and wait until it is ACTIVE; True if created here."""
    created = False
    if not table_exists(client, spec.name):
        try:
            client.create_table(**create_table_request(spec, billing, provisioned_units))
            created = True
        except ClientError as exc:
            # Another job created it between our describe and create: use theirs.
            if error_code(exc) != "ResourceInUseException":
                raise
    client.get_waiter("table_exists").wait(TableName=spec.name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    return created


def delete_table(client: Any, name: str) -> None:
    """Delete the table and wait until it is gone (tests clean up with this)."""
    try:
        client.delete_table(TableName=name)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        return
    client.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
