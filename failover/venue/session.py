"""One client connection to a gateway: framing, logon, sequence numbers, order handling.

Built on ``asyncio.Protocol`` rather than streams because a *stall* must stop reading
at the transport (``pause_reading``) so that what the client writes meanwhile stays
in the kernel buffer, as with a real hung gateway; a StreamReader would keep
pulling bytes in and its own flow control would resume reading behind our back.

Replies leave at once when the connection is healthy (no task hop: the benchmark
measures this path): the replies to what one read brought are written together, in
one system call, as the read's last step (one write per reply cost the simulator a
fifth of its CPU at 64 orders in flight). When it is slow or stalled they go through
an outbox drained by a small writer task: each reply is due ``delay_ms`` after it was
produced, and order (hence ``seq``) is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING, cast

from failover.log_limit import OUTSIDE_INPUT
from failover.reading import CopyingReader
from failover.wire import protocol as p
from failover.wire.protocol import MessageError, MsgType, ProtocolError

if TYPE_CHECKING:
    from failover.venue.gateway import Gateway

log = logging.getLogger(__name__)


class Connection(CopyingReader):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.core = gateway.core
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.sender: str | None = None
        self.slot = ""  # the client's name for the session (logon's optional ``slot``)
        self.session_id = ""
        self.heartbeat_ms = 0
        self.logged_on = False
        self._decoder = p.FrameDecoder()
        self._failed = False  # framing error seen: nothing more is read
        self._closing = False  # logout or framing error: close once the outbox is flushed
        self._in_seq = 1  # next client seq expected
        self._out_seq = 0
        self._inbox: deque[p.Message | ProtocolError] = deque()
        self._outbox: deque[tuple[float, bytes | None]] = deque()  # (due, frame); None: close
        self._stalled = False
        self._resume = asyncio.Event()
        self._resume.set()
        self._writer: asyncio.Task[None] | None = None
        self._cork: list[bytes] | None = None  # replies held while one read is handled
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # ------------------------------------------------------------ properties

    @property
    def gateway_name(self) -> str:
        return self.gateway.name

    @property
    def stalled(self) -> bool:
        return self._stalled

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self._closing

    @property
    def live(self) -> bool:
        return self.logged_on and self.open and not self._stalled

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.gateway.connection_opened(self)
        self.refresh_faults()

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return
        try:
            self._inbox.extend(self._decoder.feed(data))
        except ProtocolError as exc:
            self._failed = True
            self._inbox.extend(exc.decoded)
            self._inbox.append(exc)
            if self.transport is not None:
                self.transport.pause_reading()
        self._drain()

    def eof_received(self) -> bool | None:
        return None  # close our side too: the client is gone

    def connection_lost(self, exc: Exception | None) -> None:
        if self._writer is not None:
            self._writer.cancel()
        self._outbox.clear()
        self._inbox.clear()
        self.gateway.connection_closed(self)
        if self.logged_on:
            self.logged_on = False
            cancelled = self.core.session_lost(self)
            self.gateway.stats.cancels += len(cancelled)
        self.core.changed()
        if not self.lost.done():
            self.lost.set_result(None)

    # ------------------------------------------------------------ faults

    def refresh_faults(self) -> None:
        """Follow the gateway's fault state: stall or resume this connection."""
        stalled = self.gateway.faults.stalled(self.sender)
        transport = self.transport
        if transport is None or stalled == self._stalled:
            return
        self._stalled = stalled
        if stalled:
            self._resume.clear()
            transport.pause_reading()
        else:
            self._resume.set()
            if not self._failed and not transport.is_closing():
                transport.resume_reading()
            self._drain()
        self.core.changed()

    def supersede(self) -> None:
        """A newer logon of our sender and slot on this gateway replaces this session: drop it now
        (as a connection lost without logout: cancel-on-disconnect applies)."""
        log.info(
            "session %s of %s on gateway %s replaced by a new logon: closed",
            self.session_id,
            self.sender,
            self.gateway_name,
        )
        self.core.unregister(self)
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once (reset): unsent replies are lost.

        The socket is shut down here, so the peer sees the close when the fault is
        injected: ``transport.abort`` alone closes it in a later loop callback, a
        delay of the simulator (0.1-0.2 ms measured) a failover benchmark would count.
        """
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and not transport.is_closing():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        transport.abort()

    # ------------------------------------------------------------ sending

    def send(self, msg: p.Message) -> None:
        """Stamp ``seq`` (inside a session) and send, or queue when slow or stalled."""
        transport = self.transport
        if transport is None or transport.is_closing() or self._closing:
            return
        if self.logged_on and msg["t"] not in p.UNSEQUENCED_TYPES:
            self._out_seq += 1
            msg["seq"] = self._out_seq
        frame = p.encode(msg)
        delay_ms = self.gateway.faults.delay_ms(self.sender)
        if delay_ms == 0 and not self._stalled and not self._outbox:
            if self._cork is not None:
                self._cork.append(frame)
            else:
                transport.write(frame)
            return
        self._queue(asyncio.get_running_loop().time() + delay_ms / 1000.0, frame)

    def _flush_cork(self) -> None:
        frames, self._cork = self._cork, None
        transport = self.transport
        if frames and transport is not None and not transport.is_closing():
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def _close_when_flushed(self) -> None:
        self._flush_cork()
        self._closing = True
        if self.transport is None:
            return
        if not self._outbox and not self._stalled:
            self.transport.close()
        else:
            self._queue(0.0, None)

    def _queue(self, due: float, frame: bytes | None) -> None:
        self._outbox.append((due, frame))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
            self.gateway.track(self._writer)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._outbox:
                await self._resume.wait()
                due, frame = self._outbox[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue  # a stall may have begun meanwhile
                self._outbox.popleft()
                transport = self.transport
                if transport is None or transport.is_closing():
                    return
                if frame is None:
                    transport.close()
                    return
                transport.write(frame)
        finally:
            self._writer = None

    # ------------------------------------------------------------ receiving

    def _drain(self) -> None:
        """Handle buffered messages in order until none are left or the connection stalls;
        their replies leave in one write at the end."""
        self._cork = []
        try:
            handled = self._handle_inbox()
        finally:
            self._flush_cork()
        if handled:
            self.core.changed()

    def _handle_inbox(self) -> bool:
        handled = False
        while self._inbox and not self._stalled and self.open:
            item = self._inbox.popleft()
            handled = True
            if isinstance(item, ProtocolError):
                log.info(
                    "gateway %s: framing error from %s: %s",
                    self.gateway.name,
                    self.peer,
                    item.reason,
                    extra=OUTSIDE_INPUT,
                )
                self.send(p.session_reject(0, f"framing error: {item.reason}"))
                self._inbox.clear()
                self._close_when_flushed()
                break
            self._handle(item)
        return handled

    def _handle(self, msg: p.Message) -> None:
        t = msg["t"]
        if not self.logged_on:
            if t == MsgType.LOGON:
                self._on_logon(msg)
            elif t == MsgType.HB and isinstance(msg.get("id"), int):
                self.send(p.hb(msg["id"]))  # liveness probe of a connected, not logged-on line
            else:
                self.send(p.session_reject(p.get_seq(msg) or 0, f"{t}: not logged on"))
            return
        seq = p.get_seq(msg)
        if seq is None:
            self.send(p.session_reject(0, f"{t}: missing or bad seq"))
            return
        if seq != self._in_seq:
            reason = f"{t}: expected seq {self._in_seq}, got {seq}"
            self._in_seq = max(self._in_seq, seq + 1)
            self.send(p.session_reject(seq, reason))
            return
        self._in_seq += 1
        try:
            self._dispatch(t, msg)
        except MessageError as exc:
            self.send(p.session_reject(seq, exc.reason))

    def _dispatch(self, t: str, msg: p.Message) -> None:
        gw = self.gateway
        book = self.core.book
        assert self.sender is not None
        if t == MsgType.HB:
            self.send(p.hb(p.get_int(msg, "id")))
        elif t == MsgType.NEW:
            clordid = p.get_str(msg, "clordid")
            payload = msg.get("payload", "")
            if not isinstance(payload, str):
                raise MessageError("new: field 'payload' must be a string")
            outcome = book.new(
                clordid, self.sender, session=self.session_id, gateway=gw.name, payload=payload
            )
            if outcome.accepted:
                gw.stats.orders += 1
                self.send(p.ack(clordid, outcome.order_id))
            else:
                gw.stats.duplicates += outcome.duplicate
                self.send(p.reject(clordid, outcome.reason))
        elif t == MsgType.CANCEL:
            clordid = p.get_str(msg, "clordid")
            orig = p.get_str(msg, "orig")
            outcome = book.cancel(clordid, orig, self.sender, session=self.session_id, gateway=gw.name)
            if outcome.accepted:
                gw.stats.cancels += 1
                self.send(p.ack(clordid, outcome.order_id))
            else:
                gw.stats.duplicates += outcome.duplicate
                self.send(p.reject(clordid, outcome.reason))
        elif t == MsgType.STATUS:
            clordid = p.get_str(msg, "clordid")
            state, order_id = book.status(clordid)
            self.send(p.status_reply(clordid, state, order_id))
        elif t == MsgType.LOGOUT:
            self.send(p.logout_ack())
            self.logged_on = False
            self.core.unregister(self)  # a clean end: no cancel-on-disconnect
            self._close_when_flushed()
        elif t == MsgType.LOGON:
            raise MessageError("logon: already logged on")
        else:
            raise MessageError(f"unknown message type {t!r}")

    def _on_logon(self, msg: p.Message) -> None:
        gw = self.gateway
        try:
            sender = p.get_str(msg, "sender")
            heartbeat_ms = p.get_int(msg, "heartbeat_ms", minimum=0)
            slot = p.get_str(msg, "slot", allow_empty=True) if "slot" in msg else ""
        except MessageError as exc:
            self.send(p.logon_reject(exc.reason))
            return
        self.core.known_senders.add(sender)
        if gw.faults.reset(sender):
            self.abort()  # a reset session is refused: the line just drops
            return
        if gw.faults.logon_refused(sender):
            self.send(p.logon_reject(f"logons refused by gateway {gw.name}"))
            return
        if self.core.single_session:
            existing = self.core.sessions_of(sender)
            if existing:
                where = existing[0].gateway_name
                self.send(p.logon_reject(f"sender {sender!r} already has a session (gateway {where})"))
                return
        # A logon with a slot replaces the sender's older session of that slot on this
        # gateway, closed before it is acknowledged: nothing it still carries (bytes a stalled
        # line or a proxy holds for a connection the client gave up) is read after it, so a
        # message the venue does not know once the client is logged on again never reaches it.
        if slot:
            for old in self.core.sessions_of(sender):
                if old.gateway_name == gw.name and old.slot == slot and old is not self:
                    old.supersede()
        self.slot = slot
        self.sender = sender
        self.heartbeat_ms = heartbeat_ms
        self.session_id = self.core.new_session_id(gw.name)
        self.logged_on = True
        gw.stats.logons += 1
        gw.stats.logons_by_session[sender] += 1
        self.core.register(self)
        self.refresh_faults()  # a stalled sender's logon ack waits like everything else
        self.send(p.logon_ack(self.session_id, gw.name))
