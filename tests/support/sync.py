"""A small store in a real database, synced into dynalite: what the sync tests share."""

from __future__ import annotations

import json
import os
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.devtools.commands import demo_connection
from jobs.devtools.demo_data import DemoDatabase
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.pipeline import Pipeline, RunOptions
from jobs.sources.jdbc import read_sources
from jobs.sync.cycle import SyncCycle
from tests.support.databases import connect, create_database, drop_database
from tests.support.dynamodb import dynamodb_client, scan_all
from transforms.items import build_items
from transforms.mapping import Mapping, load_mapping_text, referenced_columns
from transforms.wire import item_digest


def store_mapping(name: str, engine: str, table: str, control: str, follow: dict[str, str]) -> str:
    """The store's mapping (customers, orders with their lines and each line's product, products)
    into `table`, synced by `follow`: per table, its change source as YAML."""
    schema = "public." if engine == "postgres" else ""
    tables = "\n".join(f"    {schema}{t}: {source}" for t, source in follow.items())
    return textwrap.dedent(f"""\
        version: 1
        name: {name}
        source: {{connection: {name}}}
        target: {{table: {table}, key: {{partition: PK, sort: SK}}}}
        entities:
          customer:
            from: {schema}customer
            filter: "tier <> 'closed'"
            key: {{PK: "CUSTOMER#{{customer_id}}", SK: PROFILE}}
            attributes: {{name: name, tier: tier}}
          order:
            from: {schema}orders
            key: {{PK: "CUSTOMER#{{customer_id}}", SK: "ORDER#{{order_id}}"}}
            attributes:
              status: status
              lines:
                from: {schema}order_line
                join: {{order_id: order_id}}
                order_by: line_no
                many:
                  qty: qty
                  product: {{from: {schema}product, join: {{product_id: product_id}}, one: {{sku: sku, name: name}}}}
          product:
            from: {schema}product
            key: {{PK: "PRODUCT#{{sku}}", SK: DETAILS}}
            attributes: {{name: name}}
        sync:
          control_table: {control}
          lease_seconds: 10
          tables:
    """) + tables + "\n"


@dataclass
class Store:
    engine: str
    target: DemoDatabase
    endpoint: str
    mapping: Mapping
    mapping_file: Path
    tmp: Path

    def execute(self, sql: str) -> None:
        conn = connect(self.target)
        try:
            cursor = conn.cursor()
            for statement in filter(str.strip, sql.split(";")):
                cursor.execute(statement)
        finally:
            conn.close()

    def pipeline(self, spark, mapping: Mapping | None = None, name: str = "run") -> Pipeline:
        report_dir = self.tmp / f"{name}-{uuid.uuid4().hex[:6]}"
        return Pipeline(spark, mapping or self.mapping, str(self.mapping_file), demo_connection(self.target),
                        RunOptions(report_dir, endpoint_url=self.endpoint), Console(highlight=False, width=160))

    def sync(self, spark, verify: str = "affected") -> Any:
        return SyncCycle(self.pipeline(spark, name="sync"), verify).execute()

    def built(self, spark) -> dict[tuple[str, str], str]:
        """The digests of every item a full load would write now: built, not written (a full load's
        own reconcile proves its table holds exactly these; fresh_full_load does it once)."""
        frames = read_sources(spark, demo_connection(self.target), self.mapping, referenced_columns(self.mapping),
                              cache=False)
        rows = build_items(self.mapping, frames).where("problem IS NULL").select("pk", "sk", "item").collect()
        return {(r.pk, r.sk): item_digest(json.loads(r.item)) for r in rows}

    def fresh_full_load(self, spark) -> dict[tuple[str, str], str]:
        """The digests of a full load of the source as it is now, into a new table."""
        table = f"{self.mapping.target.table}-fresh-{uuid.uuid4().hex[:6]}"
        mapping = self.mapping.model_copy(update={
            "sync": None, "target": self.mapping.target.model_copy(update={"table": table})})
        assert self.pipeline(spark, mapping, "fresh").execute().ok
        return digests(self.endpoint, table)


def digests(endpoint: str, table: str) -> dict[tuple[str, str], str]:
    return {(i["PK"]["S"], i["SK"]["S"]): item_digest(i) for i in scan_all(dynamodb_client(endpoint), table)}


def new_store(spark, engine: str, name: str, endpoint: str, tmp: Path, suffix: str, follow: dict[str, str],
              schema: str, rows: str) -> Store:
    """A new database carve_sync_<name>_<suffix> holding `schema` and `rows`, with the store's
    mapping into a new table, synced by `follow` (per table, its change source as YAML). The
    caller drops the database (drop_database(store.target))."""
    spark.sparkContext.environment.update({key: os.environ[key] for key in LOCAL_AWS_ENV})
    target = DemoDatabase(engine, database=f"carve_sync_{name}_{suffix}")
    mapping_file = tmp / f"{name}.yaml"
    mapping_file.write_text(store_mapping(name, engine, f"{name}-{engine}-{suffix}", f"carve-sync-{suffix}", follow))
    create_database(target)
    try:
        store = Store(engine, target, endpoint, load_mapping_text(mapping_file.read_text(), str(mapping_file)),
                      mapping_file, tmp)
        store.execute(schema)
        store.execute(rows)
    except BaseException:
        drop_database(target)  # the caller never gets the store to drop it
        raise
    return store
