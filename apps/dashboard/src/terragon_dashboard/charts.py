"""Altair charts: a trend line per series with the alert threshold drawn as a dashed rule."""

from __future__ import annotations

import altair as alt
import pandas as pd


def trend_chart(
    data: pd.DataFrame,
    *,
    title: str,
    threshold: float,
    x_title: str,
    y_title: str = "envelopes / min",
) -> alt.LayerChart | alt.FacetChart:
    """`data` has `bucket`, `series` and `per_minute`; the rule marks `threshold` per minute."""
    lines = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", title=x_title),
            y=alt.Y("per_minute:Q", title=y_title),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=["bucket:T", "series:N", alt.Tooltip("per_minute:Q", format=".2f")],
        )
        .properties(height=260)
    )
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold]}))
        .mark_rule(color="#d62728", strokeDash=[6, 4])
        .encode(y="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", title="alert threshold")])
    )
    return alt.layer(lines, rule, title=title)
