"""Durations as people write them, and the round values defaults are rounded to."""

from __future__ import annotations

import pytest

from models.durations import format_duration, nice_ceil, nice_floor, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("15m", 900.0), ("1h", 3600.0), ("7d", 604800.0), ("2w", 1209600.0),
     ("1h30m", 5400.0), ("1.5h", 5400.0), ("500ms", 0.5), ("45", 45.0), (" 1D ", 86400.0)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "0s", "-1h", "1 2", "h"])
def test_parse_duration_refuses_what_is_not_a_positive_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|unit"):
        parse_duration(text)


def test_format_duration_round_trips_whole_units() -> None:
    for text in ("30s", "15m", "1h", "1h30m", "1d", "3d", "1d12h", "500ms"):
        assert format_duration(parse_duration(text)) == text


def test_nice_values_bracket_the_input() -> None:
    assert nice_floor(3517.0) == 1800.0 and nice_ceil(3517.0) == 3600.0
    assert nice_floor(86400.0) == 86400.0 == nice_ceil(86400.0)
    assert nice_floor(0.2) == 1.0  # never below the smallest
    assert nice_ceil(1e9) == 1e9  # past the largest: itself
