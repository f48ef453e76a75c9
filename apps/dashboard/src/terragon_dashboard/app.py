"""On-call dashboard: quarantine trends from the archive, the live hour from Postgres.

Run: `terragon dashboard` (or `streamlit run app.py -- --archive-dir=DIR`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import streamlit as st

from terragon_core import QUARANTINE_ALERT_PER_MINUTE, TREND_METRICS
from terragon_dashboard import archive, live
from terragon_dashboard.charts import trend_chart
from terragon_dashboard.settings import DashboardSettings
from terragon_dashboard.source import ArchiveUnreachable

TITLES = {
    "preview.strict_mismatch": "strict_mismatch (missing runId or wrong run, strict)",
    "preview.legacy_mode": "legacy_mode (v1 envelope applied without runId)",
    "preview.missing_end_sha": "missing_end_sha (terminal v2 without endSha)",
}
THRESHOLD_NOTE = (
    f"Dashed line: alert threshold, {QUARANTINE_ALERT_PER_MINUTE}/min per repo for 10 min."
)

settings = DashboardSettings.from_env()
st.set_page_config(page_title="terragon · quarantine", layout="wide")
st.title("Quarantine trends")

try:
    con = archive.open_archive(settings.archive)
except ArchiveUnreachable as exc:  # a wrong bucket, endpoint or key: say which setting to check
    st.error(str(exc))
    st.stop()
choice = archive.choices(con)
today = datetime.now(UTC).date()
first, last = archive.default_range(choice, today)

with st.sidebar:
    st.header("Filters")
    dimension = st.selectbox("Split by", ["repo", "user", "provider"], key="dimension")
    picked = st.date_input("UTC days", value=(first, last), key="range")
    reasons = st.multiselect("Reason", choice.reasons, key="reasons")
    repos = st.multiselect("Repo", choice.repos, key="repos")
    users = st.multiselect("User", choice.users, key="users")
    providers = st.multiselect("Provider", choice.providers, key="providers")
    st.caption(f"Archive: `{settings.archive}`")

days = list(picked) if isinstance(picked, tuple | list) else [picked]
start: date = days[0] if days else first
end: date = days[-1] if len(days) > 1 else start
filters = archive.Filters(
    start=start,
    end=end,
    reasons=tuple(reasons),
    repos=tuple(repos),
    users=tuple(users),
    providers=tuple(providers),
)


def _trends() -> None:
    bucket, _ = archive.bucket_for(filters)
    data = archive.trend(con, filters, dimension)  # type: ignore[arg-type]
    st.caption(
        f"{start} to {end} UTC, per {bucket}: the busiest minute of each {dimension} "
        f"(top {archive.TOP_SERIES}). {THRESHOLD_NOTE}"
    )
    for metric in TREND_METRICS:
        subset = pd.DataFrame(data.loc[data["metric"] == metric.value])
        if subset.empty:
            st.info(f"No {metric.value} in this range.")
            continue
        st.markdown(f"**{TITLES[metric.value]}**")
        st.altair_chart(
            trend_chart(
                subset,
                title=TITLES[metric.value],
                threshold=QUARANTINE_ALERT_PER_MINUTE,
                x_title=f"{bucket} (UTC)",
                y_title="busiest minute (envelopes / min)",
            ),
            width="stretch",
        )
    st.subheader(f"Top offenders by {dimension}")
    st.dataframe(archive.top_offenders(con, filters, dimension), hide_index=True)  # type: ignore[arg-type]


def _live() -> None:
    st.subheader("Live: the last hour (Postgres)")
    if not settings.DATABASE_URL:
        st.info("DATABASE_URL is not set: the live hour is off. Drill-down reads the archive.")
        rows = archive.recent_rows(con, filters)
    else:
        column = archive.DIMENSION_COLUMNS[dimension]  # type: ignore[index]
        try:
            minutes = live.live_minutes(settings.DATABASE_URL, column)
            rows = live.recent_rows(settings.DATABASE_URL)
        except Exception as exc:  # the archive view stays useful when Postgres is down
            st.warning(f"Postgres is not reachable ({exc}); showing archived rows instead.")
            rows = archive.recent_rows(con, filters)
        else:
            if minutes.empty:
                st.success("No strict_mismatch, legacy_mode or missing_end_sha in the last hour.")
            else:
                st.altair_chart(
                    trend_chart(
                        minutes,
                        title="last hour, per minute",
                        threshold=QUARANTINE_ALERT_PER_MINUTE,
                        x_title="minute (UTC)",
                    ),
                    width="stretch",
                )
    st.subheader("Recent quarantine rows")
    st.caption(
        "prefix = the first 2 KiB of the envelope; object key = the whole payload, if offloaded"
    )
    st.dataframe(rows, hide_index=True)


def _body() -> None:
    _trends()
    _live()
    st.caption(f"Updated {datetime.now(UTC):%H:%M:%S} UTC")


if settings.REFRESH_SECONDS > 0:
    st.fragment(_body, run_every=timedelta(seconds=settings.REFRESH_SECONDS))()
else:
    _body()
