"""A replica with ``election.campaign: false`` never leads, yet serves streams and passes
operator calls on: replicas that campaign can be kept free of streams (docs/deploy.md,
"Stream-only replicas")."""

from __future__ import annotations

import pytest

from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, admin, config, switch, wait_for
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster
G = "cme-orders"


async def test_a_stream_only_replica_serves_forwards_and_never_leads(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    rs.configs[1] = config("s1", etcd_cluster.endpoints, prefix, election={"campaign": False})
    c = SyncClient("h1", [G])
    try:
        # The stream-only replica first: it must not take the free election key.
        stream_only = await rs.start(1)
        await wait_for(lambda: G in stream_only.view.groups, 10, "the seeded group definition")
        async with admin(rs.address(1)) as stub:
            st = await stub.GetStatus(apb.GetStatusRequest(), timeout=5)
        assert not st.leader.replica_id
        assert [(r.replica_id, r.streams_only, r.is_leader) for r in st.replicas] == [("s1", True, False)]
        assert not stream_only.election.is_leader and G not in stream_only.view.routes
        assert not stream_only.view.candidates  # never registered: no leader hands the key to it

        candidate = await rs.start(0)
        leader = await rs.wait_leader()
        assert leader is candidate
        # A sidecar on the stream-only replica gets the snapshot, a Switch sent there is
        # committed by the leader, and the decision is pushed on the stream.
        await c.connect(rs.address(1))
        await c.wait(lambda: c.snapshots, 5, "snapshot")
        c.report({(G, "primary"): pb.PATH_STATE_UP, (G, "backup"): pb.PATH_STATE_UP})
        r = await switch(rs.address(1), G, "backup")
        assert list(r.decision.paths) == ["backup", "primary"]
        assert leader.leader.recent[-1].epoch.revision == r.decision.epoch.revision
        await c.wait(lambda: c.decisions and list(c.decisions[-1].paths)[0] == "backup", 5, "pushed decision")
        # Its sidecar's health reaches the leader through it.
        await wait_for(lambda: "h1" in leader.health.current.table.hosts, 5, "the leader to know h1")

        # With the only candidate stopped there is no leader, and the stream-only replica
        # does not become one; its sidecar keeps the last decision.
        await rs.stop(0)
        await wait_for(lambda: not stream_only.view.candidates, 10, "the candidate key to go")
        assert not stream_only.election.is_leader
        assert list(c.decisions[-1].paths)[0] == "backup"
    finally:
        await c.close()
        await rs.stop_all()
