"""Altair charts: a trend line per series with the alert threshold drawn as a dashed rule.

Time axes are UTC and 24-hour (Vega would otherwise draw the browser's local time on a 12-hour
clock without AM/PM); legends show every series name in full.
"""

from __future__ import annotations

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


def trend_chart(
    data: pd.DataFrame,
    *,
    title: str,
    threshold: float,
    x_title: str,
    y_title: str = "envelopes / min",
    bucket: str = "minute",
) -> alt.LayerChart | alt.FacetChart:
    """`data` has `bucket`, `series` and `per_minute`; the rule marks `threshold` per minute.
    Series names (repos, users: sandbox text) are drawn with control characters written out."""
    if len(data) and "series" in data.columns:
        data = data.assign(series=data["series"].map(plain))
    lines = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "bucket:T",
                title=x_title,
                scale=alt.Scale(type="utc"),  # a utc scale formats its labels in UTC
                axis=alt.Axis(format=AXIS_FORMATS[bucket], labelOverlap=True),
            ),
            y=alt.Y("per_minute:Q", title=y_title),
            color=alt.Color(
                "series:N",
                title=None,
                # labelLimit 0: no ellipsis, two series must never read the same
                # on the right: below the plot, Streamlit's fixed height squeezed the plot itself
                legend=alt.Legend(orient="right", labelLimit=0),
            ),
            tooltip=[
                alt.Tooltip(
                    "utcyearmonthdatehoursminutes(bucket):T", title="UTC", format=TOOLTIP_FORMAT
                ),
                alt.Tooltip("series:N"),
                alt.Tooltip("per_minute:Q", format=".0f"),
            ],
        )
        .properties(height=260)
    )
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold]}))
        .mark_rule(color="#d62728", strokeDash=[6, 4])
        .encode(y="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", title="alert threshold")])
    )
    # The page names the chart above it; a Vega title is clipped by Streamlit's frame, so the
    # name goes into the spec's description (what tests and screen readers find).
    return alt.layer(lines, rule, description=title)
