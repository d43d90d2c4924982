"""A group stored by an older version outside today's bounds is skipped, not served.

Found from outside: a group seeded with ``policy: {fail_hosts: 4294967296}`` (uint32 on
the wire) made every GetStatus and every Sync stream fail with ``UNKNOWN: Unexpected
ValueError: Value out of range``. The model now refuses it on the way in; a replica that
finds one already in etcd logs it as unreadable and serves every other group.
"""

from __future__ import annotations

import json

import pytest

from coordinator.store.etcd_store import EtcdStore
from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, wait_for
from tests.procs import group
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster
G = "cme-orders"


async def test_an_out_of_range_stored_group_does_not_break_status_or_streams(etcd_cluster, prefix) -> None:
    store = EtcdStore(etcd_cluster.endpoints)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    c = SyncClient("h1", [G])
    try:
        await store.put(prefix + "groups/huge", json.dumps(group("huge", fail_hosts=2**32)).encode())
        many = group("many", paths=tuple(f"p{i}" for i in range(70)))
        await store.put(prefix + "groups/many", json.dumps(many).encode())
        await rs.start_all()
        r = await rs.wait_leader()
        await wait_for(lambda: G in r.view.routes, 10, "initial decision")
        async with admin(rs.address(0)) as stub:
            st = await stub.GetStatus(apb.GetStatusRequest(hosts=True), timeout=5)
        assert [g.definition.name for g in st.groups] == [G]
        await c.connect(rs.address(0))
        await c.wait(lambda: c.snapshots, 5, "snapshot")
        assert [g.name for g in c.snapshots[0].groups] == [G]
    finally:
        await c.close()
        await rs.stop_all()
        await store.close()
