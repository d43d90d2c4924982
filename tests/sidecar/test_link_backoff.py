"""While every replica says it is stale, the link backs off instead of cycling through them.

A quorum loss makes every replica report itself stale at once; without backoff
each sidecar reconnects every few tens of milliseconds, a storm of connections
and log lines at the worst moment. The replicas here are real gRPC servers on
loopback that answer every stream with a stale snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from failover_sidecar.stream import Backoff, CoordinatorLink

from failover import rpc
from failover.v1 import sync_pb2, sync_pb2_grpc

WINDOW_S = 3.0


class Stale(sync_pb2_grpc.SyncServicer):  # type: ignore[misc]
    """A replica that answers every stream with a stale snapshot, counting them."""

    def __init__(self, stale: bool = True) -> None:
        self.streams = 0
        self.stale = stale

    async def Stream(
        self, requests: AsyncIterator[sync_pb2.SidecarMessage], context: Any
    ) -> AsyncIterator[sync_pb2.ReplicaMessage]:
        self.streams += 1
        fresh = sync_pb2.Freshness(replica_id="r", stale=self.stale, stale_reason="no quorum")
        yield sync_pb2.ReplicaMessage(snapshot=sync_pb2.Snapshot(freshness=fresh))
        while True:
            await asyncio.sleep(0.05)
            yield sync_pb2.ReplicaMessage(heartbeat=sync_pb2.Heartbeat(freshness=fresh))


async def test_every_replica_stale_backs_off_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    servicers = [Stale(), Stale(), Stale()]
    servers, addresses = [], []
    for s in servicers:
        server = rpc.make_server()
        sync_pb2_grpc.add_SyncServicer_to_server(s, server)
        addresses.append(f"127.0.0.1:{rpc.bind(server, '127.0.0.1:0')}")
        await server.start()
        servers.append(server)
    link = CoordinatorLink(
        host_id="h1",
        site="default",
        groups=["g"],
        addresses=addresses,
        held=dict,
        on_definition=lambda g: None,
        on_decision=lambda d, s: (0, 0),
        full_health=sync_pb2.HealthReport,
    )
    caplog.set_level(logging.INFO, logger="failover_sidecar.stream")
    task = asyncio.create_task(link.run())
    try:
        await asyncio.sleep(WINDOW_S)  # the storm is a rate over a duration
        attempts = sum(s.streams for s in servicers)
        # No backoff: a round of 3 every ~0.1 s, > 60 in 3 s. Backoff 50 ms doubling
        # to 2 s: about 6 rounds.
        assert attempts <= 30, f"{attempts} streams opened in {WINDOW_S}s while every replica is stale"
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        # Each replica once, then the backoff once.
        assert len(warnings) <= len(servicers) + 1, [r.getMessage() for r in warnings]
        # A replica that is fresh again is picked up within the cap of the backoff.
        for s in servicers:
            s.stale = False
        async with asyncio.timeout(2.0 * 1.25 + 2.0):
            while not (link.status.connected and not link.status.stale_reason):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for server in servers:
            await server.stop(0)


def test_backoff_doubles_to_the_cap_with_jitter_and_resets() -> None:
    b = Backoff(initial_s=0.05, cap_s=2.0, jitter=0.2, rand=lambda: 1.0)
    delays = [b.next() for _ in range(8)]
    assert delays[0] == pytest.approx(0.05 * 1.2)
    assert all(d <= 2.0 * 1.2 + 1e-9 for d in delays) and delays[-1] == pytest.approx(2.0 * 1.2)
    assert delays == sorted(delays)
    b.reset()
    assert b.next() == pytest.approx(0.05 * 1.2)
    low = Backoff(initial_s=0.05, cap_s=2.0, jitter=0.2, rand=lambda: 0.0)
    assert low.next() == pytest.approx(0.05 * 0.8)
