"""Stream heartbeats: a long proof-of-life interval, and freshness news sent at once."""

from __future__ import annotations

import time

import pytest

from tests.harness import ReplicaSet, wait_for
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster
G = "cme-orders"
INTERVAL_MS = 6000


async def test_a_replica_turning_stale_tells_its_sidecars_without_waiting_for_the_heartbeat(
    etcd_cluster, prefix
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"heartbeat_interval_ms": INTERVAL_MS})
    await rs.start_all()
    c = SyncClient("h1", [G])
    try:
        r = await rs.wait_leader()
        await wait_for(lambda: G in r.view.routes, 10, "initial decision")
        await c.connect(rs.address(0))
        await c.wait(lambda: c.snapshots, 5, "snapshot")
        await c.wait(lambda: c.heartbeats, INTERVAL_MS / 1000 + 5, "a first heartbeat")
        before = len(c.heartbeats)
        assert not c.stale
        r.view.mark_restore("a test says so")  # stale for the sidecars from now on
        started = time.monotonic()
        # Generous bound, far below the interval: the next regular heartbeat is ~6 s away.
        await c.wait(lambda: c.stale, 2.0, "a stale heartbeat")
        assert time.monotonic() - started < 2.0
        assert len(c.heartbeats) == before + 1
    finally:
        await c.close()
        await rs.stop_all()
