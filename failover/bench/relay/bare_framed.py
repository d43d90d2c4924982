"""The bare framed relay: the floor the sidecar's framed transport is compared with.

A child process that does only what any framed relay must: accept a Unix-socket
connection, cut its frames (``failover.wire.frames``), decode each ``RelayRequest``,
write a ``new`` order to the venue on one logged-on session, and send back a
``RelayEvent{outcome ACKED}`` frame when the venue's ack arrives. No ledger, no route, no
health, no stage timings, no allow-list: what is left of the sidecar's framed row above
this one is the cost of those.

    python -m failover.bench.relay.bare_framed --socket PATH --gateway HOST:PORT

Prints ``ready`` once it serves; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import cast

from failover.bench.relay.direct import DirectClient
from failover.bench.serve_child import child_main, until_stopped
from failover.reading import CopyingReader
from failover.v1 import sidecar_pb2 as spb
from failover.wire import protocol as vp
from failover.wire.frames import HEADER, FrameError, FrameReader, frame

_pack = HEADER.pack
_ACKED, _REJECTED = spb.OUTCOME_KIND_ACKED, spb.OUTCOME_KIND_REJECTED


class BareConnection(CopyingReader):
    """One framed strategy connection: frames in, venue orders out, outcome frames back."""

    def __init__(self, venue: DirectClient) -> None:
        self.venue = venue
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameError:
            assert self.transport is not None
            self.transport.abort()
            return
        for body in frames:
            req = spb.RelayRequest.FromString(body)
            kind = req.WhichOneof("kind")
            if kind == "ping":  # the client's liveness check, as the sidecar answers it
                assert self.transport is not None
                self.transport.write(
                    frame(spb.RelayEvent(pong=spb.RelayPong(seq=req.ping.seq)).SerializeToString())
                )
            if kind != "message":
                continue
            self.venue.submit().add_done_callback(functools.partial(self._reply, req.message.client_msg_id))

    def _reply(self, mid: int, f: asyncio.Future[vp.Message]) -> None:
        t = self.transport
        if t is None or t.is_closing() or f.cancelled():
            return
        exc = f.exception()
        ok = exc is None and f.result()["t"] == vp.MsgType.ACK
        body = spb.RelayEvent(
            outcome=spb.Outcome(client_msg_id=mid, kind=_ACKED if ok else _REJECTED, path="primary")
        ).SerializeToString()
        t.write(_pack(len(body)) + body)


async def serve(socket: str, gateway: str) -> None:
    loop = asyncio.get_running_loop()
    venue = await DirectClient.connect(gateway, "bench-bare-framed", "bare-")
    server = await loop.create_unix_server(lambda: BareConnection(venue), socket)
    try:
        await until_stopped()
    finally:
        server.close()
        await venue.logout()


def main(argv: list[str] | None = None) -> int:
    return child_main(__doc__ or "", "bare_framed", {"socket": str, "gateway": str}, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
