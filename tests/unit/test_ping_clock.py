"""The relay clients' liveness clock: when to ping, and when silence means the sidecar is gone."""

from __future__ import annotations

from failover_client.liveness import PingClock


def test_quiet_for_the_interval_pings_once_then_waits_for_the_answer() -> None:
    c = PingClock(1.0, 1.0, heard=10.0)
    assert c.check(10.5) == ("wait", 11.0)
    assert c.check(11.0) == ("ping", 12.0)
    assert c.seq == 1
    assert c.check(11.5) == ("wait", 12.0)  # the ping is out: no second one


def test_anything_heard_after_the_ping_answers_it() -> None:
    c = PingClock(1.0, 1.0, heard=10.0)
    c.check(11.0)
    c.heard = 11.2
    assert c.check(12.0) == ("wait", 12.2)
    assert c.ping_sent == 0.0


def test_no_answer_within_the_bound_is_dead_whether_or_not_anything_is_still_owed() -> None:
    """The verdict needs no write to complete: a ping still queued behind a full buffer counts
    from when it was queued."""
    c = PingClock(1.0, 1.0, heard=10.0)
    c.check(11.0)
    assert c.check(12.0) == ("dead", 12.0)
    c2 = PingClock(1.0, 1.0, heard=10.0)
    c2.check(11.0)
    assert c2.check(12.0, owed=False) == ("dead", 12.0)


def test_nothing_owed_nothing_pinged() -> None:
    c = PingClock(1.0, 1.0, heard=0.0)
    assert c.check(50.0, owed=False) == ("wait", 51.0)
    assert c.seq == 0 and c.ping_sent == 0.0
    assert c.check(51.0, owed=True) == ("ping", 52.0)  # owed after a long silence: at once
