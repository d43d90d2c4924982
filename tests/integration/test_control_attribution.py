"""Every decision an operator control causes names that operator and reason.

Found from outside: drain by alice, undrain by bob, pin by carol; the undrain's decision was
recorded as trigger ``seed``, reason "group definition or controls changed" (bob and his
reason gone), and the pin's with ``trigger.operator`` empty, though docs/api.md promises that
SetControl "makes the decision the control causes at once (carrying operator and reason)".
"""

from __future__ import annotations

import grpc
import pytest

from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.harness import ReplicaSet, wait_for

pytestmark = pytest.mark.cluster
G = "cme-orders"


async def _control(address: str, action: int, path: str, operator: str) -> apb.ControlResponse:
    async with grpc.aio.insecure_channel(address) as ch:
        return await admin_pb2_grpc.AdminStub(ch).SetControl(  # type: ignore[no-any-return]
            apb.SetControlRequest(
                action=action,
                group=G,
                path=path,
                reason=f"ticket of {operator}",
                operator=operator,
                force=True,
            ),
            timeout=10,
        )


async def test_drain_undrain_and_pin_decisions_name_their_operator(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "initial decision")
        addr = rs.address(0)
        for action, path, who in (
            (apb.CONTROL_ACTION_DRAIN, "primary", "alice"),
            (apb.CONTROL_ACTION_UNDRAIN, "primary", "bob"),
            (apb.CONTROL_ACTION_PIN, "primary", "carol"),
        ):
            resp = await _control(addr, action, path, who)
            assert resp.HasField("decision"), (who, resp.message)
            t = resp.decision.trigger
            assert (t.kind, t.operator) == ("control", who), (who, resp.decision)
            reason = resp.decision.reason
            assert who in reason and f"ticket of {who}" in reason, reason
    finally:
        await rs.stop_all()
