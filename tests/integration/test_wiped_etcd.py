"""etcd's data lost under running replicas, then `failover era bump`: the cluster works again.

Found from outside: with etcd's data directory wiped and etcd restarted under running
replicas, the restore was detected (revision back to 2), but after `era bump` etcd held
no group definitions and no epoch proof key: `switch` answered `NOT_FOUND: group: unknown
group`, and a decision made after a manual `group put` went out unsigned. The bump now
writes back, where etcd has none, what a cluster's first start writes: the proof key,
then the configured groups.
"""

from __future__ import annotations

import asyncio
import shutil

import grpc
import pytest

from failover.etcdproc import EtcdCluster
from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, switch, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
G = "cme-orders"


async def test_an_era_bump_after_etcd_lost_its_data_seeds_the_groups_and_the_proof_key_again(prefix) -> None:
    cluster = EtcdCluster(1)
    cluster.start()
    rs = ReplicaSet(cluster.endpoints, prefix, n=1, freshness={"probe_interval_ms": 100})
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the initial decision")
        addr = rs.address(0)
        for i in range(3):
            await switch(addr, G, "backup" if i % 2 == 0 else "primary", f"before the wipe {i}")
        member = cluster.members[0]
        await asyncio.to_thread(cluster.stop_member, 0)
        shutil.rmtree(member.data_dir)
        await asyncio.to_thread(cluster.restart, 0)
        await wait_for(lambda: leader.view.restore.detected, 15, "the lost data detected")
        async with admin(addr) as stub:
            bumped = await stub.BumpEra(
                apb.BumpEraRequest(operator="t", reason="etcd lost its data"), timeout=5
            )
        assert bumped.era >= 1
        await wait_for(lambda: leader.view.proof_key is not None, 10, "the proof key in the view")
        await wait_for(lambda: G in leader.view.groups, 10, "the group in the view")
        # The wipe took the election key and the lease too: the leader's next fenced write is
        # refused and it campaigns again (a switch meanwhile is UNAVAILABLE, as any hand-over).
        async with asyncio.timeout(15):
            while True:
                try:
                    resp = await switch(addr, G, "backup", "after the bump")
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                    await rs.wait_leader()
                    await asyncio.sleep(0.1)
        assert resp.decision.epoch.era == bumped.era, resp
    finally:
        await rs.stop_all()
        cluster.stop()
