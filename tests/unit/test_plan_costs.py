"""carve plan's arithmetic: a load's cost three ways, the recommendation, and the price table override."""

from __future__ import annotations

import pytest

from jobs.plan.costs import GB, LoadCosts, Prices, load_costs, recommend
from transforms.errors import CarveError

PRICES = Prices(as_of="2024-11-01", region="us-east-1", currency="USD", table_class="STANDARD", source="test",
                on_demand_per_million_writes=0.625, provisioned_per_wcu_hour=0.00065, import_per_gb=0.15)


def test_a_load_costs_its_units_on_demand_its_started_hours_provisioned_and_its_gigabytes_imported():
    costs = load_costs(write_units=9_000_000, import_bytes=3 * GB, budget_wcu=1_000, prices=PRICES)
    assert costs.seconds_at_budget == 9_000
    assert costs.provisioned_hours == 3  # 2.5 h, billed by the started hour
    assert costs.on_demand == pytest.approx(9 * 0.625)
    assert costs.provisioned == pytest.approx(1_000 * 3 * 0.00065)
    assert costs.import_s3 == pytest.approx(3 * 0.15)


def test_a_short_load_is_billed_one_hour_and_no_budget_has_no_duration():
    assert load_costs(10, 0, 1_000, PRICES).provisioned_hours == 1
    endless = load_costs(10, 0, 0, PRICES)
    assert endless.provisioned_hours == 0 and endless.seconds_at_budget == float("inf")


def costs(on_demand: float, provisioned: float, import_s3: float) -> LoadCosts:
    return LoadCosts(on_demand, provisioned, 2, import_s3, 3_600)


def test_a_new_table_is_imported_when_that_is_cheapest():
    advice = recommend(costs(5.0, 2.0, 0.5), table_exists=False, currency="USD")
    assert advice["path"] == "Import from S3"
    assert "0.50 USD against 2.00 USD for provisioned capacity" in advice["reason"]
    assert "--sink import-s3" in advice["reason"]


def test_an_existing_table_is_never_imported_into():
    advice = recommend(costs(5.0, 2.0, 0.5), table_exists=True, currency="USD")
    assert advice["path"] == "provisioned capacity"
    assert "2 h billed" in advice["reason"] and "this one exists" in advice["reason"]


def test_writes_win_when_they_are_cheaper_than_the_import():
    advice = recommend(costs(0.01, 0.02, 0.5), table_exists=False, currency="USD")
    assert advice["path"] == "on-demand writes"
    assert "Import from S3 would cost 0.50 USD" in advice["reason"]


def test_the_price_table_is_dated_and_a_file_overrides_some_of_its_keys(tmp_path):
    built_in = Prices.load()
    assert built_in.as_of and built_in.on_demand_per_million_writes > 0
    override = tmp_path / "prices.yaml"
    override.write_text("region: eu-west-1\nimport_per_gb: 0.2\n")
    changed = Prices.load(override)
    assert (changed.region, changed.import_per_gb) == ("eu-west-1", 0.2)
    assert changed.provisioned_per_wcu_hour == built_in.provisioned_per_wcu_hour


@pytest.mark.parametrize("text, message", [
    ("imports: 0.2\n", "unknown keys: imports"),
    ("import_per_gb: -1\n", "import_per_gb must be a number of at least 0"),
    ("[1, 2]\n", "not a map"),
    ("a: [\n", "not JSON or YAML"),
])
def test_a_wrong_price_file_says_what_is_wrong(tmp_path, text, message):
    override = tmp_path / "prices.yaml"
    override.write_text(text)
    with pytest.raises(CarveError, match=message):
        Prices.load(override)
