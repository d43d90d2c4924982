"""Cancelling the coordinator link always ends it, even while messages pour in.

On Python 3.11 ``asyncio.wait_for`` returns the inner result instead of raising
when a cancel arrives in the same loop step as that result, so a link reading
with it could swallow the cancel that SIGTERM sends, and keep looping.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

from failover_sidecar.stream import CoordinatorLink

from failover import rpc
from failover.v1 import sync_pb2, sync_pb2_grpc

ROUNDS = 60


class Flood(sync_pb2_grpc.SyncServicer):  # type: ignore[misc]
    """A replica that sends a snapshot, then heartbeats as fast as it can."""

    async def Stream(
        self, requests: AsyncIterator[sync_pb2.SidecarMessage], context: Any
    ) -> AsyncIterator[sync_pb2.ReplicaMessage]:
        fresh = sync_pb2.Freshness(replica_id="r")
        yield sync_pb2.ReplicaMessage(snapshot=sync_pb2.Snapshot(freshness=fresh))
        beat = sync_pb2.ReplicaMessage(heartbeat=sync_pb2.Heartbeat())
        while True:
            yield beat


async def test_cancel_ends_the_link_while_messages_pour_in() -> None:
    server = rpc.make_server()
    sync_pb2_grpc.add_SyncServicer_to_server(Flood(), server)
    port = rpc.bind(server, "127.0.0.1:0")
    await server.start()
    rng = random.Random(7)
    try:
        for _ in range(ROUNDS):
            link = CoordinatorLink(
                host_id="h1",
                site="default",
                groups=["g"],
                addresses=[f"127.0.0.1:{port}"],
                held=dict,
                on_definition=lambda g: None,
                on_decision=lambda d, s: (0, 0),
                full_health=sync_pb2.HealthReport,
            )
            task = asyncio.create_task(link.run())
            while not link.status.connected:  # noqa: ASYNC110 - nothing announces it
                await asyncio.sleep(0.001)
            await asyncio.sleep(rng.random() * 0.005)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=3)
            assert done, "the link swallowed its cancel and kept running"
            assert task.cancelled()
    finally:
        await server.stop(0)


async def test_a_cancel_that_grpc_turns_into_a_cancelled_rpc_error_still_ends_the_link(monkeypatch) -> None:
    """A cancel swallowed inside a gRPC call, which then ends as a failed call: the link
    took that for a failed stream, backed off and went on, and a SIGTERMed sidecar stayed
    up (its task listing showed the link in its backoff sleep after the signal). The
    task's pending cancel request (``Task.cancelling``) is what counts."""
    import grpc

    link = CoordinatorLink(
        host_id="h1",
        site="default",
        groups=["g"],
        addresses=["127.0.0.1:1"],
        held=dict,
        on_definition=lambda g: None,
        on_decision=lambda d, s: (0, 0),
        full_health=sync_pb2.HealthReport,
    )
    entered = asyncio.Event()

    async def session(address: str) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(), "Locally cancelled"
            ) from None

    monkeypatch.setattr(link, "_session", session)
    task = asyncio.create_task(link.run())
    await asyncio.wait_for(entered.wait(), 3)
    task.cancel()  # once, as a TaskGroup does
    done, _ = await asyncio.wait({task}, timeout=3)
    assert done, "the link took its own cancel for a failed stream and kept running"
    assert task.cancelled()
