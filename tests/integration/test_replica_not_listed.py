"""A replica that has not yet read etcd says so (UNAVAILABLE, try another) instead of
answering from its empty view ("unknown group", "leader: none")."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from coordinator.replica import Replica
from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, config, wait_for

pytestmark = pytest.mark.cluster
G = "cme-orders"


async def test_a_replica_still_listing_etcd_answers_unavailable(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()  # the group is seeded and a decision committed
    await rs.wait_leader()
    late = Replica(config("c2", etcd_cluster.endpoints, prefix))
    listing = asyncio.Event()

    async def never_lists(_prefix: str):  # type: ignore[no-untyped-def]
        listing.set()
        await asyncio.Event().wait()

    late.store.get_prefix = never_lists  # type: ignore[method-assign]
    task = asyncio.create_task(late.run())
    try:
        async with asyncio.timeout(10):
            await listing.wait()
        await wait_for(lambda: late.port != 0, 10, "c2 serving")
        address = late.cfg.listen
        async with admin(address) as stub:
            calls = {
                "GetStatus": stub.GetStatus(apb.GetStatusRequest(), timeout=5),
                "GetStatus(group)": stub.GetStatus(apb.GetStatusRequest(group=G), timeout=5),
                "History": stub.History(apb.HistoryRequest(group=G), timeout=5),
                "Switch": stub.Switch(
                    apb.SwitchRequest(group=G, path="backup", reason="t", operator="t", force=True), timeout=5
                ),
            }
            for what, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, (what, err.value.details())
                assert "has not read etcd yet" in (err.value.details() or ""), (what, err.value.details())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            async with asyncio.timeout(30):
                await task
        await rs.stop_all()
