"""What a run shows while it works: one line per stage, and Spark's task progress meanwhile."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyspark import SparkContext
from rich.console import Console

from jobs import interrupts


@dataclass(frozen=True)
class StageFigures:
    rows: int
    seconds: float


@dataclass
class Stage:
    name: str
    rows: int = 0
    seconds: float = 0.0
    detail: str = ""
    live: str = ""  # shown beside the task count while the stage runs (the write's WCU/s)


@dataclass
class Stages:
    console: Console
    spark_context: SparkContext | None = None
    done: list[Stage] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str, what: str):
        interrupts.check()  # Ctrl-C between two stages stops before the next
        stage = Stage(name)
        started = time.monotonic()
        with self.console.status(f"[bold]{name}[/]: {what}") as status:
            watcher = _TaskWatcher(self.spark_context,
                                   lambda text: status.update(f"[bold]{name}[/]: {what} {text} {stage.live}"))
            watcher.start()
            try:
                yield stage
            finally:
                watcher.stop()
                stage.seconds = time.monotonic() - started
                self.done.append(stage)
        rate = f", {stage.rows / stage.seconds:,.0f} rows/s" if stage.rows and stage.seconds > 0 else ""
        detail = f"  {stage.detail}" if stage.detail else ""
        self.console.print(f"  {name:<10} {stage.rows:>10,} rows  {stage.seconds:7.1f} s{rate}{detail}")

    def figures(self) -> dict[str, StageFigures]:
        return {s.name: StageFigures(s.rows, s.seconds) for s in self.done}


class _TaskWatcher(threading.Thread):
    """Polls Spark's status tracker: tasks done of tasks in the running stages."""

    def __init__(self, spark_context: SparkContext | None, show) -> None:
        super().__init__(daemon=True)
        self._sc = spark_context
        self._show = show
        self._halt = threading.Event()

    def run(self) -> None:
        if self._sc is None:
            return
        tracker = self._sc.statusTracker()
        while not self._halt.wait(0.5):
            done = total = 0
            for stage_id in tracker.getActiveStageIds():
                info = tracker.getStageInfo(stage_id)
                if info:
                    done += info.numCompletedTasks
                    total += info.numTasks
            if total:
                self._show(f"[dim]({done}/{total} tasks)[/]")

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)
