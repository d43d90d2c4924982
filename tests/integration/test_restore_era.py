"""A real etcd restore (data directory put back to an older copy), then an era bump."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path

import grpc
import pytest

from coordinator.core.epoch_proof import prove
from failover.etcdproc import EtcdCluster
from failover.faults import etcdops
from failover.model.spec import Epoch
from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, switch, wait_for
from tests.procs import cli
from tests.syncclient import RoamingClient, SyncClient

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
G = "cme-orders"


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
            # Found from outside (4 of 4): status called every replica fresh while its Sync
            # heartbeats said stale, so `failover sync` reported in_sync and exited 0.
            (replica,) = st.replicas
            assert replica.stale and "etcd restore detected" in replica.stale_reason, replica
            out = await asyncio.to_thread(cli, "sync", "cme-orders", "--json", "-c", addr)
            assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
            assert json.loads(out.stdout)["all_replicas_stale"], out.stdout
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


def _restore_and_write_past(cluster: EtcdCluster, backup: Path, past: int, filler: str) -> int:
    """Put the old data back, restart, then write until etcd's revision is above ``past``.

    Called without ``to_thread`` on purpose: it blocks the event loop, so the
    replicas (tasks of that loop) cannot look at etcd until the revision is past
    the last one they applied, as when the restored store's own writes (lease
    expiries, campaigns) run ahead of a replica that is slow to reconnect.
    """
    etcdops.put_back(cluster, backup)
    cluster.restart(0)
    revision = 0
    n = 0
    while revision <= past:
        key = base64.b64encode(f"{filler}{n:04d}".encode()).decode()
        out = etcdops.call(cluster.endpoints[0], "kv/put", {"key": key, "value": ""})
        revision = int(out["header"]["revision"])
        n += 1
    return revision


async def test_restore_detected_when_revision_already_past_the_applied_one(prefix, tmp_path) -> None:
    """Decisions lost, yet the first read after the restore is above every revision applied."""
    cluster = EtcdCluster(1)
    cluster.start()
    rs = ReplicaSet(cluster.endpoints, prefix, n=1, freshness={"probe_interval_ms": 100})
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        addr = rs.address(0)
        backup = tmp_path / "snapshot"
        await asyncio.to_thread(etcdops.cold_copy, cluster, backup)
        cluster.restart(0)
        await wait_for(lambda: not leader.freshness.state.stale and leader.mirror.connected, 10, "etcd back")
        for i in range(4):
            await switch(addr, "cme-orders", "backup" if i % 2 == 0 else "primary", f"lost {i}")
        held = leader.view.routes["cme-orders"].mod_revision
        applied = leader.mirror.revision
        after = _restore_and_write_past(cluster, backup, applied, "/restore-filler/")
        assert after > applied
        await wait_for(lambda: leader.view.restore.detected, 10, "restore detection")
        assert "routes/cme-orders" in leader.view.restore.detail, leader.view.restore.detail
        # The view now holds what etcd holds: the route as restored, older than the one served.
        await wait_for(lambda: leader.view.routes["cme-orders"].mod_revision < held, 10, "the view re-listed")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await switch(addr, "cme-orders", "backup", "after restore, before bump")
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE and "era bump" in exc.value.details()
    finally:
        await rs.stop_all()
        cluster.stop()


async def _new_replica_after_restore(
    cluster: EtcdCluster, backup: Path, prefix: str
) -> tuple[ReplicaSet, str]:
    """Put the snapshot back and start a replica that never saw the lost history."""
    await asyncio.to_thread(etcdops.put_back, cluster, backup)
    await asyncio.to_thread(cluster.restart, 0)
    fresh = ReplicaSet(cluster.endpoints, prefix, n=1, freshness={"probe_interval_ms": 100})
    await fresh.start_all()
    await fresh.wait_leader()
    return fresh, fresh.address(0)


async def _refused_then_bump_reaches(
    fresh: ReplicaSet, addr: str, c: SyncClient, held: tuple[int, int]
) -> None:
    """The fresh replica refuses to commit, says why; after an era bump the sidecar takes the new era."""
    replica = fresh.running()[0]
    await wait_for(lambda: replica.view.restore.detected, 10, "restore detected from the sidecar's hello")
    assert "sidecar h1" in replica.view.restore.detail and G in replica.view.restore.detail
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await switch(addr, G, "backup", "after restore, before bump")
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE and "era bump" in exc.value.details()
    await c.wait(lambda: c.stale, 10, "the replica to call itself stale")
    assert "etcd restore detected" in c.heartbeats[-1].freshness.stale_reason
    async with admin(addr) as stub:
        st = await stub.GetStatus(apb.GetStatusRequest(), timeout=5)
        assert st.restore_detected
        bumped = await stub.BumpEra(apb.BumpEraRequest(operator="t", reason="restored"), timeout=5)
    assert bumped.era == 1
    await c.wait(lambda: c.held[G][0] == 1, 10, "the sidecar to take the new era's decision")
    assert c.held[G] > held
    assert not replica.view.restore.detected
    resp = await switch(addr, G, "backup", "after bump")
    await c.wait(lambda: c.held[G][1] == resp.decision.epoch.revision, 10, "a later decision")


async def test_replica_started_after_restore_refuses_until_era_bump(prefix, tmp_path) -> None:
    """A replica with nothing to compare learns the restore from a sidecar holding newer decisions."""
    cluster = EtcdCluster(1)
    cluster.start()
    rs = ReplicaSet(cluster.endpoints, prefix, n=1, freshness={"probe_interval_ms": 100})
    fresh: ReplicaSet | None = None
    c = SyncClient("h1", [G])
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the initial decision")
        backup = tmp_path / "snapshot"
        await asyncio.to_thread(etcdops.cold_copy, cluster, backup)
        await asyncio.to_thread(cluster.restart, 0)
        await wait_for(lambda: not leader.freshness.state.stale and leader.mirror.connected, 10, "etcd back")
        await c.connect(rs.address(0))
        for i in range(4):
            resp = await switch(rs.address(0), G, "backup" if i % 2 == 0 else "primary", f"lost {i}")
        await c.wait(
            lambda: c.held.get(G, (0, 0))[1] == resp.decision.epoch.revision, 10, "the last decision"
        )
        held, proofs = c.held[G], dict(c.proofs)
        await c.close()
        await rs.stop_all()
        fresh, addr = await _new_replica_after_restore(cluster, backup, prefix)
        assert not fresh.running()[0].view.restore.detected  # nothing to compare with yet
        c = SyncClient("h1", [G], held={G: held}, proofs=proofs)
        await c.connect(addr)
        await _refused_then_bump_reaches(fresh, addr, c, held)
    finally:
        await c.close()
        await rs.stop_all()
        if fresh is not None:
            await fresh.stop_all()
        cluster.stop()


async def test_restore_to_before_a_groups_first_decision(prefix, tmp_path) -> None:
    """The copy predates every decision of the group: the new replica commits a first one
    again, at a revision below the decisions sidecars hold. Sidecars would ignore it (older):
    the sidecar's hello shows the restore, decisions wait for the era bump, then resume."""
    cluster = EtcdCluster(1)
    cluster.start()
    # The cluster existed before the group did (its first start wrote the epoch proof key):
    # a copy from before the cluster's first start has no key to check held epochs with.
    first = ReplicaSet(cluster.endpoints, prefix, n=1, groups=[])
    await first.start_all()
    await wait_for(lambda: bool(first.running()[0].view.proof_key), 10, "the epoch proof key")
    await first.stop_all()
    backup = tmp_path / "snapshot"
    await asyncio.to_thread(etcdops.cold_copy, cluster, backup)  # no group, no decision yet
    await asyncio.to_thread(cluster.restart, 0)
    rs = ReplicaSet(cluster.endpoints, prefix, n=1, freshness={"probe_interval_ms": 100})
    fresh: ReplicaSet | None = None
    c = SyncClient("h1", [G])
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the first decision")
        await c.connect(rs.address(0))
        for i in range(4):
            resp = await switch(rs.address(0), G, "backup" if i % 2 == 0 else "primary", f"lost {i}")
        await c.wait(
            lambda: c.held.get(G, (0, 0))[1] == resp.decision.epoch.revision, 10, "the last decision"
        )
        held, proofs = c.held[G], dict(c.proofs)
        await c.close()
        await rs.stop_all()
        fresh, addr = await _new_replica_after_restore(cluster, backup, prefix)
        replica = fresh.running()[0]
        await wait_for(lambda: G in replica.view.routes, 10, "the first decision, committed again")
        assert replica.view.routes[G].epoch < Epoch(*held)  # what a sidecar would ignore as older
        c = SyncClient("h1", [G], held={G: held}, proofs=proofs)
        await c.connect(addr)
        await _refused_then_bump_reaches(fresh, addr, c, held)
    finally:
        await c.close()
        await rs.stop_all()
        if fresh is not None:
            await fresh.stop_all()
        cluster.stop()


async def test_sidecar_holding_a_decision_etcd_has_no_route_for(prefix) -> None:
    """A held decision in etcd's era for a group etcd has no decision of (the copy predates
    the group, whose first decision is not committed again yet) is a restore too: route keys
    are never deleted."""
    cluster = EtcdCluster(1)
    cluster.start()
    rs = ReplicaSet(cluster.endpoints, prefix, n=1, freshness={"probe_interval_ms": 100})
    c = SyncClient("h1", [G, "eurex-orders"], held={"eurex-orders": (0, 40)})
    try:
        await rs.start_all()
        replica = await rs.wait_leader()
        await wait_for(lambda: G in replica.view.routes, 10, "the first decision")
        # As pushed by a replica of this cluster before the restore.
        c.proofs["eurex-orders"] = prove(replica.view.proof_key, "eurex-orders", 0, 40)
        await c.connect(rs.address(0))
        await wait_for(lambda: replica.view.restore.detected, 10, "restore detected from the hello")
        assert replica.view.restore.detail == (
            "sidecar h1 holds eurex-orders at epoch 0:40, and etcd has no decision of eurex-orders"
        )
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await switch(rs.address(0), G, "backup", "after restore, before bump")
        assert "era bump" in exc.value.details()
    finally:
        await c.close()
        await rs.stop_all()
        cluster.stop()


async def test_replicas_started_after_restore_learn_it_from_a_roaming_sidecar(prefix, tmp_path) -> None:
    """Three replicas started after the restore; the sidecar holding a lost decision first
    connects to a follower. The follower blocks and says it is stale; the sidecar moves on
    and its hello tells the next replica, and so on to the leader: nothing commits until the bump."""
    cluster = EtcdCluster(1)
    cluster.start()
    rs = ReplicaSet(cluster.endpoints, prefix, n=1, freshness={"probe_interval_ms": 100})
    fresh: ReplicaSet | None = None
    c = SyncClient("h1", [G])
    roaming: RoamingClient | None = None
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the initial decision")
        backup = tmp_path / "snapshot"
        await asyncio.to_thread(etcdops.cold_copy, cluster, backup)
        await asyncio.to_thread(cluster.restart, 0)
        await wait_for(lambda: not leader.freshness.state.stale and leader.mirror.connected, 10, "etcd back")
        await c.connect(rs.address(0))
        for i in range(4):
            resp = await switch(rs.address(0), G, "backup" if i % 2 == 0 else "primary", f"lost {i}")
        await c.wait(
            lambda: c.held.get(G, (0, 0))[1] == resp.decision.epoch.revision, 10, "the last decision"
        )
        held, proofs = c.held[G], dict(c.proofs)
        await c.close()
        await rs.stop_all()
        await asyncio.to_thread(etcdops.put_back, cluster, backup)
        await asyncio.to_thread(cluster.restart, 0)
        fresh = ReplicaSet(cluster.endpoints, prefix, n=3, freshness={"probe_interval_ms": 100})
        await fresh.start_all()
        new_leader = await fresh.wait_leader()
        i = fresh.replicas.index(new_leader)
        order = [fresh.address((i + k) % 3) for k in (1, 2, 0)]  # the followers first
        roaming = RoamingClient("h1", [G], order)
        roaming.held[G] = held
        roaming.proofs.update(proofs)
        roaming.start()
        await wait_for(lambda: new_leader.view.restore.detected, 15, "the leader to learn of the restore")
        assert all(r.view.restore.detected for r in fresh.running())
        assert "sidecar h1 holds" in new_leader.view.restore.detail
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await switch(fresh.address(i), G, "backup", "after restore, before bump")
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE and "era bump" in exc.value.details()
        async with admin(fresh.address(i)) as stub:
            await stub.BumpEra(apb.BumpEraRequest(operator="t", reason="restored"), timeout=5)
        await wait_for(lambda: roaming.held[G][0] == 1, 15, "the sidecar to take the new era's decision")
        assert not any(r.view.restore.detected for r in fresh.running())
    finally:
        if roaming is not None:
            await roaming.stop()
        await c.close()
        await rs.stop_all()
        if fresh is not None:
            await fresh.stop_all()
        cluster.stop()


async def test_sidecar_resuming_from_what_etcd_has_costs_no_read_and_no_alarm(etcd_cluster, prefix) -> None:
    """The hello check stays quiet in normal operation: a held epoch the view already has
    is not read from etcd, and a real (older or equal) one is no evidence."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    c = SyncClient("h1", [G])
    try:
        await rs.start_all()
        replica = await rs.wait_leader()
        await wait_for(lambda: G in replica.view.routes, 10, "the initial decision")
        epoch = replica.view.routes[G].epoch
        c.held = {G: (epoch.era, epoch.revision)}
        await c.connect(rs.address(0))
        await c.wait(lambda: c.snapshots, 5, "snapshot")
        await switch(rs.address(0), G, "backup", "after the hello")
        await c.wait(lambda: c.decisions, 5, "the next decision")
        assert replica.held_check.reads == 0
        assert not replica.view.restore.detected
    finally:
        await c.close()
        await rs.stop_all()
