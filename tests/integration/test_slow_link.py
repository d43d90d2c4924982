"""A coordinator behind 250 ms of latency is still reachable (the connect timeout is not the
reconnect backoff), by the CLI's channel and by a sidecar's Sync stream."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from failover import rpc
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.harness import ReplicaSet
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster

DELAY_S = 0.25


class DelayProxy:
    """A TCP proxy on loopback that delivers every chunk DELAY_S after it arrived, both ways."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        self._host, port = upstream.rsplit(":", 1)
        self._port = int(port)
        self._delay = delay_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(self._host, self._port)
        pumps = [asyncio.create_task(self._pump(reader, up_w)), asyncio.create_task(self._pump(up_r, writer))]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in pumps:
                t.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            for w in (writer, up_w):
                w.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    dst.write_eof() if dst.can_write_eof() else None
                    return
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await src.read(65536)
                queue.put_nowait((loop.time() + self._delay, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_a_coordinator_250ms_away_answers_status_and_streams(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    proxy = DelayProxy(rs.address(0), DELAY_S)
    await proxy.start()
    sc = SyncClient("far-host", ["cme-orders"])
    try:
        await rs.wait_leader()
        async with rpc.channel(proxy.address) as ch:
            st = await admin_pb2_grpc.AdminStub(ch).GetStatus(apb.GetStatusRequest(), timeout=10)
        assert st.leader.replica_id == "c1"
        await sc.connect(proxy.address)
        await sc.wait(lambda: bool(sc.decisions), 10, "the first decision over the slow link")
    finally:
        await sc.close()
        await proxy.stop()
        await rs.stop_all()
