"""A sidecar told to call a stream dead sooner than its replica heartbeats keeps the stream.

Seen in the fault tier: replicas heartbeat every second (the default), the tier's
sidecars said `stream.dead_after_ms: 1000`, and every stream was dropped as dead
whenever a heartbeat came a little late. The replica now announces its interval in
its freshness, and the sidecar waits at least 3 of them.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from failover_sidecar.stream import CoordinatorLink

from failover.v1 import sync_pb2
from tests.harness import ReplicaSet, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


async def test_a_short_dead_after_does_not_drop_a_healthy_stream(own_etcd, prefix) -> None:
    rs = ReplicaSet(own_etcd.endpoints, prefix, n=1, stream={"heartbeat_interval_ms": 1000})
    link = CoordinatorLink(
        host_id="h1",
        site="default",
        groups=["cme-orders"],
        addresses=[rs.address(0)],
        held=dict,
        on_definition=lambda g: None,
        on_decision=lambda d, s: (0, 0),
        full_health=sync_pb2.HealthReport,
        dead_after_ms=500,  # shorter than one heartbeat interval
    )
    task: asyncio.Task[None] | None = None
    try:
        await rs.start_all()
        r = await rs.wait_leader()
        await wait_for(lambda: not r.freshness.state.stale, 10, "a fresh replica")
        task = asyncio.create_task(link.run())
        await wait_for(lambda: link.status.connected, 10, "the stream")
        moves = link.status.moves
        until = time.monotonic() + 3.5  # three heartbeat intervals and then some
        while time.monotonic() < until:
            await asyncio.sleep(0.05)
            assert link.status.moves == moves, "the stream was called dead between two heartbeats"
        assert link.status.connected
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await rs.stop_all()
