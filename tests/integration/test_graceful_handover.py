"""Hand-over: a new leader commits a forced switch at once, whatever health collection waits for."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest

from coordinator.store.etcd_store import EtcdStore
from failover import rpc
from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, admin, switch, wait_for
from tests.syncclient import SyncClient

pytestmark = [pytest.mark.cluster]
G = "cme-orders"
COLLECT_S = 6.0


async def _never_collects() -> tuple[grpc.aio.Server, int]:
    """A member's server whose CollectHealth never answers: a term's collection waits for it
    until health.collect_timeout_ms."""

    async def never(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await asyncio.Event().wait()
        return b""

    server = rpc.make_server()
    handler = grpc.unary_unary_rpc_method_handler(never)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("failover.v1.Peer", {"CollectHealth": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_a_forced_switch_does_not_wait_for_health_collection(etcd_cluster, prefix) -> None:
    # A member whose CollectHealth never answers: the new term's collection waits for it
    # until health.collect_timeout_ms.
    blackhole, port = await _never_collects()
    store = EtcdStore(etcd_cluster.endpoints)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, health={"collect_timeout_ms": int(COLLECT_S * 1000)})
    try:
        await store.put(
            prefix + "members/ghost", json.dumps({"id": "ghost", "address": f"127.0.0.1:{port}"}).encode()
        )
        started = time.monotonic()
        await rs.start_all()
        r = await rs.wait_leader()
        resp = await switch(rs.address(0), G, "backup", force=True)
        assert list(resp.decision.paths)[0] == "backup"
        took = time.monotonic() - started
        assert took < COLLECT_S / 2, f"the forced switch waited {took:.1f}s, behind health collection"
        # A switch that reads health (not forced) is answered only once health is in.
        async with admin(rs.address(0)) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Switch(
                    apb.SwitchRequest(group=G, path="primary", reason="t", operator="t"),
                    timeout=COLLECT_S + 5,
                )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION  # no host reports it up
        assert r.health.current is not None and r.health.current.ready
    finally:
        await rs.stop_all()
        await store.close()
        await blackhole.stop(None)


async def test_a_switch_queued_at_a_stopping_leader_is_passed_to_the_next(etcd_cluster, prefix) -> None:
    """A switch waiting in the leader's queue when it stops gracefully is committed by the
    next leader (the stopping replica passes it on), instead of failing with "leadership
    ended; retry". The leader's loop is kept busy by a first switch held in its commit."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        idx = rs.replicas.index(leader)
        committer = leader.leader._committer
        real_commit = committer.commit
        held = asyncio.Event()

        async def hold(*args, **kwargs):
            held.set()
            await asyncio.Event().wait()  # until the term is cancelled
            return await real_commit(*args, **kwargs)

        committer.commit = hold  # type: ignore[method-assign]
        first = asyncio.create_task(switch(rs.address(idx), G, "backup", reason="held"))
        async with asyncio.timeout(10):
            await held.wait()
        queued = asyncio.create_task(switch(rs.address(idx), G, "backup", reason="queued"))
        async with asyncio.timeout(10):
            while leader.leader._requests.empty():  # noqa: ASYNC110 - no event for "queued"
                await asyncio.sleep(0.005)
        await rs.stop(idx)
        async with asyncio.timeout(10):
            resp = await queued
        assert list(resp.decision.paths)[0] == "backup"
        assert resp.decision.leader_id != leader.cfg.replica_id
        # Cancelled mid-commit: either its outcome is unknown (an error), or the stopping
        # leader saw it refused before it was decided and passed it on: then the next
        # leader committed it. Never a success from the stopped leader.
        try:
            async with asyncio.timeout(10):
                done = await first
        except grpc.aio.AioRpcError:
            pass
        else:
            assert done.decision.leader_id != leader.cfg.replica_id
            assert list(done.decision.paths)[0] == "backup"
    finally:
        await rs.stop_all()


async def test_a_switch_that_reads_health_is_not_held_for_the_next_terms_collection(
    etcd_cluster, prefix
) -> None:
    """A graceful hand-over goes to a successor that has already collected health (asked
    while the old leader still led): a switch that reads health commits at once on the new
    term, not after the term's own collection, here held up to COLLECT_S by a member whose
    CollectHealth never answers."""

    blackhole, port = await _never_collects()
    store = EtcdStore(etcd_cluster.endpoints)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2, health={"collect_timeout_ms": int(COLLECT_S * 1000)})
    host = SyncClient("h1", [G])
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: leader.health.guard_ready(), 10, "the first term's health")
        idx = rs.replicas.index(leader)
        other = 1 - idx
        # Joins only now: the first term's collection did not wait for it; the next one would.
        await store.put(
            prefix + "members/ghost", json.dumps({"id": "ghost", "address": f"127.0.0.1:{port}"}).encode()
        )
        await host.connect(rs.address(other))
        host.report({(G, "primary"): pb.PATH_STATE_UP, (G, "backup"): pb.PATH_STATE_UP})
        await wait_for(lambda: leader.health.path_has_up_report(G, "backup"), 10, "h1's report at the leader")
        await rs.stop(idx)
        started = time.monotonic()
        resp = await switch(rs.address(other), G, "backup", force=False)
        took = time.monotonic() - started
        assert list(resp.decision.paths)[0] == "backup"
        assert resp.decision.leader_id == rs.configs[other].replica_id
        assert took < COLLECT_S / 2, f"the switch waited {took:.1f}s, behind the new term's health collection"
    finally:
        await host.close()
        await rs.stop_all()
        await store.close()
        await blackhole.stop(None)
