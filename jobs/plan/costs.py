"""What a load costs and how long it takes, three ways, from a dated price table.

Prices are DynamoDB's published list prices for one region and table class (jobs/plan/prices.json,
dated); `carve plan --prices FILE` overrides any of them with a JSON or YAML file of the same keys.
Plain arithmetic, no I/O beyond reading that file:

- on-demand: every write request unit, the table's and each index's, at the per-million price;
- provisioned: the budget in WCU for as long as the load takes at it, billed by the started hour
  (an index needs its own capacity: the budget is shared out between table and indexes, as
  carve's writer paces both against it);
- Import from S3: the uncompressed DynamoDB JSON the import reads, per GB (2^30 bytes); it
  consumes no write capacity but only creates a new table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from transforms.errors import CarveError

GB = 2**30


@dataclass(frozen=True)
class Prices:
    as_of: str
    region: str
    currency: str
    table_class: str
    source: str
    on_demand_per_million_writes: float
    provisioned_per_wcu_hour: float
    import_per_gb: float

    @classmethod
    def load(cls, override: str | Path | None = None) -> Prices:
        """The built-in table, with the keys of `override` (JSON or YAML) in place of its own."""
        values: dict[str, Any] = json.loads((resources.files("jobs.plan") / "prices.json").read_text("utf-8"))
        if override is not None:
            values |= _override(Path(override))
        try:
            return cls(**values)
        except TypeError as exc:
            raise CarveError(f"prices {override}: {exc}") from None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _override(path: Path) -> dict[str, Any]:
    try:
        values = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CarveError(f"prices {path}: {exc.strerror}") from None
    except YAMLError as exc:
        raise CarveError(f"prices {path}: not JSON or YAML: {str(exc).splitlines()[0]}") from None
    known = {f.name for f in fields(Prices)}
    if not isinstance(values, dict) or set(values) - known:
        unknown = ", ".join(sorted(set(values) - known)) if isinstance(values, dict) else "not a map"
        raise CarveError(f"prices {path}: unknown keys: {unknown}; the keys are {', '.join(sorted(known))}")
    for key in ("on_demand_per_million_writes", "provisioned_per_wcu_hour", "import_per_gb"):
        if key in values and (not isinstance(values[key], (int, float)) or values[key] < 0):
            raise CarveError(f"prices {path}: {key} must be a number of at least 0, not {values[key]!r}")
    return values


@dataclass(frozen=True)
class LoadCosts:
    on_demand: float
    provisioned: float
    provisioned_hours: int
    import_s3: float
    seconds_at_budget: float

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_costs(write_units: float, import_bytes: int, budget_wcu: float, prices: Prices) -> LoadCosts:
    seconds = write_units / budget_wcu if budget_wcu > 0 else math.inf
    hours = max(1, math.ceil(seconds / 3600)) if math.isfinite(seconds) else 0
    return LoadCosts(
        on_demand=write_units / 1e6 * prices.on_demand_per_million_writes,
        provisioned=budget_wcu * hours * prices.provisioned_per_wcu_hour,
        provisioned_hours=hours,
        import_s3=import_bytes / GB * prices.import_per_gb,
        seconds_at_budget=seconds,
    )


def recommend(costs: LoadCosts, table_exists: bool, currency: str) -> dict[str, str]:
    """The path to take and why: the cheapest one that can load this table."""
    writes = {"on-demand writes": costs.on_demand, "provisioned capacity": costs.provisioned}
    cheaper = min(writes, key=writes.__getitem__)
    other = max(writes, key=writes.__getitem__)
    if not table_exists and costs.import_s3 < writes[cheaper]:
        return {"path": "Import from S3",
                "reason": (f"Import from S3 costs {_money(costs.import_s3, currency)} against "
                           f"{_money(writes[cheaper], currency)} for {cheaper}, and uses none of the table's write "
                           "capacity; the table is new (carve run --sink import-s3 --import-prefix s3://BUCKET/PREFIX/)")}
    reason = (f"{cheaper} cost {_money(writes[cheaper], currency)} against {_money(writes[other], currency)} "
              f"for {other}")
    if cheaper == "provisioned capacity":
        reason += (f" ({costs.provisioned_hours} h billed: set the table's write capacity to the budget for the load, "
                   "and back afterwards)")
    if table_exists:
        reason += "; Import from S3 only creates a new table, and this one exists"
    else:
        reason += f"; Import from S3 would cost {_money(costs.import_s3, currency)}"
    return {"path": cheaper, "reason": reason}


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}" if amount >= 0.01 or amount == 0 else f"{amount:.4f} {currency}"
