"""The framed local relay: strategies' messages over a Unix stream socket, no gRPC on the hot path.

Frames are ``failover.wire.frames`` (4-byte big-endian length + body); bodies are the
``failover.v1`` sidecar messages of the gRPC Relay stream:

- strategy -> sidecar: a first ``RelayRequest{open}`` naming the strategy (the hello),
  then one ``RelayRequest{message}`` per message;
- sidecar -> strategy: ``RelayEvent``s (one outcome per message, venue events of the
  strategy's orders) and, when the sidecar closes the connection, a last
  ``RelayEvent{closed}`` with the reason.

Messages enter the same ``OrderPath`` as the gRPC stream's (one ledger, the same outcomes;
in-doubt resolution is the gRPC ``ResolveInDoubt``). A bad frame, an oversized length, an
unknown strategy or a strategy that does not read its outcomes closes that connection
alone, with a reason frame and one log line.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from google.protobuf.message import DecodeError

from failover.log_limit import OUTSIDE_INPUT
from failover.reading import CopyingReader
from failover.v1 import sidecar_pb2 as spb
from failover.wire.frames import HEADER, MAX_FRAME_BYTES, FrameError, FrameReader
from failover_sidecar.agent import Agent
from failover_sidecar.orders import OrderPath, RelayError, shown
from failover_sidecar.path import corked
from failover_sidecar.service import (
    HALF_CLOSED_WAIT_S,
    MAX_PAYLOAD_BYTES,
    _refused,
    _still_owed,
    no_open,
)

log = logging.getLogger(__name__)

MAX_FRAME = MAX_FRAME_BYTES
UNREAD_LIMIT_BYTES = 4 * 1024 * 1024
"""Outcome bytes a strategy may leave unread before its connection is closed (never dropped)."""

_pack = HEADER.pack


class FramedConnection(CopyingReader):
    """One strategy's connection. Outcomes are written in one batch per event-loop pass."""

    def __init__(self, server: FramedServer) -> None:
        self._server = server
        self._orders = server.orders
        self._reader = FrameReader(MAX_FRAME)
        self._transport: asyncio.Transport | None = None
        self.strategy_id = ""
        self._out: list[bytes] = []
        self._closing = False
        self.relayed = 0  # messages of this connection that entered the order path
        self._hello_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._server.connections.add(self)
        ms = self._server.agent.cfg.listen.hello_timeout_ms
        self._hello_timer = asyncio.get_running_loop().call_later(ms / 1000, self._no_hello, no_open(ms))

    def _no_hello(self, reason: str) -> None:
        if not self.strategy_id:
            self.close_with(reason)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            frames = self._reader.feed(data)
        except FrameError as exc:
            self._handle(exc.frames)
            self.close_with(f"bad framing: {exc.reason}")
            return
        self._handle(frames)

    def eof_received(self) -> bool:
        """The client closed its sending side: what it sent still gets its outcomes, then
        the last ``closed`` frame (every message gets exactly one outcome, docs/api.md)."""
        if self._closing:
            return False
        if not self.strategy_id:
            self.close_with("the client closed its side before open{strategy_id}")
            return True  # close_with closes once its frame is written
        timer = asyncio.get_running_loop().call_later(HALF_CLOSED_WAIT_S, self._half_closed_end)

        def delivered(_f: asyncio.Future[None]) -> None:
            timer.cancel()
            self._half_closed_end()

        self._orders.all_delivered(self.strategy_id).add_done_callback(delivered)
        return True

    def _half_closed_end(self) -> None:
        owed = self._orders.owed(self.strategy_id)
        if owed:
            self.close_with(_still_owed(owed))
        else:
            self.close_with("the client closed its side; every outcome sent", level=logging.INFO)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._server.connections.discard(self)
        self._cancel_hello_timer()
        self._release_sink()

    def _cancel_hello_timer(self) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None

    def _release_sink(self) -> None:
        """Outcomes from now on stay in the ledger only (ResolveInDoubt), as after a gRPC stream ends."""
        if self.strategy_id:
            self._orders.detach(self.strategy_id, self.sink)

    # --- frames in --------------------------------------------------------

    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) > 1:
            with corked():  # one write per venue line for the whole burst
                self._handle_each(frames)
        else:
            self._handle_each(frames)

    def _handle_each(self, frames: list[bytes]) -> None:
        orders, sink = self._orders, self.sink
        for body in frames:
            if self._closing:
                return
            try:
                req = spb.RelayRequest.FromString(body)
            except DecodeError:
                self.close_with(f"bad frame: {len(body)} bytes that are not a RelayRequest")
                return
            kind = req.WhichOneof("kind")
            if not self.strategy_id:
                self._hello(req, kind)
                continue
            if kind != "message":
                if kind == "ping":  # the client's liveness check: answered in this loop pass
                    sink(spb.RelayEvent(pong=spb.RelayPong(seq=req.ping.seq)))
                    continue
                self.close_with(f"bad frame: expected a message, got {kind or 'an empty request'}")
                return
            m = req.message
            if len(m.payload) > MAX_PAYLOAD_BYTES:
                sink(_refused(m, f"payload: {len(m.payload)} bytes, over the {MAX_PAYLOAD_BYTES} limit"))
                continue
            try:
                orders.submit(self.strategy_id, m)
                self.relayed += 1
            except RelayError as exc:
                sink(_refused(m, str(exc)))

    def _hello(self, req: spb.RelayRequest, kind: str | None) -> None:
        if kind != "open":
            self.close_with("the first frame must be RelayRequest{open{strategy_id}}")
            return
        sid = req.open.strategy_id
        agent: Agent = self._server.agent
        if sid not in agent.cfg.strategies:
            self.close_with(f"strategy_id: {shown(sid)} is not allowed on host {agent.cfg.host_id}")
            return
        self.strategy_id = sid
        self._cancel_hello_timer()
        self._orders.attach(sid, self.sink, self.close_with)  # the older connection is closed
        log.info("strategy %s connected over the framed socket", sid)

    # --- events out -------------------------------------------------------

    def sink(self, ev: spb.RelayEvent) -> None:
        """OrderPath's sink: queue the event; the first one of a pass schedules the flush."""
        if self._closing:
            return
        body = ev.SerializeToString()
        out = self._out
        if not out:
            asyncio.get_running_loop().call_soon(self._flush)
        out.append(_pack(len(body)))
        out.append(body)

    def _flush(self) -> None:
        t = self._transport
        if not self._out or t is None or t.is_closing():
            self._out.clear()
            return
        data = b"".join(self._out)
        self._out.clear()
        t.write(data)
        if t.get_write_buffer_size() > UNREAD_LIMIT_BYTES:
            # Never drop an outcome silently: close; the client reports what it still
            # waits for as IN_DOUBT, and ResolveInDoubt tells.
            log.error(
                "strategy %s does not read its outcomes (%d bytes unread); closing its framed connection",
                self.strategy_id,
                t.get_write_buffer_size(),
            )
            self._closing = True
            self._release_sink()
            t.abort()

    def close_with(self, reason: str, level: int = logging.WARNING) -> None:
        """Send the reason frame after any queued events, then close this connection only."""
        if self._closing:
            return
        self._closing = True
        self._release_sink()
        t = self._transport
        log.log(
            level,
            "framed connection%s closed: %s",
            f" of strategy {self.strategy_id}" if self.strategy_id else "",
            reason,
            extra=OUTSIDE_INPUT,
        )
        if t is None or t.is_closing():
            return
        closed = spb.RelayEvent(closed=spb.RelayClosed(reason=reason, nothing_relayed=self.relayed == 0))
        body = closed.SerializeToString()
        self._out.append(_pack(len(body)))
        self._out.append(body)
        data = b"".join(self._out)
        self._out.clear()
        t.write(data)
        t.close()  # after the buffer drains


class FramedServer:
    """The framed socket's listener and its connections; ``stop`` closes them all."""

    def __init__(self, agent: Agent, orders: OrderPath) -> None:
        self.agent = agent
        self.orders = orders
        self.connections: set[FramedConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: FramedConnection(self), path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            c.close_with("the sidecar is stopping")
        if self._server is not None:
            await self._server.wait_closed()
