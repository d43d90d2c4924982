"""A tiny asyncio client of the venue protocol, for tests (ours and other components').

It stamps ``seq`` on what it sends once logged on, checks the venue's ``seq`` on what
it receives (gaps are recorded in ``seq_errors``), and puts every decoded message on
a queue. Every wait takes a timeout, so a broken venue fails a test instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from failover.wire import protocol as p
from failover.wire.address import parse_host_port

DEFAULT_TIMEOUT_S = 2.0
_READ_CHUNK = 65536


class Closed(ConnectionError):
    """The venue closed (or reset) the connection."""


class VenueClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.messages: asyncio.Queue[p.Message | None] = asyncio.Queue()  # None: connection ended
        self.logged_on = False
        self.session = ""
        self.seq = p.SeqTracker()
        self.seq_errors: list[str] = []
        self.close_error: BaseException | None = None  # why reading stopped (None: clean EOF)
        self._ended = False
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, address: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> VenueClient:
        """Open a TCP connection to ``host:port``; raises OSError (e.g. ConnectionRefusedError)."""
        host, port = parse_host_port(address)
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def __aenter__(self) -> VenueClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ receiving

    async def _read_loop(self) -> None:
        decoder = p.FrameDecoder()
        try:
            while data := await self._reader.read(_READ_CHUNK):
                for msg in decoder.feed(data):
                    self._check_seq(msg)
                    self.messages.put_nowait(msg)
        except (OSError, p.ProtocolError) as exc:
            self.close_error = exc
        finally:
            self.messages.put_nowait(None)

    def _check_seq(self, msg: p.Message) -> None:
        if msg["t"] == p.MsgType.LOGON_ACK:
            self.seq.reset()
        elif self.logged_on or "seq" in msg:
            error = self.seq.check(msg)
            if error is not None:
                self.seq_errors.append(error)

    async def recv(self, timeout: float = DEFAULT_TIMEOUT_S) -> p.Message:
        """The next message; Closed if the connection ended, TimeoutError if none came in time."""
        if self._ended:
            raise Closed("connection closed by the venue")
        async with asyncio.timeout(timeout):
            msg = await self.messages.get()
        if msg is None:
            self._ended = True
            raise Closed("connection closed by the venue")
        return msg

    async def expect(self, t: str, timeout: float = DEFAULT_TIMEOUT_S, **fields: Any) -> p.Message:
        """The next message, asserted to be of type ``t`` with the given field values."""
        msg = await self.recv(timeout)
        if msg["t"] != t or any(msg.get(k) != v for k, v in fields.items()):
            raise AssertionError(f"expected {t} {fields or ''}, got {msg}")
        return msg

    async def expect_silence(self, seconds: float) -> None:
        """Assert that nothing arrives (and the connection stays open) for ``seconds``."""
        try:
            msg = await self.recv(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected silence, got {msg}")

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait until the venue closes the connection, skipping whatever arrives first."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self.recv(timeout)
                except Closed:
                    return

    # ------------------------------------------------------------ sending

    def send(self, msg: p.Message, *, seq: int | None = None) -> p.Message:
        """Send a message, stamping the next ``seq`` when logged on (or the one given)."""
        if seq is not None:
            msg["seq"] = seq
        elif self.logged_on:
            self.seq.stamp(msg)
        self.send_raw(p.encode(msg))
        return msg

    def send_raw(self, data: bytes) -> None:
        self._writer.write(data)

    async def logon(
        self, sender: str, heartbeat_ms: int = 50, timeout: float = DEFAULT_TIMEOUT_S, slot: str = ""
    ) -> p.Message:
        """Log on; returns ``logon_ack`` or ``logon_reject`` (the next message either way)."""
        self.send(p.logon(sender, heartbeat_ms, slot))
        reply = await self.recv(timeout)
        if reply["t"] == p.MsgType.LOGON_ACK:
            self.logged_on = True
            self.session = reply["session"]
        return reply

    def hb(self, hb_id: int) -> p.Message:
        return self.send(p.hb(hb_id))

    def new(self, clordid: str, payload: str = "") -> p.Message:
        return self.send(p.new_order(clordid, payload))

    def cancel(self, clordid: str, orig: str) -> p.Message:
        return self.send(p.cancel(clordid, orig))

    def status(self, clordid: str) -> p.Message:
        return self.send(p.status(clordid))

    def logout(self) -> p.Message:
        msg = self.send(p.logout())
        self.logged_on = False
        return msg

    async def request(self, msg: p.Message, timeout: float = DEFAULT_TIMEOUT_S) -> p.Message:
        """Send and return the next message (fine when nothing else is in flight)."""
        self.send(msg)
        return await self.recv(timeout)

    # ------------------------------------------------------------ closing

    async def close(self) -> None:
        """Close our side and stop the reader task (idempotent)."""
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
