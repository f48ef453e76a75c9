"""On-call dashboard: quarantine trends from the archive, the live hour from Postgres.

Run: `terragon dashboard` (or `streamlit run app.py -- --archive-dir=DIR`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast

import pandas as pd
import streamlit as st

from terragon_core import (
    ALERT_FOR_SECONDS,
    ALERT_RATE_WINDOW_SECONDS,
    DASHBOARD_SESSION_COOKIE,
    QUARANTINE_ALERT,
    QUARANTINE_ALERT_PER_MINUTE,
    QUARANTINE_RETENTION_DAYS,
    TREND_METRICS,
    SecurityReason,
)
from terragon_dashboard import archive, auth, cache, commands, live, log, text
from terragon_dashboard.charts import series_colours, trend_chart
from terragon_dashboard.settings import DashboardSettings
from terragon_dashboard.source import ArchiveUnreachable

TITLES = {
    "preview.strict_mismatch": "strict_mismatch (missing runId or wrong run, strict)",
    "preview.legacy_mode": "legacy_mode (v1 envelope applied without runId)",
    "preview.missing_end_sha": "missing_end_sha (terminal v2 without endSha)",
}
ALERT_RULE = (
    f"`{QUARANTINE_ALERT}` pages when one repo's quarantined envelopes (every reason together) "
    f"average more than {QUARANTINE_ALERT_PER_MINUTE}/min over {ALERT_RATE_WINDOW_SECONDS // 60} "
    f"min, for {ALERT_FOR_SECONDS // 60} min"
)
# the threshold rule's tooltip (a comment: a bare string here would be drawn by Streamlit's magic)
THRESHOLD_LABEL = (
    f"{QUARANTINE_ALERT}: > {QUARANTINE_ALERT_PER_MINUTE}/min per repo "
    f"(every reason) for {ALERT_FOR_SECONDS // 60} min"
)
PAYLOAD_COLUMNS = ("payload_prefix_2k",)
ROW_LIMIT = 200

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
installation = commands.Installation(
    archive=settings.archive, data_dir=settings.DATA_DIR, database_url=settings.DATABASE_URL
)


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _this_minute() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _column() -> str:
    return archive.DIMENSION_COLUMNS[dimension]  # type: ignore[index]


def _threshold() -> float | None:
    """The alert is per repo: its threshold belongs on a chart split by repo only."""
    return QUARANTINE_ALERT_PER_MINUTE if dimension == "repo" else None


def _threshold_note() -> str:
    if dimension == "repo":
        return (
            f"Dashed red line: {QUARANTINE_ALERT_PER_MINUTE}/min, the threshold of the alert: "
            f"{ALERT_RULE}. A line here is one metric of a repo; the alert adds up its reasons."
        )
    return (
        f"No threshold line: the alert is per repo ({ALERT_RULE}), and a {dimension}'s line adds "
        "up its repos, so it pages no one by itself. Split by repo to compare with the threshold."
    )


def _hidden(unfiltered: int) -> str:
    """The end of an empty state: whether the filters hid anything."""
    if not filters.narrowed:
        return ": nothing was quarantined."
    return f" matching the filters ({unfiltered} without them)."


@dataclass(frozen=True, slots=True)
class LiveHour:
    """The last hour from Postgres: its minutes, or why there are none."""

    minutes: pd.DataFrame | None
    problem: str | None = None
    unfiltered: int = 0


def _live_hour() -> LiveHour:
    if not settings.DATABASE_URL:
        return LiveHour(None, "DATABASE_URL is not set: the live hour is off.")
    try:
        minutes = live.live_minutes(settings.DATABASE_URL, _column(), filters)
        unfiltered = 0
        if minutes.empty and filters.narrowed:
            everything = live.live_minutes(settings.DATABASE_URL, _column())
            unfiltered = int(everything["per_minute"].to_numpy().sum())
    except Exception as exc:  # the archive view stays useful when Postgres is down
        return LiveHour(None, f"Postgres is not reachable ({exc}); the rows below are archived.")
    return LiveHour(minutes, unfiltered=unfiltered)


def _trend_data() -> tuple[str, pd.DataFrame]:
    bucket, _ = archive.bucket_for(filters)
    data = cache.query("trend", con, filters, dimension)
    range_end = min(_day_start(end + timedelta(days=1)), _this_minute() + timedelta(minutes=1))
    return bucket, archive.with_zeros(data, bucket, _day_start(start), range_end)


def _trends(bucket: str, data: pd.DataFrame, colours: dict[str, str]) -> None:
    st.caption(
        f"{filters.describe()} UTC, per {bucket}: the busiest minute of each {dimension} "
        f"(top {archive.TOP_SERIES}), of the rows that pass the filters. {_threshold_note()}"
    )
    totals: dict[str, int] | None = None
    for metric in TREND_METRICS:
        subset = pd.DataFrame(data.loc[data["metric"] == metric.value]) if len(data) else data
        if subset.empty:
            if totals is None:  # one query for the three empty states
                totals = cast(
                    "dict[str, int]", cache.query("metric_totals", con, filters.unfiltered())
                )
            hidden = _hidden(totals.get(metric.value, 0))
            st.info(f"No {metric.value} in {filters.describe()}{hidden}")
            continue
        st.markdown(f"**{TITLES[metric.value]}**")
        st.altair_chart(
            trend_chart(
                subset,
                title=TITLES[metric.value],
                threshold=_threshold(),
                threshold_label=THRESHOLD_LABEL,
                x_title=f"{bucket} (UTC, 24-hour)",
                y_title="busiest minute (envelopes / min)",
                bucket=bucket,
                colours=colours,
            ),
            width="stretch",
        )


def _rank_label(rank: str) -> str:
    if rank == archive.QUARANTINED:
        return "quarantined (the Reason filter; every reason when none)"
    return rank


def _offenders() -> str | None:
    """The offenders table; returns the offender whose row was clicked (None: all rows)."""
    st.subheader(f"Top offenders by {dimension}")
    rank = st.selectbox("Rank by", archive.RANKINGS, key="rank_by", format_func=_rank_label)
    table = cache.query("top_offenders", con, filters, dimension, rank_by=rank)
    st.caption(
        f"{filters.describe()} UTC, the rows that pass the filters, ranked by {rank}. "
        f"`{archive.QUARANTINED}` counts them all; the metric columns split them."
    )
    if table.empty:
        unfiltered = cache.query("quarantined_count", con, filters.unfiltered())
        st.info(f"No quarantine rows in {filters.describe()}{_hidden(unfiltered)}")
    event = st.dataframe(
        text.plain_frame(table),  # sandbox text as text; the real value is looked up below
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=f"offenders-{dimension}",
    )
    chosen = list(event.selection.rows) if event is not None else []
    if table.empty or not chosen or chosen[0] >= len(table):
        return None
    return str(table.iloc[chosen[0]][dimension])


def _live(hour: LiveHour, colours: dict[str, str]) -> None:
    st.subheader("Live: the last hour (Postgres)")
    st.caption(
        "Always the last 60 minutes, whatever the UTC days above; the Reason and "
        f"Repo/User/Provider filters apply. Solid and dashed lines: the metrics. {_threshold_note()}"
    )
    if hour.minutes is None:
        if settings.DATABASE_URL is None:
            st.info(hour.problem)
        else:
            st.warning(hour.problem)
        return
    if hour.minutes.empty:
        if filters.narrowed:
            st.info(
                "No strict_mismatch, legacy_mode or missing_end_sha in the last hour matching "
                f"the filters ({hour.unfiltered} without them)."
            )
        else:
            st.success("No strict_mismatch, legacy_mode or missing_end_sha in the last hour.")
        return
    now = _this_minute()
    minutes = archive.with_zeros(hour.minutes, "minute", now - timedelta(minutes=59), now)
    st.altair_chart(
        trend_chart(
            minutes,
            title="last hour, per minute",
            threshold=_threshold(),
            threshold_label=THRESHOLD_LABEL,
            x_title="minute (UTC, 24-hour)",
            colours=colours,
        ),
        width="stretch",
    )


def _live_window() -> tuple[datetime, datetime] | None:
    """The part of the range Postgres answers for: today (the archive holds closed minutes
    only, a few minutes behind), when the range reaches it; earlier days come from the archive."""
    if end < today:
        return None
    return max(_day_start(start), _day_start(today)), _day_start(end + timedelta(days=1))


def _rows_of(offender: str | None) -> pd.DataFrame:
    """The newest quarantine rows in range that pass the filters (of `offender`, if clicked):
    today's from Postgres, earlier days' from the archive; `stored` says where each is."""
    archived = cache.recent_rows(
        con,
        filters,
        ROW_LIMIT,
        offender=(dimension, offender) if offender is not None else None,
    )
    archived["stored"] = "archive"
    window = _live_window()
    if settings.DATABASE_URL is None or window is None:
        return archived
    try:
        recent = live.recent_rows(
            settings.DATABASE_URL,
            since=window[0],
            until=window[1],
            filters=filters,
            offender=(_column(), offender) if offender is not None else None,
            limit=ROW_LIMIT,
        )
    except Exception:  # Postgres down is reported by the live hour; the archive still answers
        return archived
    if recent.empty:
        return archived
    ids = set(archived["id"].dropna())
    recent["stored"] = ["postgres + archive" if i in ids else "postgres" for i in recent["id"]]
    # the same row may be in both (rolled up, still in Postgres): Postgres's copy is shown
    archived = archived.loc[~archived["id"].isin(list(recent["id"])) | archived["id"].isna()]
    rows = pd.concat([recent, archived], ignore_index=True)
    rows["created_at"] = pd.to_datetime(rows["created_at"], utc=True)
    return rows.sort_values(by="created_at", ascending=False).head(ROW_LIMIT).reset_index(drop=True)


def _created_at(row: pd.Series) -> datetime:
    """The row's time in UTC (both sources give an aware timestamp)."""
    return cast("pd.Timestamp", row["created_at"]).tz_convert(UTC).to_pydatetime()


def _in_postgres(row: pd.Series) -> bool | None:
    """Whether PostgreSQL still holds the row (None: it cannot be asked)."""
    if "postgres" in str(row["stored"]):
        return True
    if not settings.DATABASE_URL:
        return None
    try:
        return str(row["id"]) in live.present_ids(settings.DATABASE_URL, [str(row["id"])])
    except Exception:
        return None


def _commands(row: pd.Series) -> None:
    """The exact CLI lines for one row, and what each needs."""
    quarantine_id = str(row["id"])
    day = _created_at(row).date()
    in_postgres = _in_postgres(row)
    lines = []
    if "archive" in str(row["stored"]):
        lines.append(commands.archive_line(installation, quarantine_id, day))
    if in_postgres is not False:
        lines += commands.postgres_lines(installation, quarantine_id)
    st.code("\n".join(lines), language="bash")
    notes = ["Run them in the checkout."]
    if "archive" in str(row["stored"]):
        notes.append("`archive sql` prints the archived row (its first 2 KiB as the prefix).")
    if in_postgres:
        notes.append(
            "`show` prints the row and its replay state, `--payload` the whole envelope, "
            "`replay` re-drives it through the same decision."
        )
    elif in_postgres is None:
        notes.append(
            f"`show` and `replay` work while the row is in PostgreSQL ({QUARANTINE_RETENTION_DAYS}"
            " days); it cannot be asked now."
        )
    else:
        notes.append(
            "PostgreSQL no longer holds this row (past retention, or history written straight "
            "into the archive): `quarantine show` and `replay` cannot find it."
        )
    _, missing = installation.database_flags()
    if missing and in_postgres is not False:
        notes.append(f"For `show` and `replay`: {missing}.")
    st.caption(" ".join(notes))


def _rows_caption(offender: str | None) -> str:
    of = f" of {dimension} {text.md(offender)}" if offender is not None else ""
    window = _live_window()
    where = (
        "today's from PostgreSQL, earlier days' from the archive"
        if window is not None and settings.DATABASE_URL
        else "from the archive"
    )
    return (
        f"{filters.describe()} UTC{of}, the rows that pass the filters: the newest {ROW_LIMIT}, "
        f"{where} (`stored`). Click an offender above for its rows only; click a row here "
        "for its commands."
    )


def _drill_down(offender: str | None) -> None:
    label = f" of {dimension} {text.md(offender)}" if offender is not None else ""
    st.subheader(f"Recent quarantine rows{label}")
    rows = _rows_of(offender)
    st.caption(_rows_caption(offender))
    if show_payloads:
        st.caption(
            "prefix = the first 2 KiB of the envelope; object key = the whole payload, if offloaded."
        )
    else:
        rows = rows.drop(columns=[c for c in PAYLOAD_COLUMNS if c in rows.columns])
        st.caption(
            "Payload prefixes are hidden: sign in (TERRAGON_DASHBOARD_AUTH) or open the "
            "dashboard on this machine's loopback address."
        )
    if rows.empty:
        unfiltered = cache.query("quarantined_count", con, filters.unfiltered())
        hidden = (
            f" matching the filters ({unfiltered} without them)."
            if filters.narrowed or offender is not None
            else ": nothing was quarantined."
        )
        st.info(f"No quarantine rows in {filters.describe()}{label}{hidden}")
    event = st.dataframe(
        text.plain_frame(rows),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="rows",
    )
    if rows.empty:
        return
    chosen = list(event.selection.rows) if event is not None else []
    row = rows.iloc[chosen[0] if chosen and chosen[0] < len(rows) else 0]
    if pd.isna(row["id"]):
        return
    st.markdown(
        f"**Row {text.md(row['id'])}** ({text.md(row['reason'])}, "
        f"{text.md(row['repo_full_name'])}, "
        f"{_created_at(row):%Y-%m-%d %H:%M:%S} UTC): "
        "inspect it, then re-drive it through the same decision"
    )
    _commands(row)


def _body() -> None:
    if settings.AUTH is not None and not auth.SESSIONS.check(_session_cookie()).ok:
        st.rerun()  # expired or signed out (another tab) since the page ran: `_sign_in` says so
    bucket, trends = _trend_data()
    hour = _live_hour()
    shown = [trends] + ([hour.minutes] if hour.minutes is not None else [])
    # one colour per series on every chart of the page: the trends' and the live hour's
    colours = series_colours(s for frame in shown if len(frame) for s in frame["series"])
    _trends(bucket, trends, colours)
    offender = _offenders()
    _live(hour, colours)
    _drill_down(offender)
    st.caption(f"Updated {datetime.now(UTC):%H:%M:%S} UTC")


if settings.REFRESH_SECONDS > 0:
    st.fragment(_body, run_every=timedelta(seconds=settings.REFRESH_SECONDS))()
else:
    _body()
