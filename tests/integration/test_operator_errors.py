"""Operator-facing answers of a real cluster: refusals that change nothing, the fencing
token in history, the status summary with real Sync streams, one-line start-up errors."""

from __future__ import annotations

import asyncio
import json
import socket

import grpc
import pytest

from failover.model.convert import group_pb
from failover.model.spec import GroupSpec
from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, kv_snapshot, wait_for
from tests.procs import cli
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster

GROUP = "cme-orders"


async def test_refusals_change_nothing_and_history_shows_the_token(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    clients: list[SyncClient] = []
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the initial decision")
        before = await kv_snapshot(leader.store, prefix)
        follower = rs.address(1 - rs.replicas.index(leader))
        async with admin(follower) as stub:
            spec = GroupSpec.model_validate(
                {"name": GROUP, "paths": [{"name": "primary", "endpoints": {"default": "127.0.0.1:9001"}}]}
            )
            bad = group_pb(spec, 0)
            bad.paths[0].warmth = 9  # not a Warmth value
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.PutGroup(apb.PutGroupRequest(definition=bad), timeout=5)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "definition.paths.0.warmth" in (e.value.details() or "")
            for action in (apb.CONTROL_ACTION_DRAIN, apb.CONTROL_ACTION_PIN, apb.CONTROL_ACTION_UNDRAIN):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.SetControl(
                        apb.SetControlRequest(action=action, group=GROUP, reason="x"), timeout=10
                    )
                assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, action
                assert e.value.details() == "path: required"
        assert await kv_snapshot(leader.store, prefix) == before

        # A decision written now carries the leader's fencing token, in the CLI's JSON and table.
        token = leader.view.leader.token if leader.view.leader else 0
        r = await asyncio.to_thread(
            cli, "switch", GROUP, "backup", "--reason", "token test", "--force", "-c", follower
        )
        assert r.returncode == 0, r.stderr
        r = await asyncio.to_thread(cli, "history", GROUP, "--json", "-c", follower)
        newest = json.loads(r.stdout)["decisions"][0]
        assert int(newest["fencing_token"]) == token > 0
        r = await asyncio.to_thread(cli, "history", GROUP, "-c", follower)
        assert "token" in r.stdout and str(token) in r.stdout

        # Status: counts by default, deviating hosts named, --hosts/--group list them all.
        for i in range(30):
            sc = SyncClient(f"h{i:02d}", [GROUP])
            await sc.connect(rs.address(i % 2))
            clients.append(sc)
        for sc in clients:
            await sc.wait(lambda sc=sc: bool(sc.decisions), 10, "first decision")
        clients[0].report({(GROUP, "backup"): 2, (GROUP, "primary"): 1})
        r = await asyncio.to_thread(cli, "status", "--json", "-c", follower)
        st = json.loads(r.stdout)
        assert sum(int(rep.get("sidecar_count", 0)) for rep in st["replicas"]) == 30
        assert sum(int(hc["hosts"]) for rep in st["replicas"] for hc in rep["host_counts"]) == 30
        r = await asyncio.to_thread(cli, "status", "--hosts", "--group", GROUP, "--json", "-c", follower)
        st = json.loads(r.stdout)
        assert sorted(sc["host_id"] for rep in st["replicas"] for sc in rep["sidecars"]) == [
            f"h{i:02d}" for i in range(30)
        ]
        assert all(g["definition"]["name"] == GROUP for g in st["groups"])
        r = await asyncio.to_thread(cli, "status", "--group", "nope", "-c", follower)
        assert r.returncode == 1 and "NOT_FOUND" in r.stderr
        r = await asyncio.to_thread(cli, "status", "-c", follower)
        assert r.returncode == 0 and "hosts per group" in r.stdout, r.stderr
    finally:
        for sc in clients:
            await sc.close()
        await rs.stop_all()


def test_a_coordinator_whose_port_is_taken_says_so_in_one_line(tmp_path, etcd_cluster) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli(
            "coordinator",
            "--listen",
            f"127.0.0.1:{port}",
            "--etcd",
            ",".join(etcd_cluster.endpoints),
            timeout=60,
        )
    assert r.returncode == 1, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot listen on"), r.stderr


async def test_an_etcd_outage_is_named_in_switch_and_status(own_etcd, prefix) -> None:
    rs = ReplicaSet(own_etcd.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the initial decision")
        for i in range(3):
            await asyncio.to_thread(own_etcd.kill, i)
        async with admin(rs.address(0)) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.Switch(
                    apb.SwitchRequest(group=GROUP, path="backup", reason="outage", force=True), timeout=20
                )
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "etcd has no quorum (0 of 3 configured members answer)" in (e.value.details() or ""), (
                e.value.details()
            )
            st = await stub.GetStatus(apb.GetStatusRequest(), timeout=20)
        no_quorum = "etcd has no quorum (0 of 3 configured members answer)"
        assert len(st.alarms) == 1 and no_quorum in st.alarms[0], st.alarms
        await wait_for(lambda: leader.freshness.state.stale, 10, "the replica to turn stale")
        reason = leader.freshness.state.reason
        assert not reason.endswith(": "), reason
    finally:
        await rs.stop_all()


async def test_a_switch_whose_write_etcd_never_answered_is_reported_unknown_not_retry(
    own_etcd, prefix
) -> None:
    """etcd paused with the switch's transaction sent: the write may still apply once etcd
    runs again (it did, in a quorum-loss fault row), so the answer is UNKNOWN naming
    `failover status`, never UNAVAILABLE's "retry"."""
    import signal

    rs = ReplicaSet(own_etcd.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the initial decision")
        for i in range(3):
            own_etcd.signal_member(i, signal.SIGSTOP)
        try:
            async with admin(rs.address(0)) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await stub.Switch(
                        apb.SwitchRequest(group=GROUP, path="backup", reason="paused", force=True), timeout=20
                    )
        finally:
            for i in range(3):
                own_etcd.signal_member(i, signal.SIGCONT)
        assert e.value.code() == grpc.StatusCode.UNKNOWN, (e.value.code(), e.value.details())
        assert "outcome unknown" in (e.value.details() or "") and "failover status" in (
            e.value.details() or ""
        ), e.value.details()
    finally:
        await rs.stop_all()
