"""An ack counts only for an epoch the stream could hold: one this replica has for the group,
or the one its hello named. Found from outside: a stream that acked ``0:999999999`` was
listed by ``failover sync`` as having applied the latest decision (``in_sync: true``)."""

from __future__ import annotations

import pytest

from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, wait_for
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster
G = "cme-orders"


async def _acked(address: str, host: str) -> tuple[int, int] | None:
    async with admin(address) as stub:
        st = await stub.GetStatus(apb.GetStatusRequest(hosts=True), timeout=5)
    for rep in st.replicas:
        for s in rep.sidecars:
            if s.host_id == host and G in s.acked:
                return (s.acked[G].era, s.acked[G].revision)
    return None


async def test_an_ack_for_an_epoch_never_pushed_is_not_counted(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    c = SyncClient("liar", [G], auto_ack=False)
    honest = SyncClient("h1", [G])
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the first decision")
        latest = leader.view.routes[G].epoch
        await honest.connect(rs.address(0))
        await honest.wait(lambda: honest.decisions, 5, "a decision")
        await c.connect(rs.address(0))
        await c.wait(lambda: c.decisions, 5, "a decision")
        c.ack(G, (0, 999_999_999))
        # An ack of the real epoch after it: once that one is counted, the first was handled.
        c.ack(G, (latest.era, latest.revision))
        await wait_for(lambda: _liar_acked(leader), 5, "the acks read")
        assert not _liar_acked(leader, beyond=True)
        assert await _acked(rs.address(0), "liar") == (latest.era, latest.revision)
    finally:
        await c.close()
        await honest.close()
        await rs.stop_all()


def _liar_acked(leader, beyond: bool = False) -> bool:  # type: ignore[no-untyped-def]
    for s in leader.hub.sessions.values():
        if s.host_id == "liar" and G in s.acked:
            return s.acked[G].revision >= 999_999_999 if beyond else s.acked[G].revision > 0
    return False
