"""CopyingReader: the data path's protocols read into one buffer per connection.

Real sockets (a socketpair through the event loop): what ``data_received`` gets must be
exactly the bytes sent, as immutable copies that the next read cannot overwrite.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from failover_client.framed import FramedRelay
from failover_sidecar.framed import FramedConnection
from failover_sidecar.path import _Link

from failover.bench.relay.bare_framed import BareConnection
from failover.bench.relay.direct import DirectClient
from failover.reading import READ_BUFFER_BYTES, CopyingReader
from failover.venue.session import Connection


class Collect(CopyingReader):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.total = 0
        self.arrived = asyncio.Event()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.total += len(data)
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _pair() -> tuple[Collect, socket.socket]:
    ours, theirs = socket.socketpair()
    _, proto = await asyncio.get_running_loop().create_connection(Collect, sock=ours)
    theirs.setblocking(False)
    return proto, theirs


async def _until(proto: Collect, total: int) -> None:
    async with asyncio.timeout(5):
        while proto.total < total:
            proto.arrived.clear()
            await proto.arrived.wait()


async def test_each_read_is_an_immutable_copy_the_next_read_does_not_touch() -> None:
    proto, peer = await _pair()
    try:
        peer.send(b"first")
        await _until(proto, 5)
        kept = proto.chunks[0]
        peer.send(b"SECOND")
        await _until(proto, 11)
        assert kept == b"first"
        assert all(type(c) is bytes for c in proto.chunks)
        assert b"".join(proto.chunks) == b"firstSECOND"
    finally:
        peer.close()


async def test_more_than_one_buffer_arrives_whole_and_in_order() -> None:
    proto, peer = await _pair()
    data = bytes(range(256)) * (3 * READ_BUFFER_BYTES // 256 + 7)
    try:
        await asyncio.get_running_loop().sock_sendall(peer, data)
        await _until(proto, len(data))
        assert b"".join(proto.chunks) == data
        assert max(len(c) for c in proto.chunks) <= READ_BUFFER_BYTES
    finally:
        peer.close()
    async with asyncio.timeout(5):
        await proto.closed


@pytest.mark.parametrize(
    "cls", [_Link, FramedConnection, FramedRelay, Connection, DirectClient, BareConnection]
)
def test_every_data_path_protocol_reads_into_its_own_buffer(cls: type) -> None:
    # A plain asyncio.Protocol would make the transport allocate 256 KiB per read.
    assert issubclass(cls, CopyingReader)
