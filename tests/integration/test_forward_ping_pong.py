"""A Switch forwarded while two replicas each name the other as leader is still decided.

A stopping leader hands the election key to its successor in one transaction. Until the
successor's own watch brings that write, the successor's view still names the stopping
replica, while the stopping replica's view already names the successor: a Switch sent
to the successor was forwarded to the stopping replica, which forwarded it back, and so
on, until the stopping replica's server closed and cancelled the copy it held; the
operator got ``CANCELLED (via leader c1) (via leader c2) ...`` (seen once in a gate run
of test_graceful_stop_timing). Real etcd, real gRPC; the successor's view is held back
for a while, as a slow watch would.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from coordinator.admin_service import AdminService
from coordinator.replica import Replica
from tests.harness import ReplicaSet, switch, wait_for

pytestmark = pytest.mark.cluster

GROUP = "cme-orders"
REVOKE_S = 1.0  # the stopping replica still serves while its revoke is on its way
HOLD_S = 2.5  # past that revoke and its server's grace (0.5 s)


def _hold_leader_changes(replica: Replica, captured: asyncio.Event) -> None:
    """From the first change of the election key on, ``replica``'s view takes its updates
    HOLD_S late (in order), as a watch that lags would deliver them; its campaign's own
    look at the key (once a second) waits as long, as a slow etcd connection would."""
    view: Any = replica.view
    election: Any = replica.election
    apply = view.apply
    acquire = election._acquire
    leader_key = replica.keys.leader
    held: list[tuple[set[str], int]] = []
    released = asyncio.Event()

    def release() -> None:
        for changed, revision in held:
            apply(replica.mirror.data, changed, revision)
        held.clear()
        view.apply = apply
        released.set()

    async def slow_acquire(lease: Any) -> Any:
        if captured.is_set():
            await released.wait()
        return await acquire(lease)

    election._acquire = slow_acquire

    def holding(data: Any, changed: set[str], revision: int) -> None:
        if not held and leader_key not in changed:
            apply(data, changed, revision)
            return
        if not held:
            captured.set()
            asyncio.get_running_loop().call_later(HOLD_S, release)
        held.append((set(changed), revision))

    view.apply = holding


async def test_a_switch_during_a_hand_over_the_successor_has_not_seen_is_decided(
    etcd_cluster, prefix, monkeypatch
) -> None:
    forwards: list[tuple[str, str]] = []  # (from, to)
    real_forward = AdminService._forward

    async def counting(self: Any, context: Any, leader: Any, *args: Any, **kwargs: Any) -> Any:
        forwards.append((self._id, leader.replica_id))
        return await real_forward(self, context, leader, *args, **kwargs)

    monkeypatch.setattr(AdminService, "_forward", counting)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the seeded decision")
        idx = rs.replicas.index(leader)
        j = 1 - idx
        successor = rs.replicas[j]
        assert successor is not None
        await wait_for(
            lambda: successor.cfg.replica_id in leader.view.candidates, 10, "the successor's candidacy"
        )
        await wait_for(
            lambda: (
                successor.view.leader is not None
                and successor.view.leader.replica_id == leader.cfg.replica_id
            ),
            10,
            "the successor's view to name the leader",
        )
        captured = asyncio.Event()
        _hold_leader_changes(successor, captured)
        real_revoke = leader.store.revoke

        async def slow_revoke(lease_id: int) -> Any:
            await asyncio.sleep(REVOKE_S)  # the scenario: a slow revoke, not a synchronisation
            return await real_revoke(lease_id)

        leader.store.revoke = slow_revoke  # type: ignore[method-assign]
        stop = asyncio.create_task(rs.stop(idx))
        async with asyncio.timeout(10):
            await captured.wait()
        await wait_for(
            lambda: (
                leader.view.leader is not None and leader.view.leader.replica_id == successor.cfg.replica_id
            ),
            5,
            "the stopping leader's view to name its successor",
        )
        assert successor.view.leader is not None
        assert successor.view.leader.replica_id == leader.cfg.replica_id  # the lag is in place
        sent = time.monotonic()
        resp = await switch(rs.address(j), GROUP, "backup")  # deadline 10 s
        took = time.monotonic() - sent
        assert list(resp.decision.paths)[0] == "backup"
        assert resp.decision.leader_id == successor.cfg.replica_id
        assert took < HOLD_S + 2.0, f"answered after {took:.1f} s"
        back = [f for f in forwards if f == (leader.cfg.replica_id, successor.cfg.replica_id)]
        assert not back, f"the stopping replica forwarded {len(back)} copies back to the one that sent them"
        async with asyncio.timeout(10):
            await stop
    finally:
        await rs.stop_all()
