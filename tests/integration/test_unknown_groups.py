"""A sidecar asking for a group the cluster does not define (a typo) is told so, and says so."""

from __future__ import annotations

import asyncio
import logging

import pytest
from failover_sidecar.stream import CoordinatorLink

from failover.v1 import sync_pb2
from tests.harness import ReplicaSet, never_listing, wait_for
from tests.syncclient import SyncClient

pytestmark = [pytest.mark.cluster]
G = "cme-orders"
TYPO = "cme-ordres"


async def test_the_snapshot_names_the_groups_the_cluster_does_not_define(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    host = SyncClient("h1", [G, TYPO])
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "a decision")
        await host.connect(rs.address(0))
        await host.wait(lambda: bool(host.snapshots), 10, "the snapshot")
        assert list(host.snapshots[0].unknown_groups) == [TYPO]
    finally:
        await host.close()
        await rs.stop_all()


async def test_the_sidecar_warns_once_of_a_group_the_cluster_does_not_define(
    etcd_cluster, prefix, caplog: pytest.LogCaptureFixture
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    defined: list[str] = []
    link = CoordinatorLink(
        host_id="h1",
        site="default",
        groups=[G, TYPO],
        addresses=[rs.address(0)],
        held=dict,
        on_definition=lambda g: defined.append(g.name),
        on_decision=lambda d, s: (d.epoch.era, d.epoch.revision),
        full_health=sync_pb2.HealthReport,
    )
    task: asyncio.Task[None] | None = None
    try:
        await rs.start_all()
        await rs.wait_leader()
        with caplog.at_level(logging.WARNING, logger="failover_sidecar.stream"):
            task = asyncio.create_task(link.run())
            await wait_for(lambda: G in defined, 10, "the definition")
        warned = [
            r.getMessage()
            for r in caplog.records
            if r.name == "failover_sidecar.stream" and TYPO in r.getMessage()
        ]
        assert len(warned) == 1 and "does not define" in warned[0], warned
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await rs.stop_all()


async def test_a_replica_still_listing_etcd_names_no_group_unknown(etcd_cluster, prefix) -> None:
    """Its view is empty until the listing is in: every group would look undefined (a false
    "typo?" warning on every sidecar during a rolling restart)."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    host = SyncClient("h1", [G])
    try:
        async with never_listing(etcd_cluster.endpoints, prefix) as late:
            await host.connect(late.cfg.listen)
            await host.wait(lambda: bool(host.snapshots), 10, "the snapshot")
            assert host.snapshots[0].freshness.stale
            assert list(host.snapshots[0].unknown_groups) == []
    finally:
        await host.close()
        await rs.stop_all()
