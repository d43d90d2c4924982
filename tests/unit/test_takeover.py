"""When a follower may revoke the leader's lease: consecutive refusals only."""

from __future__ import annotations

from coordinator.core.takeover import DeadLeader, Probe


def test_two_refusals_in_a_row_say_the_leader_is_dead() -> None:
    d = DeadLeader()
    assert not d.observe(7, Probe.REFUSED)
    assert d.observe(7, Probe.REFUSED)


def test_timeouts_and_accepted_connects_never_count_and_break_a_run() -> None:
    d = DeadLeader()
    for _ in range(100):
        assert not d.observe(7, Probe.NO_ANSWER)
    assert not d.observe(7, Probe.REFUSED)
    assert not d.observe(7, Probe.ACCEPTED)
    assert not d.observe(7, Probe.REFUSED)
    assert not d.observe(7, Probe.NO_ANSWER)
    assert not d.observe(7, Probe.REFUSED)


def test_refusals_count_per_term() -> None:
    d = DeadLeader()
    assert not d.observe(7, Probe.REFUSED)
    assert not d.observe(9, Probe.REFUSED)  # a new leader: its own count
    assert d.observe(9, Probe.REFUSED)
