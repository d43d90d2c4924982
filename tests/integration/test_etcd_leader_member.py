"""Calls go to the member that leads etcd: a write sent to another member is passed on to
the leader inside etcd first, one more hop on every commit."""

from __future__ import annotations

import asyncio

import pytest

from coordinator.replica import Replica
from coordinator.store.etcd_store import EtcdStore
from tests.harness import ReplicaSet, switch, wait_for

pytestmark = pytest.mark.cluster


def _leader_and_other(etcd_cluster) -> tuple[int, int]:
    leader = etcd_cluster.leader_index()
    assert leader >= 0, "the test cluster has no etcd leader"
    return leader, (leader + 1) % len(etcd_cluster.members)


async def test_the_store_points_its_calls_at_the_etcd_leader(etcd_cluster, prefix) -> None:
    leader, other = _leader_and_other(etcd_cluster)
    store = EtcdStore(etcd_cluster.endpoints, rpc_timeout_s=1.0)
    try:
        await store.get(prefix)  # connects; the first member is random
        members = store._members
        assert members is not None
        members.current = other
        await store.prefer_etcd_leader()
        assert members.current == leader
        await store.put(prefix + "k", b"v")  # and the calls still work there
        kv, _ = await store.get(prefix + "k")
        assert kv is not None and kv.value == b"v"
    finally:
        await store.close()


async def test_a_replica_that_starts_on_a_follower_member_moves_to_the_etcd_leader(
    etcd_cluster, prefix
) -> None:
    """Every replica asks at start (and every few seconds), so the next coordinator
    leader's first commit, the one a hand-over waits for, goes straight to etcd's leader."""
    leader, other = _leader_and_other(etcd_cluster)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    r = Replica(rs.configs[0])
    assert isinstance(r.store, EtcdStore)
    await r.store.get(prefix)
    members = r.store._members
    assert members is not None
    members.current = other  # as if the random start had picked a follower
    rs.replicas[0] = r
    rs.tasks[0] = asyncio.create_task(r.run(), name="replica-0")
    try:
        async with asyncio.timeout(10):
            await r.ready.wait()
        await wait_for(lambda: members.current == leader, 5, "the replica's calls to go to etcd's leader")
        await rs.wait_leader()
        resp = await switch(rs.address(0), "cme-orders", "backup")
        assert list(resp.decision.paths)[0] == "backup"
        assert members.current == leader
    finally:
        await rs.stop_all()
