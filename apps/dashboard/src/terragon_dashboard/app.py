"""On-call dashboard: quarantine trends from the archive, the live hour from Postgres.

Run: `terragon dashboard` (or `streamlit run app.py -- --archive-dir=DIR`).
"""

from __future__ import annotations

import contextlib
import shlex
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from terragon_core import (
    DASHBOARD_SESSION_COOKIE,
    QUARANTINE_ALERT_PER_MINUTE,
    TREND_METRICS,
    SecurityReason,
)
from terragon_dashboard import archive, auth, cache, live, log, text
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
PAYLOAD_COLUMNS = ("payload_prefix_2k",)

settings = DashboardSettings.from_env()
st.set_page_config(page_title="terragon · quarantine", layout="wide")


def _session_cookie() -> str | None:
    """The browser's session cookie, as it came with this session's websocket."""
    return st.context.cookies.get(DASHBOARD_SESSION_COOKIE)


def _sign_in() -> bool:
    """True when the session may see the page; otherwise says why not (the sign-in itself is
    the server's form at `edge.SIGN_IN_PATH`, which sets the HttpOnly cookie this checks)."""
    problem = auth.config_problem(settings.AUTH, settings.PASSWORD)
    if problem:
        st.error(f"The dashboard's sign-in is misconfigured: {problem}.")
        return False
    if settings.AUTH is None:
        return True
    # The edge lets no request without a valid cookie through; checked again on every run, so
    # a session that expired or was signed out in another tab ends here too.
    check = auth.SESSIONS.check(_session_cookie())
    if check.ok:
        return True
    st.title("Sign in")
    ended = {
        SecurityReason.EXPIRED: "Your sign-in has expired.",
        SecurityReason.REVOKED: "You have signed out.",
    }
    why = ended.get(check.reason, "") if check.reason else ""
    st.info(f"{why or 'You are not signed in.'} Reload this page to sign in.")
    return False


if not _sign_in():
    st.stop()

show_payloads = auth.may_read_payloads(
    mode=settings.AUTH,
    signed_in=settings.AUTH is not None,  # past `_sign_in`: signed in, when sign-in is on
    server_address=str(st.get_option("server.address") or ""),
)

st.title("Quarantine trends")

try:
    con = cache.snapshot(settings.archive)  # kept per process; reopened when files change
except ArchiveUnreachable as exc:  # a wrong bucket, endpoint or key: say which setting to check
    st.error(str(exc))
    st.stop()
choice = cache.query("choices", con)
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
    if settings.AUTH and st.button("Sign out"):
        auth.SESSIONS.revoke(_session_cookie())  # every tab with this cookie, and a reload
        log.event("info", "dashboard_signed_out")
        st.rerun()

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


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _this_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _trends() -> None:
    bucket, _ = archive.bucket_for(filters)
    data = cache.query("trend", con, filters, dimension)
    range_end = min(_day_start(end + timedelta(days=1)), _this_minute() + timedelta(minutes=1))
    data = archive.with_zeros(data, bucket, _day_start(start), range_end)
    st.caption(
        f"{start} to {end} UTC, per {bucket}: the busiest minute of each {dimension} "
        f"(top {archive.TOP_SERIES}). {THRESHOLD_NOTE}"
    )
    for metric in TREND_METRICS:
        subset = pd.DataFrame(data.loc[data["metric"] == metric.value]) if len(data) else data
        if subset.empty:
            st.info(f"No {metric.value} in this range.")
            continue
        st.markdown(f"**{TITLES[metric.value]}**")
        st.altair_chart(
            trend_chart(
                subset,
                title=TITLES[metric.value],
                threshold=QUARANTINE_ALERT_PER_MINUTE,
                x_title=f"{bucket} (UTC, 24-hour)",
                y_title="busiest minute (envelopes / min)",
                bucket=bucket,
            ),
            width="stretch",
        )


def _offenders() -> str | None:
    """The offenders table; returns the offender whose row was clicked (None: all rows)."""
    st.subheader(f"Top offenders by {dimension}")
    table = cache.query("top_offenders", con, filters, dimension)
    event = st.dataframe(
        text.plain_frame(table),  # sandbox text as text; the real value is looked up below
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"offenders-{dimension}",
    )
    picked = list(event.selection.rows) if event is not None else []
    if table.empty or not picked or picked[0] >= len(table):
        return None
    return str(table.iloc[picked[0]][dimension])


def _live() -> None:
    st.subheader("Live: the last hour (Postgres)")
    if not settings.DATABASE_URL:
        st.info("DATABASE_URL is not set: the live hour is off. Drill-down reads the archive.")
        return
    column = archive.DIMENSION_COLUMNS[dimension]  # type: ignore[index]
    try:
        minutes = live.live_minutes(settings.DATABASE_URL, column)
    except Exception as exc:  # the archive view stays useful when Postgres is down
        st.warning(f"Postgres is not reachable ({exc}); the drill-down shows archived rows.")
        return
    if minutes.empty:
        st.success("No strict_mismatch, legacy_mode or missing_end_sha in the last hour.")
        return
    now = _this_minute()
    minutes = archive.with_zeros(minutes, "minute", now - timedelta(minutes=59), now)
    st.altair_chart(
        trend_chart(
            minutes,
            title="last hour, per minute",
            threshold=QUARANTINE_ALERT_PER_MINUTE,
            x_title="minute (UTC, 24-hour)",
        ),
        width="stretch",
    )


def _rows_of(offender: str | None) -> pd.DataFrame:
    """Recent quarantine rows of `offender`: the live hour from Postgres, then the archive."""
    picked = (dimension, offender) if offender is not None else None
    frames = []
    if settings.DATABASE_URL:
        column = archive.DIMENSION_COLUMNS[dimension]  # type: ignore[index]
        # Postgres down is reported by `_live`; the archive still answers.
        with contextlib.suppress(Exception):
            frames.append(
                live.recent_rows(
                    settings.DATABASE_URL,
                    offender=(column, offender) if offender is not None else None,
                )
            )
    frames.append(cache.recent_rows(con, filters, offender=picked))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return cache.recent_rows(con, filters, offender=picked)
    rows = pd.concat(frames, ignore_index=True)
    rows["created_at"] = pd.to_datetime(rows["created_at"], utc=True)
    # the same row may be in both (rolled up, still in Postgres); rows without an id are kept
    rows = pd.DataFrame(rows.loc[~rows["id"].duplicated() | rows["id"].isna()])
    return rows.sort_values(by="created_at", ascending=False).head(200).reset_index(drop=True)


def _commands(quarantine_id: str) -> str:
    """The exact CLI lines for one row (the database flag only when its URL holds no password)."""
    url = settings.DATABASE_URL
    flag = f" --database-url {shlex.quote(url)}" if url and not urlsplit(url).password else ""
    qid = shlex.quote(quarantine_id)
    return (
        f"terragon quarantine show{flag} {qid}\n"
        f"terragon quarantine show{flag} {qid} --payload\n"
        f"terragon quarantine replay{flag} {qid}"
    )


def _drill_down(offender: str | None) -> None:
    label = f" of {dimension} {text.md(offender)}" if offender is not None else ""
    st.subheader(f"Recent quarantine rows{label}")
    rows = _rows_of(offender)
    if show_payloads:
        st.caption(
            "Click an offender's row above for its rows only; click a row here for its commands. "
            "prefix = the first 2 KiB of the envelope; object key = the whole payload, if offloaded."
        )
    else:
        rows = rows.drop(columns=[c for c in PAYLOAD_COLUMNS if c in rows.columns])
        st.caption(
            "Payload prefixes are hidden: sign in (TERRAGON_DASHBOARD_AUTH) or open the "
            "dashboard on this machine's loopback address."
        )
    event = st.dataframe(
        text.plain_frame(rows),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="rows",
    )
    if rows.empty:
        return
    picked = list(event.selection.rows) if event is not None else []
    row = rows.iloc[picked[0] if picked and picked[0] < len(rows) else 0]
    if pd.isna(row["id"]):
        return
    st.markdown(
        f"**Row {text.md(row['id'])}** ({text.md(row['reason'])}, "
        f"{text.md(row['repo_full_name'])}, "
        f"{row['created_at']:%Y-%m-%d %H:%M:%S} UTC): "
        "inspect it, then re-drive it through the same decision"
    )
    st.code(_commands(str(row["id"])), language="bash")
    st.caption(
        "Works while the row is in Postgres (30 days); `--payload` prints the whole envelope."
    )


def _body() -> None:
    if settings.AUTH is not None and not auth.SESSIONS.check(_session_cookie()).ok:
        st.rerun()  # expired or signed out (another tab) since the page ran: `_sign_in` says so
    _trends()
    offender = _offenders()
    _live()
    _drill_down(offender)
    st.caption(f"Updated {datetime.now(UTC):%H:%M:%S} UTC")


if settings.REFRESH_SECONDS > 0:
    st.fragment(_body, run_every=timedelta(seconds=settings.REFRESH_SECONDS))()
else:
    _body()
