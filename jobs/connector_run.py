"""A run whose write stage is AWS Glue's DynamoDB connector (`carve run --sink glue-connector`)."""

from __future__ import annotations

from pyspark.sql import DataFrame

from jobs.dynamo import dynamodb_client, ensure_table, task_slots
from jobs.glue_sink import connector_frame, connector_plan
from jobs.run import Run, budget_spec, table_spec, write_settings
from jobs.runtime import current as current_runtime


class GlueConnectorRun(Run):
    """A Run whose write stage hands the items to the Glue DynamoDB connector, through the runtime.

    Everything else (compile, read, transform, validate, reconcile, report) is the same run:
    reconcile reads the table back, so whatever the connector did to an item shows up there.
    """

    def _write(self, items: DataFrame) -> None:
        settings = write_settings(self.mapping, self.options)
        client = dynamodb_client(settings)
        if self.options.create_table and ensure_table(client, table_spec(self.mapping)):
            self.console.print(f"  created table {settings.table} (on-demand) at {settings.endpoint_url or 'AWS'}")
        description = client.describe_table(TableName=settings.table)["Table"]
        # The same budget as carve's writer: WCU/s as asked, a share of provisioned capacity as a
        # percent (the connector's own model), nothing asked: the connector's default.
        spec = budget_spec(self.mapping, self.options)
        plan = connector_plan(description, task_slots(self.spark), spec.units if spec else None,
                              spec.share if spec else None, region=settings.region)
        for note in plan.notes:
            self.console.print(f"  connector: {note}")
        key = self.mapping.target.key
        label = (f"Glue DynamoDB connector into {settings.table}, {plan.percent} x {plan.table_wcu:,} WCU "
                 f"= {plan.wcu_per_second:,} WCU/s, {plan.tasks} tasks")
        with self.stages.stage("write", label) as stage:
            stage.rows = items.count()
            if stage.rows:  # an empty frame has no columns to hand over
                frame = connector_frame(items, plan.tasks, key.partition, key.sort)
                current_runtime().write_dynamodb(frame, plan.options, settings.endpoint_url)
            stage.detail = "handed over; the connector reports no consumed capacity"
        self.figures.update(
            items_written=stage.rows,
            sink="glue-connector",
            connector={"options": plan.options, "billing": plan.billing, "table_wcu": plan.table_wcu,
                       "wcu_per_task": plan.wcu_per_task, "wcu_per_second": plan.wcu_per_second,
                       "notes": list(plan.notes)},
        )
