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
from tests.harness import ReplicaSet, admin, switch

pytestmark = [pytest.mark.cluster]
G = "cme-orders"
COLLECT_S = 6.0


async def test_a_forced_switch_does_not_wait_for_health_collection(etcd_cluster, prefix) -> None:
    # A member whose CollectHealth never answers: the new term's collection waits for it
    # until health.collect_timeout_ms.
    async def never(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await asyncio.Event().wait()
        return b""

    blackhole = rpc.make_server()
    handler = grpc.unary_unary_rpc_method_handler(never)
    blackhole.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("failover.v1.Peer", {"CollectHealth": handler}),)
    )
    port = blackhole.add_insecure_port("127.0.0.1:0")
    await blackhole.start()
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
