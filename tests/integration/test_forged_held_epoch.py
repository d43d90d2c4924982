"""A hello's held epochs are evidence of an etcd restore only when a replica signed them.

Found from outside: one Sync stream whose hello claimed a group at an epoch beyond
etcd's (any client with a certificate the coordinators accept, anyone without mTLS)
put the whole cluster in "etcd restore detected: no decisions until failover era bump".
A replica now pushes every decision with a proof (an HMAC of group and epoch under a key
kept in etcd); a held epoch without a valid proof is logged and ignored. A real restore
is still detected from the epochs real sidecars hold: tests/integration/test_restore_era.py.
"""

from __future__ import annotations

import pytest

from tests.harness import ReplicaSet, switch, wait_for
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster
G = "cme-orders"


@pytest.mark.parametrize(
    ("epoch", "proof"),
    [((0, 10**9), b""), ((7, 5), b""), ((0, 10**9), b"\x00" * 16)],
    ids=["no-proof-revision-ahead", "no-proof-era-ahead", "bad-proof"],
)
async def test_a_forged_held_epoch_does_not_block_decisions(
    etcd_cluster, prefix, epoch: tuple[int, int], proof: bytes
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    forger = SyncClient("mallory", [G], held={G: epoch}, proofs={G: proof})
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "initial decision")
        await forger.connect(rs.address(0))
        await forger.wait(lambda: forger.snapshots, 5, "snapshot")
        check = leader.held_check
        await wait_for(
            lambda: leader.view.restore.detected or getattr(check, "unproven", 0) >= 1,
            10,
            "the held epoch checked",
        )
        assert not leader.view.restore.detected, leader.view.restore.detail
        r = await switch(rs.address(0), G, "backup", "after a forged hello")
        assert list(r.decision.paths)[0] == "backup"
    finally:
        await forger.close()
        await rs.stop_all()


async def test_decisions_are_pushed_with_a_proof_a_replica_accepts(etcd_cluster, prefix) -> None:
    from coordinator.core.epoch_proof import verify

    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    c = SyncClient("h1", [G])
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "initial decision")
        await c.connect(rs.address(0))
        await c.wait(lambda: c.decisions, 5, "a decision")
        d = c.decisions[-1]
        assert len(d.epoch.proof) == 16
        assert verify(leader.view.proof_key, G, d.epoch.era, d.epoch.revision, d.epoch.proof)
        assert not verify(leader.view.proof_key, G, d.epoch.era, d.epoch.revision + 1, d.epoch.proof)
    finally:
        await c.close()
        await rs.stop_all()
