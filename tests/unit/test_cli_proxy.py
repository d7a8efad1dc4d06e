"""`carve proxy` refuses bad settings with one clear line, before it listens anywhere."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from jobs.cli import cli


@pytest.mark.parametrize(
    "args, message",
    [
        (["--throttle-rate", "1.5"], "Invalid value for '--throttle-rate': 1.5 is not in the range 0<=x<=1."),
        (["--drop-rate", "-0.1"], "Invalid value for '--drop-rate'"),
        (["--error-500-rate", "0.7", "--error-503-rate", "0.7"], "add up to 1.4"),
        (["--write-capacity", "0"], "Invalid value for '--write-capacity'"),
        (["--fault-operations", "PutItem,GetItems"], "unknown operation(s) in fault_operations: GetItems"),
    ],
)
def test_bad_settings_are_usage_errors(args, message):
    result = CliRunner().invoke(cli, ["proxy", "--upstream", "http://127.0.0.1:9", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_upstream_must_be_an_http_url():
    result = CliRunner().invoke(cli, ["proxy", "--upstream", "dynalite:8000"])
    assert result.exit_code == 2
    assert "upstream must be an http://host:port URL, not 'dynalite:8000'" in result.output
