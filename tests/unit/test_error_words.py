"""Errors during an etcd outage say what is wrong in words an operator can act on."""

from __future__ import annotations

from coordinator.etcd_reach import describe
from coordinator.freshness import FreshnessProbe
from coordinator.store.errors import StoreTimeout
from failover.model.convert import decision_pb
from failover.model.spec import DecisionRecord, Epoch


def test_quorum_is_named() -> None:
    assert describe(0, 3) == "etcd has no quorum (0 of 3 configured members answer)"
    assert describe(1, 3) == "etcd has no quorum (1 of 3 configured members answer)"
    assert describe(2, 3).startswith("etcd did not answer in time (2 of 3")


def test_a_replica_that_never_probed_counts_from_its_start_and_names_a_cause() -> None:
    probe = FreshnessProbe(None, None, interval_ms=250, max_lag_revisions=50, stale_after_ms=1500)  # type: ignore[arg-type]
    stale, reason = probe.failure(TimeoutError(), probe._started + 4.0, 0.5)
    assert stale
    assert reason == "no linearizable read since start (4.0s): no answer within 0.5s"
    probe.state.last_ok_monotonic = probe._started + 1.0
    stale, reason = probe.failure(StoreTimeout("current_revision: timed out"), probe._started + 3.0, 0.5)
    assert stale and reason == "no linearizable read for 2.0s: current_revision: timed out"


def test_a_decision_carries_the_fencing_token_it_was_written_under() -> None:
    rec = DecisionRecord(group="g", paths=["a"], era=1, leader_id="c1", reason="x", fencing_token=4242)
    assert decision_pb(rec, Epoch(1, 7)).fencing_token == 4242
    old = DecisionRecord.model_validate_json('{"group":"g","paths":[],"era":0,"leader_id":"c1","reason":"x"}')
    assert old.fencing_token == 0
