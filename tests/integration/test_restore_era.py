"""A real etcd restore (data directory put back to an older copy), then an era bump."""

from __future__ import annotations

import asyncio
import shutil

import grpc
import pytest

from failover.etcdproc import EtcdCluster
from failover.model.spec import Epoch
from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, switch, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


async def test_restore_blocks_decisions_until_era_bump_then_orders_after_everything(prefix, tmp_path) -> None:
    cluster = EtcdCluster(1)
    cluster.start()
    rs = ReplicaSet(cluster.endpoints, prefix, n=1, freshness={"probe_interval_ms": 100})
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        addr = rs.address(0)
        seen: list[Epoch] = [leader.view.routes["cme-orders"].epoch]
        # Take the "snapshot": a copy of the stopped member's data directory.
        member = cluster.members[0]
        await asyncio.to_thread(cluster.stop_member, 0)
        backup = tmp_path / "snapshot"
        shutil.copytree(member.data_dir, backup)
        await asyncio.to_thread(cluster.restart, 0)
        await wait_for(lambda: not leader.freshness.state.stale and leader.mirror.connected, 10, "etcd back")
        for i in range(4):
            resp = await switch(
                addr, "cme-orders", "backup" if i % 2 == 0 else "primary", f"before restore {i}"
            )
            seen.append(Epoch(resp.decision.epoch.era, resp.decision.epoch.revision))
        # Restore: put the old data back.
        await asyncio.to_thread(cluster.stop_member, 0)
        shutil.rmtree(member.data_dir)
        shutil.copytree(backup, member.data_dir)
        await asyncio.to_thread(cluster.restart, 0)
        await wait_for(lambda: leader.view.restore.detected, 10, "restore detection")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await switch(addr, "cme-orders", "backup", "after restore, before bump")
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE and "era bump" in exc.value.details()
        async with admin(addr) as stub:
            st = await stub.GetStatus(apb.GetStatusRequest(), timeout=5)
            assert st.restore_detected
            bumped = await stub.BumpEra(apb.BumpEraRequest(operator="t", reason="restored"), timeout=5)
        assert bumped.era == 1
        await wait_for(lambda: not leader.view.restore.detected, 10, "era bump to clear the block")
        # The leader re-commits every route in the new era on its own.
        await wait_for(lambda: leader.view.routes["cme-orders"].epoch.era == 1, 10, "re-commit in era 1")
        resp = await switch(addr, "cme-orders", "backup", "after bump")
        new = Epoch(resp.decision.epoch.era, resp.decision.epoch.revision)
        assert all(new > e for e in seen), (new, seen)
    finally:
        await rs.stop_all()
        cluster.stop()
