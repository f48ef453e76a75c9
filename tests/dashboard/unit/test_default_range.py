"""The page's default UTC days (`archive.default_range`): up to today while the archive is
current, so the rows only Postgres holds yet (today's, just after midnight UTC or after quiet
hours) are in range; an old archive's own last 30 days otherwise."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from terragon_dashboard.archive import Choices, default_range

TODAY = date(2026, 12, 8)


def _choice(last_day: date | None) -> Choices:
    return Choices(
        first_day=None if last_day is None else last_day - timedelta(days=40),
        last_day=last_day,
        reasons=[],
        repos=[],
        users=[],
        providers=[],
    )


@pytest.mark.parametrize(
    ("last_day", "end"),
    [
        (TODAY, TODAY),
        (TODAY - timedelta(days=1), TODAY),  # just after midnight: today's rows are in Postgres
        (TODAY - timedelta(days=29), TODAY),  # quiet days: still the last 30
        (TODAY - timedelta(days=30), TODAY - timedelta(days=30)),  # an old archive: its own
        (None, TODAY),  # empty
    ],
)
def test_the_default_range_is_30_days_up_to_today_unless_the_archive_is_older(
    last_day: date | None, end: date
) -> None:
    assert default_range(_choice(last_day), TODAY) == (end - timedelta(days=29), end)
