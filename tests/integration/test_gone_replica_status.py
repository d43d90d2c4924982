"""A replica that stopped answering stays in `failover status`, named unreachable.

Found from outside: a killed (or paused) follower was named unreachable only in the first
~1.5 s; once its lease expired its members key went with it, and `status`, `sync` and
`sidecars` showed a healthy-looking cluster of the replicas left (`unreachable_replicas: []`).
A replica that was registered in the last 10 minutes and is not any more is still asked,
and named unreachable with how long ago it left etcd.
"""

from __future__ import annotations

import pytest

from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.harness import ReplicaSet, admin, wait_for

pytestmark = pytest.mark.cluster


async def test_a_stopped_replica_is_still_named_unreachable(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        await rs.wait_leader()
        r0 = rs.replicas[0]
        gone_id = rs.replicas[1].cfg.replica_id
        await wait_for(lambda: gone_id in r0.view.members, 10, "both registered")
        await rs.stop(1)
        await wait_for(lambda: gone_id not in r0.view.members, 10, "its members key gone")
        async with admin(rs.address(0)) as stub:
            st = await stub.GetStatus(apb.GetStatusRequest(), timeout=10)
        by_id = {r.replica_id: r for r in st.replicas}
        assert gone_id in by_id, [r.replica_id for r in st.replicas]
        gone = by_id[gone_id]
        assert not gone.reachable and "not registered in etcd" in gone.error, gone
    finally:
        await rs.stop_all()


_ = admin_pb2_grpc  # the stub type comes from tests.harness.admin
