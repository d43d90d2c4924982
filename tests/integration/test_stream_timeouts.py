"""The Sync stream's hello and acknowledgement timeouts come from the config."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from failover import rpc
from failover.v1 import sync_pb2, sync_pb2_grpc
from tests.harness import ReplicaSet, switch
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster


async def test_a_stream_without_hello_ends_after_the_configured_hello_timeout(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"hello_timeout_ms": 300})
    await rs.start_all()
    silent = asyncio.Event()

    async def nothing() -> AsyncIterator[sync_pb2.SidecarMessage]:
        await silent.wait()
        return
        yield  # pragma: no cover - an async generator that never yields

    channel = rpc.channel(rs.address(0))
    try:
        call = sync_pb2_grpc.SyncStub(channel).Stream(nothing())
        started = time.monotonic()
        async with asyncio.timeout(8):  # the default hello timeout is 10 s
            async for _ in call:
                pass
        took = time.monotonic() - started
        assert took < 5, f"the stream without hello lasted {took:.2f}s (hello_timeout_ms 300)"
    finally:
        silent.set()
        await channel.close()
        await rs.stop_all()


async def test_an_unacknowledged_push_is_replaced_after_the_configured_ack_timeout(
    etcd_cluster, prefix
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"ack_timeout_ms": 200})
    await rs.start_all()
    client = SyncClient("h1", ["cme-orders"], auto_ack=False)
    try:
        await rs.wait_leader()
        await client.connect(rs.address(0))
        await client.wait(lambda: bool(client.snapshots), 5, "the snapshot")
        await switch(rs.address(0), "cme-orders", "backup")
        await client.wait(lambda: len(client.decisions) == 1, 5, "the first decision")
        # Not acknowledged: the next decision is held until the ack timeout, then sent.
        started = time.monotonic()
        await switch(rs.address(0), "cme-orders", "primary")
        await client.wait(
            lambda: len(client.decisions) == 2, 4.5, "the second decision (default ack timeout 5 s)"
        )
        took = time.monotonic() - started
        assert list(client.decisions[-1].paths)[0] == "primary"
        assert took < 4.5, took
    finally:
        await client.close()
        await rs.stop_all()
