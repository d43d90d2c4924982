"""The leader's decision path against races: controls that disagree, callers that give up,
requests that arrive while leadership changes hands. Real etcd, real gRPC on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from failover.model.spec import ControlsSpec
from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, code_of, wait_for

pytestmark = [pytest.mark.cluster]
G = "cme-orders"


@contextlib.asynccontextmanager
async def replicas(
    endpoints: list[str], prefix: str, n: int = 3, **overrides: object
) -> AsyncIterator[ReplicaSet]:
    rs = ReplicaSet(endpoints, prefix, n, **overrides)
    try:
        await rs.start_all()
        yield rs
    finally:
        await rs.stop_all()


async def control(address: str, action: int, path: str = "", force: bool = False) -> apb.ControlResponse:
    async with admin(address) as stub:
        resp: apb.ControlResponse = await stub.SetControl(
            apb.SetControlRequest(action=action, group=G, path=path, reason="t", operator="t", force=force),
            timeout=10,
        )
        return resp


async def test_drain_of_the_pinned_path_is_refused_unless_forced_and_force_clears_the_pin(
    etcd_cluster, prefix
) -> None:
    async with replicas(etcd_cluster.endpoints, prefix) as rs:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the first decision")
        addr = rs.address(0)
        await control(addr, apb.CONTROL_ACTION_PIN, "backup")
        await wait_for(lambda: leader.view.routes[G].record.paths[0] == "backup", 10, "the pin to move")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await control(addr, apb.CONTROL_ACTION_DRAIN, "backup")
        assert code_of(err.value) == grpc.StatusCode.FAILED_PRECONDITION
        assert "pinned" in err.value.details() and "unpin" in err.value.details()
        resp = await control(addr, apb.CONTROL_ACTION_DRAIN, "backup", force=True)
        assert resp.decision.paths == ["primary"], resp
        ctl = leader.view.controls[G].value
        assert ctl.pinned is None and ctl.drained == ["backup"]


async def test_pin_and_drain_on_one_path_in_etcd_settle_instead_of_flapping(etcd_cluster, prefix) -> None:
    """Controls written before the rule existed (or by hand): one decision, then quiet."""
    async with replicas(etcd_cluster.endpoints, prefix) as rs:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the first decision")
        await control(rs.address(0), apb.CONTROL_ACTION_PIN, "backup")
        await wait_for(lambda: leader.view.routes[G].record.paths[0] == "backup", 10, "the pin to move")
        spec = ControlsSpec(drained=["backup"], pinned="backup", operator="t", reason="by hand")
        await leader.store.put(leader.keys.control(G), spec.model_dump_json().encode())
        await wait_for(lambda: leader.view.routes[G].record.paths == ["primary"], 10, "the drain to win")
        epoch = leader.view.routes[G].epoch
        await asyncio.sleep(1.0)  # asserting an absence: a flap commits within milliseconds
        assert leader.view.routes[G].epoch == epoch, (
            f"the route kept moving: {[c.record.paths for c in leader.leader.recent[-6:]]}"
        )
