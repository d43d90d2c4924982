"""The direct strategy: this process speaking the venue protocol itself (logon, then ``new`` -> ``ack``).

The floor the relay is compared with: the same venue, the same messages, no sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import cast

from failover.bench.relay.rig import PAYLOAD
from failover.bench.report import BenchFailure
from failover.reading import CopyingReader
from failover.wire import protocol as vp
from failover.wire.address import parse_host_port


class DirectClient(CopyingReader):
    """A minimal strategy speaking the venue protocol itself: logon, then ``new`` -> ``ack``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, prefix: str) -> None:
        self.loop = loop
        self.prefix = prefix
        self.transport: asyncio.Transport | None = None
        self.decoder = vp.FrameDecoder()
        self.seq = vp.SeqTracker()
        self.logged_on = False
        self.logon_reply: asyncio.Future[vp.Message] = loop.create_future()
        self.logout_ack: asyncio.Future[None] = loop.create_future()
        self.pending: dict[str, asyncio.Future[vp.Message]] = {}
        self.error = ""
        self.seq_gaps = 0
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, address: str, sender: str, prefix: str, timeout: float = 5.0) -> DirectClient:
        loop = asyncio.get_running_loop()
        host, port = parse_host_port(address)
        async with asyncio.timeout(timeout):
            _, client = await loop.create_connection(lambda: cls(loop, prefix), host, port)
            client.write(vp.logon(sender, 0))
            reply = await client.logon_reply
        if reply["t"] != vp.MsgType.LOGON_ACK:
            client.close()
            raise BenchFailure(f"direct logon to {address} refused: {reply.get('reason')}")
        client.seq.reset()
        client.logged_on = True
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            msgs = self.decoder.feed(data)
        except vp.ProtocolError as exc:
            msgs = exc.decoded
            self._fail(f"framing error from the venue: {exc.reason}")
        for m in msgs:
            t = m["t"]
            if self.logged_on and self.seq.check(m) is not None:
                self.seq_gaps += 1
            if t == vp.MsgType.ACK or t == vp.MsgType.REJECT:
                fut = self.pending.pop(str(m.get("clordid")), None)
                if fut is not None and not fut.done():
                    fut.set_result(m)
            elif t == vp.MsgType.LOGON_ACK or t == vp.MsgType.LOGON_REJECT:
                if not self.logon_reply.done():
                    self.logon_reply.set_result(m)
            elif t == vp.MsgType.LOGOUT_ACK:
                if not self.logout_ack.done():
                    self.logout_ack.set_result(None)
            elif t == vp.MsgType.SESSION_REJECT:
                self._fail(f"the venue rejected a message of the direct session: {m.get('reason')}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"the venue closed the direct connection ({exc!r})" if exc else "the venue closed it")
        if not self.logout_ack.done():
            self.logout_ack.set_result(None)

    def _fail(self, reason: str) -> None:
        self.error = self.error or reason
        for fut in (self.logon_reply, *self.pending.values()):
            if not fut.done():
                fut.set_exception(BenchFailure(f"direct: {self.error}"))
        self.pending.clear()
        if self.transport is not None:
            self.transport.abort()

    def write(self, msg: vp.Message) -> None:
        if self.transport is None or self.transport.is_closing():
            raise BenchFailure(f"direct: not connected ({self.error or 'closed'})")
        self.transport.write(vp.encode(msg))

    def submit(self) -> asyncio.Future[vp.Message]:
        """Send one new order with a unique clordid; the future gets its ack (or reject)."""
        cid = f"{self.prefix}{next(self._ids)}"
        fut: asyncio.Future[vp.Message] = self.loop.create_future()
        self.pending[cid] = fut
        self.write(self.seq.stamp(vp.new_order(cid, PAYLOAD)))
        return fut

    async def logout(self, timeout: float = 2.0) -> None:
        if self.transport is not None and not self.transport.is_closing() and self.logged_on:
            self.write(self.seq.stamp(vp.logout()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.logout_ack), timeout)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def check_direct(m: vp.Message) -> None:
    if m["t"] != vp.MsgType.ACK:
        raise BenchFailure(f"direct: order {m.get('clordid')} got {m['t']}: {m.get('reason', '')}")
