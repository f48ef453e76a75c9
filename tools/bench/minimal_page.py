"""The floor under the dashboard's page figures (`dashboard_page.py`): a minimal Streamlit page
of the same kind (a title, three small Altair line charts with points, a table), served and timed
the same way in the same browser. What it costs is Streamlit's and Chromium's own work on this
machine at that moment; the dashboard's figure minus it is what the dashboard adds."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

st.title("minimal page")
frame = pd.DataFrame({"x": range(30), "y": range(30), "series": ["a", "b", "c"] * 10})
for _ in range(3):
    st.altair_chart(alt.Chart(frame).mark_line(point=True).encode(x="x", y="y", color="series"))
st.dataframe(frame)
