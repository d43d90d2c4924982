"""The leader's health table: newest report wins, and every report says how old it is."""

from __future__ import annotations

from coordinator.core.health import HealthTable, PathReport, State

K = ("g", "a")
UP, DOWN = PathReport(State.UP), PathReport(State.DOWN, "reset")


def test_a_report_carries_the_time_it_was_received() -> None:
    t = HealthTable()
    t.update("h1", "s", "r1", {K: UP}, full=True, received_ms=100.0)
    assert t.hosts["h1"].paths[K].received_ms == 100.0
    assert t.reports("g", "a", since_ms=100.0)
    # Rule 5: an older report still counts while its host's stream is open...
    assert t.reports("g", "a", since_ms=100.1)
    # ... and not once the host has left (its last report may be out of date).
    t.mark_gone("h1", 150.0)
    assert not t.reports("g", "a", since_ms=100.1)
    assert t.current_since(100.1) == {"h1": {}} and t.current_since(100.0)["h1"][K].state is State.UP


def test_gone_with_the_last_report_keeps_that_report() -> None:
    t = HealthTable()
    t.update("h1", "s", "r1", {K: UP}, full=True, received_ms=100.0)
    assert t.update("h1", "s", "r2", {K: DOWN}, full=True, received_ms=200.0, gone_ms=210.0)
    e = t.hosts["h1"]
    assert e.paths[K].state is State.DOWN and e.gone_since_ms == 210.0


def test_an_older_report_changes_nothing() -> None:
    """A host moved from r1 to r2: r1's late "gone" (with its older report) must not win."""
    t = HealthTable()
    t.update("h1", "s", "r2", {K: DOWN}, full=True, received_ms=200.0)
    assert not t.update("h1", "s", "r1", {K: UP}, full=True, received_ms=150.0, gone_ms=300.0)
    e = t.hosts["h1"]
    assert e.paths[K].state is State.DOWN and e.gone_since_ms is None and e.replica == "r2"


def test_a_newer_report_brings_a_gone_host_back() -> None:
    t = HealthTable()
    t.update("h1", "s", "r1", {K: UP}, full=True, received_ms=100.0, gone_ms=110.0)
    t.update("h1", "s", "r2", {K: UP}, full=True, received_ms=120.0)
    assert t.hosts["h1"].gone_since_ms is None
    assert t.forget_expired(10_000.0, 1000.0) == []


def test_gone_from_a_host_never_heard_from_keeps_it_unknown() -> None:
    t = HealthTable()
    assert not t.update("h1", "s", "r1", {}, full=False, received_ms=100.0, gone_ms=100.0)
    assert "h1" not in t.hosts


def test_gone_from_the_replica_that_holds_the_host_is_kept_whatever_the_timestamps() -> None:
    """A replica forwards a host's messages in order, so its "gone" carries the report it
    sent last. The leader dates each message by its age, measured on two clocks: the "gone"
    can date that same report a few µs earlier than its first delivery did, or much earlier
    than a new leader's collected state (dated when collected). Either way the stream ended:
    before, the "gone" was dropped as older, and the host's last report counted forever (rule 5)."""
    t = HealthTable()
    t.update("h1", "s", "r1", {K: UP}, full=True, received_ms=100.0005)
    assert t.update("h1", "s", "r1", {K: UP}, full=True, received_ms=100.0, gone_ms=150.0)
    assert t.hosts["h1"].gone_since_ms == 150.0
    assert not t.reports("g", "a", since_ms=100.1)
    # A new leader's collected state is dated when collected, after the report itself.
    t = HealthTable()
    t.update("h1", "s", "r1", {K: UP}, full=True, received_ms=500.0)
    assert t.update("h1", "s", "r1", {K: DOWN}, full=True, received_ms=100.0, gone_ms=600.0)
    e = t.hosts["h1"]
    assert e.gone_since_ms == 600.0 and e.paths[K].state is State.DOWN and e.updated_ms == 500.0
    assert t.forget_expired(1700.0, 1000.0) == ["h1"]
