"""A replica that has not yet read etcd says so (UNAVAILABLE, try another) instead of
answering from its empty view ("unknown group", "leader: none")."""

from __future__ import annotations

import grpc
import pytest

from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, never_listing

pytestmark = pytest.mark.cluster
G = "cme-orders"


async def test_a_replica_still_listing_etcd_answers_unavailable(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()  # the group is seeded and a decision committed
    await rs.wait_leader()
    try:
        async with never_listing(etcd_cluster.endpoints, prefix) as late, admin(late.cfg.listen) as stub:
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
        await rs.stop_all()
