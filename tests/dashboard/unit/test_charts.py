"""One colour per series on every chart, never the threshold's; the threshold rule only when
asked for (the alert is per repo)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from terragon_dashboard.charts import PALETTE, THRESHOLD_COLOUR, series_colours, trend_chart

REPOS = [f"acme/repo-{i:02d}" for i in range(12)]


def _frame(series: list[str]) -> pd.DataFrame:
    at = datetime(2026, 12, 4, 12, tzinfo=UTC)
    return pd.DataFrame(
        {"bucket": [at] * len(series), "series": series, "per_minute": [1.0] * len(series)}
    )


def test_colours_are_stable_distinct_and_never_red() -> None:
    colours = series_colours(REPOS)
    assert len(set(colours.values())) == len(REPOS)  # distinct while the palette lasts
    assert THRESHOLD_COLOUR not in colours.values() and "#ff9896" not in colours.values()
    assert set(colours.values()) <= set(PALETTE)
    # the order names come in does not matter; the same set gives the same colours
    assert series_colours(reversed(REPOS)) == colours
    # more names than colours: still a colour each, still never red
    many = series_colours(f"r{i}" for i in range(3 * len(PALETTE)))
    assert THRESHOLD_COLOUR not in many.values()


def test_the_chart_uses_the_colours_given_and_draws_the_rule_only_when_asked() -> None:
    colours = series_colours(REPOS[:3])
    spec = trend_chart(
        _frame(REPOS[:2]), title="t", threshold=5, x_title="x", colours=colours
    ).to_dict()
    scale = spec["layer"][0]["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True)) == {
        r: colours[r] for r in REPOS[:2]
    }
    assert spec["layer"][1]["mark"]["type"] == "rule"
    assert spec["layer"][1]["mark"]["color"] == THRESHOLD_COLOUR
    bare = trend_chart(_frame(REPOS[:2]), title="t", threshold=None, x_title="x").to_dict()
    assert "layer" not in bare and bare["mark"]["type"] == "line"
