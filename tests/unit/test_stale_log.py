"""While every replica is stale the sidecar retries every ~100 ms; it logs the change, not
every attempt (a line per replica when it turns stale). An in-process Sync server
(real gRPC on loopback) answers stale snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from failover_sidecar.stream import CoordinatorLink

from failover import rpc
from failover.v1 import sync_pb2, sync_pb2_grpc


class StaleSync(sync_pb2_grpc.SyncServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.sessions = 0
        self.session_started = asyncio.Event()
        self.reason = "no linearizable read for 1.6s: etcd has no quorum"

    async def Stream(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        self.sessions += 1
        self.session_started.set()
        await anext(aiter(requests))
        fresh = sync_pb2.Freshness(replica_id="c1", stale=True, stale_reason=self.reason)
        yield sync_pb2.ReplicaMessage(snapshot=sync_pb2.Snapshot(freshness=fresh))
        with contextlib.suppress(StopAsyncIteration):
            async for _ in requests:
                pass


async def test_a_stale_replica_is_logged_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    server = rpc.make_server()
    svc = StaleSync()
    sync_pb2_grpc.add_SyncServicer_to_server(svc, server)
    port = rpc.bind(server, "127.0.0.1:0")
    await server.start()
    link = CoordinatorLink(
        host_id="h1",
        site="default",
        groups=["g"],
        addresses=[f"127.0.0.1:{port}"],
        held=dict,
        on_definition=lambda d: None,
        on_decision=lambda d, s: (0, 0),
        full_health=sync_pb2.HealthReport,
        retry_ms=20,
    )
    caplog.set_level(logging.INFO, logger="failover_sidecar.stream")
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(20):
            while svc.sessions < 8:
                svc.session_started.clear()
                await svc.session_started.wait()
                if svc.sessions == 4:
                    svc.reason = "watch lags 80 revisions behind etcd"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await server.stop(None)
    stale_lines = [r.getMessage() for r in caplog.records if "stale" in r.getMessage()]
    # once when the replica turned stale; its reason (which carries an age) changing is no news
    assert len(stale_lines) == 1, stale_lines
    assert "quorum" in stale_lines[0]
