"""The sidecar stream against real replicas on a real etcd, with a test client."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from failover import rpc
from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, admin, switch, wait_for
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster
G = "cme-orders"


async def test_snapshot_then_updates_and_resume_from_held_epochs(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    c = SyncClient("h1", [G])
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: all(G in r.view.routes for r in rs.running()), 10, "initial decision")
        follower = rs.address(1 - rs.replicas.index(leader))
        await c.connect(follower)
        await c.wait(lambda: c.snapshots, 5, "snapshot")
        snap = c.snapshots[0]
        assert [g.name for g in snap.groups] == [G]
        assert snap.groups[0].paths[0].endpoint == "127.0.0.1:9001"
        assert [list(d.paths) for d in snap.decisions] == [["primary", "backup"]]
        r = await switch(follower, G, "backup")
        await c.wait(lambda: len(c.decisions) == 2, 5, "pushed decision")
        assert list(c.decisions[-1].paths) == ["backup", "primary"]
        assert c.decisions[-1].epoch.revision == r.decision.epoch.revision
        # Acks show in status.
        async with admin(follower) as stub:

            async def acked() -> bool:
                st = await stub.GetStatus(apb.GetStatusRequest(hosts=True), timeout=5)
                scs = [s for rep in st.replicas for s in rep.sidecars if s.host_id == "h1"]
                return bool(scs) and scs[0].acked[G].revision == r.decision.epoch.revision

            async with asyncio.timeout(5):
                while not await acked():  # noqa: ASYNC110 - polling another process's status
                    await asyncio.sleep(0.05)
        held = dict(c.held)
        await c.close()
        # Reconnect with held epochs: nothing old comes back; newer ones do.
        r2 = await switch(follower, G, "primary")
        c2 = SyncClient("h1", [G], held=held)
        await c2.connect(rs.address(rs.replicas.index(leader)))
        await c2.wait(lambda: c2.snapshots, 5, "snapshot")
        assert [d.epoch.revision for d in c2.snapshots[0].decisions] == [r2.decision.epoch.revision]
        await c2.close()
        c3 = SyncClient("h2", [G], held=dict(c2.held))
        await c3.connect(follower)
        await c3.wait(lambda: c3.snapshots, 5, "snapshot")
        assert list(c3.snapshots[0].decisions) == []
        await c3.close()
    finally:
        await c.close()
        await rs.stop_all()


async def test_health_sent_to_a_follower_reaches_the_leader(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=3)
    await rs.start_all()
    clients = [SyncClient(f"h{i}", [G]) for i in range(3)]
    try:
        leader = await rs.wait_leader()
        followers = [i for i, r in enumerate(rs.replicas) if r is not leader]
        for i, c in enumerate(clients):
            await c.connect(rs.address(followers[i % 2]))
            c.report({(G, "primary"): pb.PATH_STATE_UP, (G, "backup"): pb.PATH_STATE_UP})
        await wait_for(lambda: len(leader.health.current.table.hosts) == 3, 5, "the leader to know 3 hosts")
        # Two of three report the active path down: the majority policy moves the group.
        for c in clients[:2]:
            c.report({(G, "primary"): pb.PATH_STATE_DOWN, (G, "backup"): pb.PATH_STATE_UP})
        for c in clients:
            await c.wait(
                lambda c=c: c.decisions and list(c.decisions[-1].paths)[0] == "backup", 5, "failover"
            )
        d = clients[0].decisions[-1]
        assert d.trigger.kind == "health"
        assert {s.stage for s in d.stages} >= {"detect", "forward", "decide"}
        assert "h0:primary=down/reset" in d.trigger.evidence
    finally:
        for c in clients:
            await c.close()
        await rs.stop_all()


async def test_one_host_down_does_not_move_the_group(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    clients = [SyncClient(f"h{i}", [G]) for i in range(3)]
    try:
        leader = await rs.wait_leader()
        for c in clients:
            await c.connect(rs.address(0))
            c.report({(G, "primary"): pb.PATH_STATE_UP, (G, "backup"): pb.PATH_STATE_UP})
        await wait_for(lambda: len(leader.health.current.table.hosts) == 3, 5, "3 hosts known")
        clients[0].report({(G, "primary"): pb.PATH_STATE_DOWN, (G, "backup"): pb.PATH_STATE_UP})
        await wait_for(
            lambda: leader.health.current.table.hosts["h0"].paths[(G, "primary")].state.value == "down",
            5,
            "report",
        )
        leader.leader.wake()
        await asyncio.sleep(0.3)  # give a wrong decision the chance to appear (asserting an absence)
        assert list(leader.view.routes[G].record.paths) == ["primary", "backup"]
    finally:
        for c in clients:
            await c.close()
        await rs.stop_all()


async def test_two_hundred_streams_get_every_decision_encoded_once(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    clients = [SyncClient(f"h{i:03d}", [G]) for i in range(200)]
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "initial decision")
        await asyncio.gather(*(c.connect(rs.address(0)) for c in clients))
        for c in clients:
            await c.wait(lambda c=c: c.snapshots, 10, "snapshot")
        before = leader.hub.cache.decision_encodes
        epochs = []
        for path in ("backup", "primary", "backup"):
            r = await switch(rs.address(0), G, path)
            epochs.append(r.decision.epoch.revision)
            for c in clients:
                await c.wait(lambda c=c, e=epochs[-1]: c.held.get(G, (0, 0))[1] >= e, 10, "decision")
        assert leader.hub.cache.decision_encodes - before == 3
        assert all([d.epoch.revision for d in c.decisions][-3:] == epochs for c in clients)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
        await rs.stop_all()


async def test_garbage_and_oversized_messages_get_a_clear_status(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"max_message_bytes": 4096})
    await rs.start_all()
    good = SyncClient("good", [G])
    try:
        await rs.wait_leader()
        await good.connect(rs.address(0))
        await good.wait(lambda: good.snapshots, 5, "snapshot")
        async with rpc.channel(rs.address(0)) as ch:
            raw = ch.stream_stream(
                "/failover.v1.Sync/Stream", request_serializer=None, response_deserializer=None
            )

            async def send(*frames: bytes) -> grpc.aio.AioRpcError:
                async def gen():  # type: ignore[no-untyped-def]
                    for f in frames:
                        yield f
                    await asyncio.sleep(5)

                call = raw(gen())
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    async with asyncio.timeout(5):
                        async for _ in call:
                            pass
                return exc.value

            e = await send(b"\xff\xff\xff garbage")
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "SidecarMessage" in e.details()
            e = await send(b"\x0a" + bytes([100]) + b"x" * 100)
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
            from failover.v1 import sync_pb2

            hello = sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id="Bad Host", groups=[G]))
            e = await send(hello.SerializeToString())
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "host_id" in e.details()
            e = await send(b"\x00" * 10_000)
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        r = await switch(rs.address(0), G, "backup")
        await good.wait(lambda: good.held.get(G, (0, 0))[1] == r.decision.epoch.revision, 5, "still served")
    finally:
        await good.close()
        await rs.stop_all()


async def test_stream_limit_is_a_clear_status(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"max_streams": 2})
    await rs.start_all()
    cs = [SyncClient(f"h{i}", [G]) for i in range(3)]
    try:
        await rs.wait_leader()
        for c in cs[:2]:
            await c.connect(rs.address(0))
            await c.wait(lambda c=c: c.snapshots, 5, "snapshot")
        await cs[2].connect(rs.address(0))
        await cs[2].wait(lambda: cs[2].error is not None, 5, "refusal")
        assert cs[2].error is not None and cs[2].error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        for c in cs:
            with contextlib.suppress(Exception):
                await c.close()
        await rs.stop_all()


async def test_at_most_one_unacknowledged_push_per_group_and_latest_wins(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    c = SyncClient("slow", [G], auto_ack=False)
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "initial decision")
        await c.connect(rs.address(0))
        await c.wait(lambda: len(c.decisions) == 1, 5, "snapshot decision")
        epochs = [
            (await switch(rs.address(0), G, p)).decision.epoch.revision
            for p in ("backup", "primary", "backup")
        ]
        await wait_for(
            lambda: leader.hub.cache.decisions[G].epoch.revision == epochs[-1], 5, "replica caught up"
        )
        await asyncio.sleep(0.3)  # asserting an absence: no push while the snapshot's decision is unacked
        assert len(c.decisions) == 1
        c.ack(G, c.held[G])
        await c.wait(lambda: len(c.decisions) == 2, 5, "the next push")
        assert c.decisions[-1].epoch.revision == epochs[-1], (
            "latest value wins: intermediate decisions skipped"
        )
    finally:
        await c.close()
        await rs.stop_all()


async def test_every_server_has_health_and_reflection(etcd_cluster, prefix) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        async with rpc.channel(rs.address(0)) as ch:
            h = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=5
            )
            assert h.status == health_pb2.HealthCheckResponse.SERVING
            call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            services = set()
            async for resp in call:
                services = {s.name for s in resp.list_services_response.service}
                break
            assert {"failover.v1.Admin", "failover.v1.Sync", "failover.v1.Peer"} <= services
    finally:
        await rs.stop_all()
