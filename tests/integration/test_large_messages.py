"""Answers larger than stream.max_message_bytes: a sidecar's snapshot is sent in pieces
that each fit, and an operator's status is not held to the sidecar message limit."""

from __future__ import annotations

import pytest

from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, wait_for
from tests.procs import group
from tests.syncclient import SyncClient

pytestmark = [pytest.mark.cluster]

LIMIT = 16 * 1024
WIDE = tuple(f"line{i:02d}" for i in range(64))  # a definition of about 2 KB
NAMES = [f"venue{i:03d}-orders" for i in range(40)]  # 40 of them: about 5x LIMIT


def _replicas(endpoints: list[str], prefix: str) -> ReplicaSet:
    groups = [group(n, paths=WIDE, base_port=20000) for n in NAMES]
    return ReplicaSet(endpoints, prefix, n=1, groups=groups, stream={"max_message_bytes": LIMIT})


async def test_a_snapshot_larger_than_the_message_limit_arrives_in_pieces(etcd_cluster, prefix) -> None:
    rs = _replicas(etcd_cluster.endpoints, prefix)
    host = SyncClient("h1", NAMES)
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: all(n in leader.view.routes for n in NAMES), 20, "a decision for every group")
        await host.connect(rs.address(0))
        await host.wait(lambda: len(host.held) == len(NAMES), 20, "every group's decision")
        assert {d.name for d in host.definitions} == set(NAMES)
        assert len(host.snapshots) > 1
        assert all(s.ByteSize() <= LIMIT for s in host.snapshots)
        assert host.error is None
    finally:
        await host.close()
        await rs.stop_all()


async def test_status_larger_than_the_sidecar_message_limit_answers(etcd_cluster, prefix) -> None:
    rs = _replicas(etcd_cluster.endpoints, prefix)
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: all(n in leader.view.routes for n in NAMES), 20, "a decision for every group")
        async with admin(rs.address(0)) as stub:
            status = await stub.GetStatus(apb.GetStatusRequest(), timeout=10)
        assert status.ByteSize() > LIMIT
        assert {g.definition.name for g in status.groups} >= set(NAMES)
    finally:
        await rs.stop_all()
