"""The per-run budget's accounting alone (daemon_events.budgets): windows, Retry-After, an
envelope that never fits, the early refusal and the refund. No servers."""

from __future__ import annotations

from terragon_ingest.daemon_events.budgets import WINDOW_SECONDS, RunBudgets


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def budgets(clock: Clock) -> RunBudgets:
    return RunBudgets(max_messages=10, max_bytes=1000, clock=clock)


def test_a_run_is_refused_until_its_window_ends_then_gets_the_whole_budget_back() -> None:
    clock = Clock(100 * WINDOW_SECONDS + 15.2)
    b = budgets(clock)
    assert b.admit("r", 6, 100) is None
    assert b.admit("r", 5, 100) == 45  # 11 > 10: Retry-After is the window's end (ceil)
    assert b.admit("r", 4, 100) is None  # exactly 10 fits
    assert b.admit("r", 0, 1) == 45  # spent: even an empty envelope waits
    assert b.admit("other", 10, 1000) is None  # runs are apart
    clock.now += 45
    assert b.admit("r", 10, 1000) is None


def test_an_envelope_that_never_fits_is_admitted_once_and_spends_the_window() -> None:
    clock = Clock(7 * WINDOW_SECONDS + 59.9)
    b = budgets(clock)
    assert b.never_fits(11, 10) is not None
    assert b.never_fits(10, 1001) is not None
    assert b.never_fits(10, 1000) is None
    assert b.admit("r", 50, 10) is None  # to be quarantined invalid_envelope
    assert b.admit("r", 1, 10) == 1  # Retry-After never below 1
    assert b.admit("r", 50, 10) == 1  # a spent window refuses even that one


def test_early_refusal_knows_only_what_this_worker_saw() -> None:
    clock = Clock(3 * WINDOW_SECONDS)
    b = budgets(clock)
    assert b.refuse_early("r", 999) is None  # not seen this window: read the body, then decide
    assert b.admit("r", 1, 600) is None
    assert b.refuse_early("r", 300) is None
    assert b.refuse_early("r", 401) == WINDOW_SECONDS  # 600 + 401 bytes cannot fit
    assert b.refuse_early("r", 5000) is None  # never fits alone: read it, it is quarantined
    assert b.refuse_early("r", None) is None


def test_a_refund_gives_back_an_unstored_envelope() -> None:
    clock = Clock(9 * WINDOW_SECONDS + 1)
    b = budgets(clock)
    assert b.admit("r", 10, 10) is None
    b.refund("r", 10, 10)
    assert b.admit("r", 10, 10) is None
