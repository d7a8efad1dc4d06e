"""Ctrl-C during a run: cancel the Spark jobs, then end the run as interrupted, with its report.

PySpark's own SIGINT handler calls cancelAllJobs over the py4j connection the main thread is
blocked on, which fails ("reentrant call") and turns Ctrl-C into a network error. Here the
handler only asks another thread to cancel the jobs; the job the main thread waits for then
fails, and the run sees that an interrupt was asked for. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_asked = threading.Event()


def asked() -> bool:
    """Whether Ctrl-C was pressed during the current run."""
    return _asked.is_set()


def check() -> None:
    """Between stages: stop here if Ctrl-C was pressed."""
    if _asked.is_set():
        raise KeyboardInterrupt


@contextmanager
def cancel_jobs_on_ctrl_c(spark_context: Any) -> Iterator[None]:
    _asked.clear()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def on_ctrl_c(_signum: int, _frame: Any) -> None:
        if _asked.is_set():
            raise KeyboardInterrupt
        _asked.set()
        threading.Thread(target=spark_context.cancelAllJobs, name="carve-cancel-jobs", daemon=True).start()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def finish_then_stop(say: Any) -> Iterator[threading.Event]:
    """Ctrl-C sets the event (the caller finishes what it is doing and stops); a second Ctrl-C
    stops at once. Outside the main thread, where no signal arrives, the event is only returned."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_ctrl_c(_signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say("Ctrl-C: finishing the current cycle, then stopping (Ctrl-C again stops at once; "
            "a cycle stopped midway is applied again by the next sync)")

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
