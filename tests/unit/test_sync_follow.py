"""carve sync's --interval: the forms a person writes, and a clear refusal of the rest."""

from __future__ import annotations

import pytest

from jobs.sync.follow import interval_seconds


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("45", 45), ("0.5s", 0.5),
                                           (" 2m ", 120)])
def test_intervals_in_seconds_minutes_and_hours(text, seconds):
    assert interval_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "5 minutes", "-3s", "1d", "s"])
def test_anything_else_is_refused_with_the_forms_that_work(text):
    with pytest.raises(ValueError, match="write 30s, 5m, 1h or a number of seconds"):
        interval_seconds(text)
