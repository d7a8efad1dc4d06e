"""One sync cycle: find what changed, rebuild only the items it touches, write, prove, move on.

Under the mapping's lease: each table's changes since its saved position (jobs.sync.sources),
the affected items' roots by the join graph (jobs.sync.affected), those items read and built by
the full load's own stages on a subset of the mapping (jobs.sources.subset), written within the
same budget, read back by key and compared; only then do the positions move. A crash anywhere
before that leaves the positions where they were, and the next cycle rebuilds the same items
from the source as it is then: a replay writes what a fresh full load would.

Items the cycle must delete: those of affected roots that the rebuild quarantines or that the
entity's filter now leaves out (a full load would not write them either), and, where the source
sees deletes, the keys the changed rows had before (a deleted root, a key that changed), unless
the rebuild writes the same key again. A cycle rebuilds from the source as it is, not by
replaying each change: however the changes are ordered, the items end as a full load's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.pipeline import Pipeline, TransformResult
from jobs.sources.jdbc import describe_table, jdbc_rows, qualified, read_sources, unpersist
from jobs.sources.subset import keys_query, listed, subset_mapping
from jobs.sync import sources
from jobs.sync.affected import affected_roots, any_of
from jobs.sync.changes import MAX_CHANGES, TableChanges
from jobs.sync.start import control_table
from jobs.sync.state import Lease
from jobs.verify.reconcile import ReconcileResult, expected_digests, fetch_digests, reconcile
from transforms.errors import CarveError
from transforms.items import build_items
from transforms.mapping import Mapping, referenced_columns

VERIFY_CHOICES = ("affected", "full")


@dataclass(frozen=True)
class Found:
    changes: list[TableChanges]
    roots: dict[str, str]  # entity -> SQL condition on its rows
    read_at: float  # epoch seconds when the source's positions were read


class SyncCycle:
    """One cycle of `carve sync` for one mapping; `execute` returns its report (mode sync)."""

    def __init__(self, pipeline: Pipeline, verify: str = "affected", compile_mapping: bool = True,
                 max_changes: int = MAX_CHANGES) -> None:
        """compile_mapping=False: the mapping was compiled against the source by an earlier cycle
        of this process (--follow); the read would still fail on a table or column gone since.
        max_changes: where the change sources stop for this cycle (jobs.sync.changes)."""
        self.pipeline = pipeline
        self.mapping = pipeline.mapping
        self.verify_full = verify == "full"
        self.compile_mapping = compile_mapping
        self.max_changes = max_changes
        self.control = control_table(pipeline.mapping, pipeline.address)
        pipeline.report.mode = "sync"

    def execute(self) -> Any:
        # Ctrl-C is the caller's: a sync finishes its cycle (jobs.sync.follow).
        return self.pipeline.reported(self._stages, cancel_on_ctrl_c=False)

    def _stages(self) -> None:
        pipeline, mapping = self.pipeline, self.mapping
        if self.compile_mapping:
            pipeline.compile()
        self.control.ensure()
        with self.control.held(mapping.name, mapping.sync.lease_seconds) as lease:
            try:
                self._cycle(lease)
            except BaseException as exc:
                self._record(lease, {"status": "failed", "error": str(exc).splitlines()[0][:300] if str(exc) else
                                     type(exc).__name__})
                raise
        if self.verify_full:
            self._verify_full()

    def _cycle(self, lease: Lease) -> None:
        pipeline, report = self.pipeline, self.pipeline.report
        found = self.find()
        report.sync = self._figures(found, 0, 0)
        if found.roots:
            subset = subset_mapping(self.mapping, pipeline.conn, found.roots,
                                    lambda sql: jdbc_rows(pipeline.spark, pipeline.conn, sql, session=True))
            transformed = pipeline.transform(pipeline.read(subset), subset)
            pipeline.validate(transformed.accepted)
            with pipeline.stages.stage("deletes", "the keys to delete: quarantined, filtered out, old keys") as stage:
                # Written, counted and read back: computed once (it joins the items and may read the source).
                deletes = self.deletions(transformed, found).localCheckpoint()
                stage.rows = deletes.count()
            puts = transformed.accepted.select("entity", "pk", "sk", "item", "wcu", F.lit(False).alias("delete"))
            pipeline.write(puts.unionByName(deletes))
            report.sync["items_rewritten"] = transformed.built - transformed.rejected
            report.sync["items_deleted"] = stage.rows
            result = self.verify(transformed.accepted, deletes)
            transformed.items.unpersist()
            report.items_lost, report.items_mismatched = result.missing, result.mismatched
            if not result.ok:
                report.status = "failed"
                report.error = (f"after writing, {result.missing:,} rebuilt items are not in {pipeline.address.table}, "
                                f"{result.mismatched:,} hold other content and {result.extra:,} that should be deleted "
                                "are still there; the positions were not moved, so the next cycle applies these "
                                "changes again. Samples are under reconcile in this report")
                return
        self.save(lease, found)
        report.sync["lag_seconds"] = round(time.time() - found.read_at, 3)
        report.status = "ok"
        # A cycle that stopped at its limit brought the table forward, not in step with the source.
        self._record(lease, {"status": "ok", **{k: report.sync[k] for k in ("items_rewritten", "items_deleted",
                                                                            "lag_seconds", "changes", "caught_up")}},
                     in_step_at=found.read_at if report.sync["caught_up"] else None)

    # --- the stages ---------------------------------------------------------------------------

    def find(self) -> Found:
        pipeline, mapping = self.pipeline, self.mapping
        with pipeline.stages.stage("changes", f"reading positions from {self.control.address.table} and the "
                                              "source's changes") as stage:
            saved = self.control.positions(mapping.name)
            self.control.check_fingerprint(mapping, saved)
            read_at = time.time()
            changes = sources.changes(pipeline.spark, pipeline.conn, mapping, saved, self.max_changes)
            conditions: dict[str, list[str]] = {}
            for change in changes:
                if change.condition is None and change.images is None:
                    continue
                for entity, condition in affected_roots(pipeline.conn, mapping, change.table, change.condition,
                                                        change.images).items():
                    conditions.setdefault(entity, []).append(condition)
            stage.rows = sum(c.rows for c in changes)
            stage.detail = ", ".join(f"{c.table} {c.rows:,}" for c in changes if c.rows) or "nothing changed"
            roots = {entity: self._listed(entity, any_of(c)) for entity, c in conditions.items()}
        return Found(changes, roots, read_at)

    def _listed(self, entity: str, condition: str) -> str:
        """The entity's affected roots as a list of their primary keys, where a list will do."""
        conn, table = self.pipeline.conn, self.mapping.entities[entity].from_
        key = describe_table(self.pipeline.spark, conn, table).primary_key
        if not key:
            return condition
        rows = jdbc_rows(self.pipeline.spark, conn, keys_query(", ".join(conn.dialect.quote(c) for c in key),
                                                               qualified(conn, table), condition), session=True)
        return listed(conn, list(key), rows) or condition

    def deletions(self, transformed: TransformResult, found: Found) -> DataFrame:
        """Keys to delete, unless the rebuild writes them: affected items quarantined now, roots the
        entity's filter now leaves out, and the keys the changed rows' old images had (a root deleted
        at the source, a key that changed; only sources that see deletes carry old images)."""
        key = self.mapping.target.key
        keys = transformed.items.where(F.col("problem").isNotNull() & F.col("pk").isNotNull()).select(
            "entity", "pk", "sk")
        for more in (self._excluded(found.roots), self._old_keys(found.changes)):
            if more is not None:
                keys = keys.unionByName(more)
        kept = transformed.accepted.select("pk", "sk")
        keys = keys.join(kept, ["pk", "sk"], "left_anti") if key.sort else keys.join(kept.select("pk"), ["pk"], "left_anti")
        parts = [F.struct(F.col("pk").alias("S")).alias(key.partition)]
        if key.sort:
            parts.append(F.struct(F.col("sk").alias("S")).alias(key.sort))
        return keys.dropDuplicates(["pk", "sk"]).select(
            "entity", "pk", "sk", F.to_json(F.struct(*parts)).alias("item"), F.lit(1).alias("wcu"),
            F.lit(True).alias("delete"))

    def _excluded(self, roots: dict[str, str]) -> DataFrame | None:
        """entity, pk, sk of affected roots that their entity's filter leaves out."""
        entities = {}
        for name, condition in roots.items():
            entity = self.mapping.entities[name]
            if entity.filter:
                entities[name] = entity.model_copy(update={
                    "filter": f"({condition}) AND NOT COALESCE(({entity.filter}), FALSE)", "attributes": {}})
        return self._keys(entities)

    def _old_keys(self, changes: list[TableChanges]) -> DataFrame | None:
        """entity, pk, sk that the old images of changed rows give their entity's items."""
        entities = {}
        for change in changes:
            if change.images is None:
                continue
            for name, entity in self.mapping.entities.items():
                if entity.from_ == change.table:
                    entities[name] = entity.model_copy(update={
                        "from_": None, "query": f"SELECT * FROM {change.images} WHERE carve_old", "filter": None,
                        "attributes": {}, "indexes": {}})
        return self._keys(entities)

    def _keys(self, entities: dict) -> DataFrame | None:
        """entity, pk, sk of the items these keys-only entities build from their rows."""
        if not entities:
            return None
        keys_only: Mapping = self.mapping.model_copy(update={"entities": entities})
        pipeline = self.pipeline
        frames = read_sources(pipeline.spark, pipeline.conn, keys_only, referenced_columns(keys_only))
        keys = build_items(keys_only, frames).where(F.col("pk").isNotNull()).select("entity", "pk", "sk")
        keys = keys.localCheckpoint()
        unpersist(frames.values())
        return keys

    def verify(self, accepted: DataFrame, deletes: DataFrame) -> ReconcileResult:
        """The rewritten items read back by key and compared; the deleted ones must be gone."""
        pipeline, key = self.pipeline, self.mapping.target.key
        with pipeline.stages.stage("verify", "reading the rewritten and deleted items back by key") as stage:
            wanted = accepted.select("pk", "sk").unionByName(deletes.select("pk", "sk"))
            actual = fetch_digests(wanted, pipeline.address, key.partition, key.sort)
            result = reconcile(expected_digests(accepted), actual)
            stage.rows = result.expected + result.extra
            stage.detail = f"{result.missing} missing, {result.mismatched} different, {result.extra} not deleted"
        pipeline.report.reconcile = result
        return result

    def save(self, lease: Lease, found: Found) -> None:
        moved = [c for c in found.changes if c.after is not c.before]
        with self.pipeline.stages.stage("save", f"moving {len(moved)} positions in {self.control.address.table}") as stage:
            self.control.advance(lease, [(change.before, change.after) for change in moved])
            sources.committed(self.pipeline.spark, self.pipeline.conn, [c.after for c in moved])
            stage.rows = len(moved)

    def _verify_full(self) -> None:
        """--verify full: the whole table against a fresh build of every item (a full read), as
        `carve reconcile` does, with its own report beside this one."""
        pipeline = self.pipeline
        options = replace(pipeline.options, report_dir=pipeline.options.report_dir / "verify-full")
        pipeline.console.print(f"  verify full: the whole table against the source (report in {options.report_dir})",
                               markup=False)
        verifier = Pipeline(pipeline.spark, self.mapping, pipeline.mapping_file, pipeline.conn, options,
                            pipeline.console, pipeline.sink.context.runtime)
        verifier.report.mode = "reconcile"
        full = verifier.execute(write=False)
        result = full.reconcile
        report = self.pipeline.report
        report.sync = (report.sync or {}) | {"verify_full": {
            "status": full.status, "report": str(full.report),
            **({"missing": result.missing, "mismatched": result.mismatched, "extra": result.extra} if result else {})}}
        if full.ok and result is not None and result.extra:
            full.status = "failed"
            full.error = f"{result.extra:,} items are in the table that a full load would not write"
        if not full.ok and report.ok:
            report.status = "failed"
            report.error = (f"--verify full: {full.error} (a watermark does not see deletes). "
                            f"See {full.report}")

    # --- helpers ------------------------------------------------------------------------------

    def _figures(self, found: Found, rewritten: int, deleted: int) -> dict[str, Any]:
        return {
            "verify": "full" if self.verify_full else "affected",
            "changes": {c.table: c.operations for c in found.changes},
            "entities_affected": sorted(found.roots),
            "items_rewritten": rewritten,
            "items_deleted": deleted,
            "positions_before": {c.table: c.before.value for c in found.changes},
            "positions_after": {c.table: c.after.value for c in found.changes},
            "lag_seconds": 0.0,
            "caught_up": not any(c.more for c in found.changes),
        }

    def _record(self, lease: Lease, figures: dict[str, Any], in_step_at: float | None = None) -> None:
        try:
            self.control.record_cycle(lease, {"finished_at": time.time(), "report": str(
                self.pipeline.options.report_dir / "report.json"), **figures}, in_step_at)
        except CarveError:
            pass  # the lease is gone: the cycle's own error says so
