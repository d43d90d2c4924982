"""Pure liveness helpers: silence verdicts with the loop-lag guard, backoff bounds, RTT percentiles."""

from __future__ import annotations

import random

import pytest
from failover_sidecar.liveness import Backoff, Heartbeats, RttWindow, SilenceCheck, SilenceGuard, Verdict
from hypothesis import given
from hypothesis import strategies as st

IV = 0.05  # interval (s)
LIMIT = 3 * IV


class Line:
    """A stand-in session for the guard: silent or not, or not watching (None)."""

    def __init__(self, silent: bool | None) -> None:
        self.silent = silent

    def silent_at(self, now: float) -> bool | None:
        return self.silent


def test_silent_at_once_when_other_lines_are_alive_and_loop_is_fine() -> None:
    guard = SilenceGuard()
    guard.register(Line(False))
    check = SilenceCheck(IV, LIMIT, guard)
    assert check.verdict(1.0, 0.9) is Verdict.ALIVE
    assert check.verdict(1.0, 1.0 - LIMIT) is Verdict.SILENT


def test_lag_since_last_sign_of_life_grants_one_probe() -> None:
    guard = SilenceGuard()
    guard.register(Line(False))
    check = SilenceCheck(IV, LIMIT, guard)
    guard.note_lag(1.3)  # the loop was blocked; this check runs late
    assert check.verdict(1.3, 1.0) is Verdict.PROBE
    assert check.verdict(1.32, 1.0) is Verdict.WAIT
    assert check.verdict(1.35, 1.0) is Verdict.SILENT  # the probe went unanswered, no new lag
    assert guard.probes == 1


def test_probe_answered_clears_the_suspicion() -> None:
    guard = SilenceGuard()
    check = SilenceCheck(IV, LIMIT, guard)
    guard.note_lag(1.3)
    assert check.verdict(1.3, 1.0) is Verdict.PROBE
    check.alive()  # the echo came back
    assert check.verdict(1.35, 1.31) is Verdict.ALIVE


def test_lag_before_the_last_sign_of_life_does_not_excuse_silence() -> None:
    guard = SilenceGuard()
    guard.register(Line(False))
    guard.note_lag(0.5)
    assert SilenceCheck(IV, LIMIT, guard).verdict(1.0, 0.8) is Verdict.SILENT


def test_every_line_silent_at_once_probes_first() -> None:
    guard = SilenceGuard()
    guard.register(Line(True))
    guard.register(Line(None))  # not watching: does not count
    check = SilenceCheck(IV, LIMIT, guard)
    assert check.verdict(1.0, 0.8) is Verdict.PROBE
    assert check.verdict(1.05, 0.8) is Verdict.SILENT  # still silent after the probe: a real failure


def test_persistent_lag_renews_probes_a_bounded_number_of_times() -> None:
    guard = SilenceGuard()
    check = SilenceCheck(IV, LIMIT, guard, max_probes=3)
    now = 1.0
    verdicts = []
    for _ in range(6):
        guard.note_lag(now)
        verdicts.append(check.verdict(now, 0.0))
        now += IV + 0.001
    assert verdicts[:3] == [Verdict.PROBE] * 3 and Verdict.SILENT in verdicts[3:]


def test_guard_membership() -> None:
    guard = SilenceGuard()
    a = Line(True)
    guard.register(a)
    guard.register(a)
    guard.unregister(a)
    guard.unregister(a)
    assert guard.all_silent(0.0)  # nobody else watching: the caller alone is "everyone"
    assert not guard.lagged_since(0.0)


@given(lo=st.integers(1, 200), hi=st.integers(1, 5000), seed=st.integers(0, 2**32))
def test_backoff_is_bounded_exponential_with_jitter(lo: int, hi: int, seed: int) -> None:
    hi = max(lo, hi)
    b = Backoff(lo, hi, random.Random(seed))
    for n in range(80):  # far past the cap: no overflow
        step = min(hi, lo * 2**n)
        assert step / 2 <= b.next_ms() <= step
    b.reset()
    assert b.next_ms() <= lo


def test_rtt_window_percentiles_and_heartbeats() -> None:
    w = RttWindow(size=100)
    assert w.percentile(50) is None
    for v in range(1, 201):  # only the last 100 stay: 101..200
        w.add(float(v))
    assert (w.percentile(50), w.percentile(99), w.percentile(100)) == (150.0, 199.0, 200.0)
    hb = Heartbeats(max_in_flight=2)
    first = hb.sent(1.0)
    second = hb.sent(1.1)
    hb.sent(1.2)  # evicts the oldest in flight
    assert hb.echoed(first, 1.3) is None and hb.echoed("junk", 1.3) is None
    assert hb.echoed(second, 1.3) == pytest.approx(200_000.0) and len(hb.rtt) == 1 and second > first
