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


def test_a_leader_elected_again_after_its_revocation_is_spared_until_its_port_accepts() -> None:
    """Its port refuses this follower (a firewall's REJECT), yet it campaigned and won: it is
    alive, so its refusals are not a death; revoking it again would ping-pong the term."""
    d = DeadLeader()
    assert not d.observe(7, Probe.REFUSED, "c1")
    assert d.observe(7, Probe.REFUSED, "c1")  # revoked: term 7 of c1 looked dead
    assert d.observe(7, Probe.REFUSED, "c1")  # the same term (the revoke failed): still dead...
    for _ in range(10):  # ...but c1 leads again (term 12): it is alive
        assert not d.observe(12, Probe.REFUSED, "c1")
    assert not d.observe(13, Probe.REFUSED, "c2")  # another replica is judged as usual
    assert d.observe(13, Probe.REFUSED, "c2")
    assert not d.observe(14, Probe.ACCEPTED, "c1")  # once c1's port accepted, it is judged again
    assert not d.observe(14, Probe.REFUSED, "c1")
    assert d.observe(14, Probe.REFUSED, "c1")
