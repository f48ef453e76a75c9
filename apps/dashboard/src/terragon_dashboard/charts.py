"""Altair charts: a trend line per series with the alert threshold drawn as a dashed rule.

Time axes are UTC and 24-hour (Vega would otherwise draw the browser's local time on a 12-hour
clock without AM/PM); legends show every series name in full. A series (a repo, user or
provider) has one colour on every chart of the page (`series_colours`), and no series is ever
drawn in the threshold's red.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

import altair as alt
import pandas as pd

from terragon_dashboard.text import plain

AXIS_FORMATS: Final = {
    "minute": "%H:%M",
    "hour": "%d %b %H:%M",
    "day": "%a %d %b",
}
"""d3 time formats per bucket (applied in UTC): 24-hour clock, no AM/PM."""
TOOLTIP_FORMAT: Final = "%Y-%m-%d %H:%M UTC"

THRESHOLD_COLOUR: Final = "#d62728"
"""The alert threshold's dashed rule; no series uses it (nor any other red)."""
PALETTE: Final = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5",
)  # fmt: skip
"""Tableau 20 without its two reds (#d62728, #ff9896): the threshold's colour is the threshold's."""


def _slot(name: str) -> int:
    """The palette slot a name prefers: the same on every page and in every process (`hash` of a
    str is salted per process; sha256 is not)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % len(PALETTE)


def series_colours(names: Iterable[str]) -> dict[str, str]:
    """One colour per series name: its preferred slot, or the next free one when another name of
    the same page took it (so the page's series differ while the palette lasts). Names are placed
    in a fixed order, so a name's colour depends only on the set of names, never on the chart."""
    taken: dict[int, str] = {}
    colours: dict[str, str] = {}
    for name in sorted(set(names), key=lambda n: (_slot(n), n)):
        slot = _slot(name)
        for step in range(len(PALETTE)):
            if (slot + step) % len(PALETTE) not in taken:
                slot = (slot + step) % len(PALETTE)
                break
        taken.setdefault(slot, name)
        colours[name] = PALETTE[slot]
    return colours


def _colour_scale(data: pd.DataFrame, colours: Mapping[str, str] | None) -> alt.Scale:
    names = sorted({plain(s) for s in data["series"]}) if len(data) else []
    given = {plain(k): v for k, v in (colours or {}).items()}
    fallback = series_colours(names)
    return alt.Scale(domain=names, range=[given.get(n, fallback[n]) for n in names])


def trend_chart(
    data: pd.DataFrame,
    *,
    title: str,
    threshold: float | None,
    x_title: str,
    y_title: str = "envelopes / min",
    bucket: str = "minute",
    colours: Mapping[str, str] | None = None,
    threshold_label: str = "alert threshold",
) -> alt.LayerChart | alt.FacetChart | alt.Chart:
    """`data` has `bucket`, `series` and `per_minute` (and maybe `metric`, drawn as the line's
    dash); the rule marks `threshold` per minute (None: no rule, e.g. when the alert is not per
    the series drawn). Series names (repos, users: sandbox text) are drawn with control
    characters written out; `colours` maps a series name to its colour on every chart."""
    if len(data) and "series" in data.columns:
        data = data.assign(series=data["series"].map(plain))
    by_metric = "metric" in data.columns and len(set(data["metric"])) > 1
    tooltip = [
        alt.Tooltip("utcyearmonthdatehoursminutes(bucket):T", title="UTC", format=TOOLTIP_FORMAT),
        alt.Tooltip("series:N"),
        *([alt.Tooltip("metric:N")] if by_metric else []),
        alt.Tooltip("per_minute:Q", format=".0f"),
    ]
    encoding: dict[str, object] = {
        "x": alt.X(
            "bucket:T",
            title=x_title,
            scale=alt.Scale(type="utc"),  # a utc scale formats its labels in UTC
            axis=alt.Axis(format=AXIS_FORMATS[bucket], labelOverlap=True),
        ),
        "y": alt.Y("per_minute:Q", title=y_title),
        "color": alt.Color(
            "series:N",
            title=None,
            scale=_colour_scale(data, colours),
            # labelLimit 0: no ellipsis, two series must never read the same
            # on the right: below the plot, Streamlit's fixed height squeezed the plot itself
            legend=alt.Legend(orient="right", labelLimit=0),
        ),
        "tooltip": tooltip,
    }
    if by_metric:  # the live hour: one colour per series, one dash per metric
        encoding["strokeDash"] = alt.StrokeDash("metric:N", title=None)
        encoding["detail"] = "metric:N"
    lines = alt.Chart(data).mark_line(point=True).encode(**encoding).properties(height=260)  # type: ignore[arg-type]
    # The page names the chart above it; a Vega title is clipped by Streamlit's frame, so the
    # name goes into the spec's description (what tests and screen readers find).
    if threshold is None:
        return lines.properties(description=title)
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold], "alert": [threshold_label]}))
        .mark_rule(color=THRESHOLD_COLOUR, strokeDash=[6, 4])
        .encode(
            y="threshold:Q",
            tooltip=[
                alt.Tooltip("alert:N", title="alert"),
                alt.Tooltip("threshold:Q", title="threshold (envelopes / min)"),
            ],
        )
    )
    return alt.layer(lines, rule, description=title)
