"""How fast the writer goes: the job's budget, its split over tasks, and each task's pace.

The budget is write units per second for the whole job: a number, or a share of the table's
capacity read from DescribeTable (and re-read while the job runs, so autoscaling is followed).

The driver runs a `Coordinator`: a small HTTP service that every write task calls about twice a
second. It hands each task its share: the budget divided by the number of tasks that run at the
same time, which is the number of task slots until tasks start finishing, and then the number
left. The tail of a run therefore gets the whole budget, not the share of the slots still busy.
A task that cannot reach the coordinator keeps its last share (at first, budget / slots), so the
job stays within budget either way.

Inside a task, `Pace` holds a token bucket at that share times an AIMD factor: a throttle cuts
the factor by 30 % (at most once per half second), and it climbs back by 5 % of the share per
second without one.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from transforms.errors import CarveError

# A new on-demand table takes about this many write units per second before it has to split
# partitions (its "warm throughput"); beyond it DynamoDB throttles while it scales.
ON_DEMAND_WARM_WCU = 4000.0
DEFAULT_SHARE = 0.8  # of a provisioned table's capacity when neither the run nor the mapping says
BUDGET_REREAD_SECONDS = 15.0
HEARTBEAT_SECONDS = 0.5

DECREASE = 0.7  # multiplicative decrease of a task's pace on a throttle
INCREASE_PER_SECOND = 0.05  # additive increase, as a share of the task's budget, per second
MIN_FACTOR = 0.05
DECREASE_HOLD = 0.5  # seconds: throttles closer together than this are one event


# --- the budget --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetSpec:
    """What the user asked for: `units` WCU/s, or `share` of the table's capacity (0 < share <= 1)."""

    units: float | None = None
    share: float | None = None

    def __post_init__(self) -> None:
        if (self.units is None) == (self.share is None):
            raise CarveError("a write budget is either units per second or a share of capacity, not both or neither")
        if self.units is not None and self.units <= 0:
            raise CarveError(f"write rate must be positive, not {self.units}")
        if self.share is not None and not 0 < self.share <= 1:
            raise CarveError(f"write rate share must be above 0 % and at most 100 %, not {self.share:.0%}")

    @classmethod
    def parse(cls, text: str | float) -> "BudgetSpec":
        """'1500' (WCU/s) or '80%' (of the table's capacity)."""
        if isinstance(text, (int, float)):
            return cls(units=float(text))
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(%?)\s*", text)
        if not match:
            raise CarveError(f"write rate {text!r}: write units per second (1500) or a share of capacity (80%)")
        value = float(match.group(1))
        return cls(share=value / 100) if match.group(2) else cls(units=value)

    def __str__(self) -> str:
        return f"{self.units:,.0f} WCU/s" if self.units is not None else f"{self.share:.0%} of capacity"


@dataclass(frozen=True)
class Budget:
    units_per_second: float
    how: str  # for the log and the report: where the figure came from


def resolve_budget(spec: BudgetSpec | None, table: dict[str, Any]) -> Budget:
    """The job's WCU/s from the request and DescribeTable's Table.

    Provisioned tables: a share applies to the table's WriteCapacityUnits (GSI writes count against
    the same budget, which is conservative). On-demand tables: a share applies to the table's
    OnDemandThroughput.MaxWriteRequestUnits, else to its warm throughput, else to the 4,000 WRU/s a
    new on-demand table takes. No request at all: 80 % of a provisioned table, the whole on-demand
    maximum or warm throughput.
    """
    if spec is not None and spec.units is not None:
        return Budget(spec.units, f"{spec.units:,.0f} WCU/s as asked")
    on_demand = table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST" or not (
        table.get("ProvisionedThroughput", {}).get("WriteCapacityUnits")
    )
    if on_demand:
        maximum = table.get("OnDemandThroughput", {}).get("MaxWriteRequestUnits") or 0
        warm = table.get("WarmThroughput", {}).get("WriteUnitsPerSecond") or 0
        if maximum > 0:
            capacity, what = float(maximum), "the table's on-demand maximum"
        elif warm > 0:
            capacity, what = float(warm), "the table's warm throughput"
        else:
            capacity, what = ON_DEMAND_WARM_WCU, "a new on-demand table's 4,000 WRU/s"
        share = spec.share if spec else 1.0
    else:
        capacity, what = float(table["ProvisionedThroughput"]["WriteCapacityUnits"]), "provisioned WCU"
        share = spec.share if spec else DEFAULT_SHARE
    return Budget(share * capacity, f"{share:.0%} of {capacity:,.0f} ({what})")


# --- one task's pace ---------------------------------------------------------------------------


class TokenBucket:
    """Write units refilled continuously at `rate` per second, holding at most `capacity`.

    `take` charges first and then says how long to wait, so the balance can go below zero: an item
    worth more units than the capacity still goes through, and the debt is paid by waiting. Over
    any span of t seconds at most capacity + rate * t units are handed out.
    """

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float], tokens: float | None = None):
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity if tokens is None else tokens
        self._last = clock()

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        if self._tokens < self.capacity:  # above it only by a refund, which is spent, not topped up
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def set_rate(self, rate: float, capacity: float) -> None:
        """From now on refill at `rate`; what was earned at the old rate stays."""
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self._refill()
        self.rate, self.capacity = rate, capacity
        self._tokens = min(self._tokens, capacity)

    def take(self, units: float) -> float:
        """Charge `units`; returns the seconds to wait before using them (0 when already covered)."""
        self._refill()
        self._tokens -= units
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, units: float, sleep: Callable[[float], None]) -> float:
        wait = self.take(units)
        if wait > 0:
            sleep(wait)
        return wait


BURST_SECONDS = 0.05  # a task's bucket holds this much of its rate: idle moments buy almost no burst


class Pace:
    """One task's rate: its share of the budget (which may change) times an AIMD factor.

    The bucket starts empty, so tasks starting together do not burst together.
    """

    def __init__(self, share: float, clock: Callable[[], float]):
        self._clock = clock
        self.share = share
        self.factor = 1.0
        self._last_cut = float("-inf")
        self._last_grow = clock()
        self.bucket = TokenBucket(share, share * BURST_SECONDS, clock, tokens=0.0)

    @property
    def rate(self) -> float:
        return self.share * self.factor

    def _apply(self) -> None:
        self.bucket.set_rate(self.rate, max(self.rate * BURST_SECONDS, 1.0))

    def set_share(self, share: float) -> None:
        if share != self.share:
            self.share = share
            self._apply()

    def throttled(self) -> None:
        """Multiplicative decrease; throttles within DECREASE_HOLD of the last cut are the same event."""
        now = self._clock()
        self._grow(now)
        if now - self._last_cut >= DECREASE_HOLD:
            self.factor = max(MIN_FACTOR, self.factor * DECREASE)
            self._last_cut = now
            self._apply()

    def _grow(self, now: float) -> None:
        if self.factor < 1.0:
            self.factor = min(1.0, self.factor + INCREASE_PER_SECOND * (now - self._last_grow))
            self._apply()
        self._last_grow = now

    def acquire(self, units: float, sleep: Callable[[float], None]) -> float:
        self._grow(self._clock())
        return self.bucket.acquire(units, sleep)

    def charge(self, units: float) -> None:
        """Correct the last acquire by what DynamoDB reported: a debt (units > 0) the next acquire
        waits for, or a refund (units < 0) it spends first, even beyond the bucket's capacity, so
        the task paces at what is really consumed rather than at the estimate."""
        self.bucket.take(units)


# --- the coordinator (driver) and its link (tasks) ---------------------------------------------


@dataclass
class _TaskState:
    attempt: int
    done: bool = False
    seen: float = 0.0


@dataclass
class Coordinator:
    """Driver side: each running task's share of the budget, rebalanced as tasks finish.

    `budget` is called now and every BUDGET_REREAD_SECONDS (a share of capacity re-reads
    DescribeTable); `tasks` is how many write tasks the job has and `slots` how many run at once.
    """

    budget: Callable[[], Budget]
    tasks: int
    slots: int
    host: str = "127.0.0.1"
    clock: Callable[[], float] = time.monotonic
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    budget_timeline: list[tuple[float, float]] = field(default_factory=list)  # (epoch second, WCU/s)
    live: Callable[[str], None] | None = None  # told "achieved of budget WCU/s" every second while running

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[int, _TaskState] = {}
        self._consumed: dict[int, float] = {}  # epoch second -> WCU the tasks reported, for the live line
        self.items_acknowledged = 0  # items the tasks reported written (a lower bound while they run)
        self.current = self.budget()
        self.budget_timeline.append((time.time(), self.current.units_per_second))
        self._server: ThreadingHTTPServer | None = None
        self._halt = threading.Event()

    # the rule
    def running_at_once(self) -> int:
        done = sum(1 for s in self._states.values() if s.done)
        return max(1, min(self.slots, self.tasks - done))

    def share(self) -> float:
        return self.current.units_per_second / self.running_at_once()

    def heartbeat(self, task: int, attempt: int, done: bool, wcu: float = 0.0, items: int = 0) -> float:
        with self._lock:
            self.items_acknowledged += items
            if wcu:
                second = int(time.time())
                self._consumed[second] = self._consumed.get(second, 0.0) + wcu
            state = self._states.get(task)
            if state is None or attempt >= state.attempt:
                self._states[task] = _TaskState(attempt, done, self.clock())
            return self.share()

    # the service
    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/lease"

    def start(self) -> "Coordinator":
        coordinator = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if body.get("token") != coordinator.token:
                    self.send_error(403)
                    return
                share = coordinator.heartbeat(int(body["task"]), int(body.get("attempt", 0)), bool(body.get("done")),
                                              float(body.get("wcu", 0.0)), int(body.get("items", 0)))
                answer = json.dumps({"share": share}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="carve-coordinator", daemon=True).start()
        threading.Thread(target=self._reread, name="carve-budget", daemon=True).start()
        if self.live is not None:
            threading.Thread(target=self._tell, name="carve-live-rate", daemon=True).start()
        return self

    def live_rate(self) -> float:
        """WCU/s the tasks reported over the last three whole seconds (heartbeats lag half a second)."""
        now = int(time.time())
        with self._lock:
            return sum(self._consumed.get(s, 0.0) for s in range(now - 3, now)) / 3

    def _tell(self) -> None:
        while not self._halt.wait(1.0):
            self.live(f"{self.live_rate():,.0f} of {self.current.units_per_second:,.0f} WCU/s")

    def _reread(self) -> None:
        while not self._halt.wait(BUDGET_REREAD_SECONDS):
            try:
                budget = self.budget()
            except CarveError as exc:  # a failed DescribeTable keeps the last budget
                print(f"carve: could not re-read the write budget ({exc}); keeping {self.current.how}", file=sys.stderr)
                continue
            with self._lock:
                if budget.units_per_second != self.current.units_per_second:
                    self.budget_timeline.append((time.time(), budget.units_per_second))
                self.current = budget

    def stop(self) -> None:
        self._halt.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "Coordinator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def link(self) -> "Link":
        return Link(self.url, self.token, self.share())


@dataclass
class Link:
    """Task side: asks the coordinator for this task's share every HEARTBEAT_SECONDS.

    Picklable (plain fields), built on the driver and shipped to the tasks. When the coordinator
    cannot be reached the task keeps its last share and says so once on stderr.
    """

    url: str
    token: str
    share: float  # the share until the first answer

    def ask(self, task: int, attempt: int, done: bool = False, wcu: float = 0.0, items: int = 0) -> float:
        """This task's share; `wcu` and `items` are what it consumed and wrote since it last asked."""
        body = json.dumps({"token": self.token, "task": task, "attempt": attempt, "done": done, "wcu": wcu,
                           "items": items}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                self.share = float(json.loads(answer.read())["share"])
        except (OSError, ValueError, KeyError) as exc:
            if not getattr(self, "_warned", False):
                print(f"carve: write coordinator unreachable ({exc}); keeping {self.share:,.0f} WCU/s", file=sys.stderr)
                self._warned = True
        return self.share


@dataclass
class StaticShare:
    """A fixed share for tests and for writes without a coordinator."""

    share: float

    def ask(self, task: int, attempt: int, done: bool = False, wcu: float = 0.0, items: int = 0) -> float:
        return self.share
