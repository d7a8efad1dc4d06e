"""The achieved write rate against the budget, second by second: figures for the report, and a plot.

Used by a run (from what its tasks report DynamoDB consumed) and by the write benchmark (from what
the capacity proxy accepted), so both are judged by the same rules.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

EDGE_SECONDS = 2  # ramp-up and tail seconds left out of the steady state


@dataclass(frozen=True)
class RateSummary:
    seconds: int
    total_wcu: float
    mean_utilisation: float  # total / (budget * seconds)
    steady_utilisation: float  # mean of achieved / budget over the seconds between the edges
    steady_median_utilisation: float
    peak_share: float  # the busiest second / its budget
    seconds_over_110: int  # seconds above 110 % of their budget

    def as_report(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def rate_series(timeline: dict[int, float], budget_timeline: list[tuple[float, float]]) -> list[dict]:
    """[{"second": s from start, "epoch": epoch second, "wcu": consumed, "budget": WCU/s}] with gaps as 0."""
    if not timeline:
        return []
    first, last = min(timeline), max(timeline)
    changes = sorted(budget_timeline)
    series = []
    for epoch in range(first, last + 1):
        budget = next((b for at, b in reversed(changes) if at <= epoch + 1), changes[0][1] if changes else 0.0)
        series.append({"second": epoch - first, "epoch": epoch, "wcu": round(timeline.get(epoch, 0.0), 3),
                       "budget": budget})
    return series


def summarize_rate(series: list[dict]) -> RateSummary | None:
    with_budget = [s for s in series if s["budget"]]
    if not with_budget:
        return None
    shares = [s["wcu"] / s["budget"] for s in with_budget]
    steady = shares[EDGE_SECONDS:-EDGE_SECONDS] if len(shares) > 2 * EDGE_SECONDS else shares
    total = sum(s["wcu"] for s in series)
    return RateSummary(
        seconds=len(series),
        total_wcu=total,
        mean_utilisation=total / sum(s["budget"] for s in with_budget),
        steady_utilisation=statistics.fmean(steady),
        steady_median_utilisation=statistics.median(steady),
        peak_share=max(shares),
        seconds_over_110=sum(1 for x in shares if x > 1.10),
    )


def plot_rate(series: list[dict], path: Path, title: str, others: dict[str, list[dict]] | None = None) -> Path | None:
    """A PNG of WCU/s over time against the budget; None (and nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(9, 4), dpi=100)
    for label, points in {"carve": series, **(others or {})}.items():
        axes.plot([p["second"] for p in points], [p["wcu"] for p in points], label=f"{label} achieved", linewidth=1.2)
    axes.step([p["second"] for p in series], [p["budget"] for p in series], where="post", color="black",
              linestyle="--", linewidth=1, label="budget")
    axes.set_xlabel("seconds since the first write")
    axes.set_ylabel("write units per second")
    axes.set_title(title)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
