"""``FramedRelay``: the relay over the sidecar's framed socket (``listen.framed_socket``).

The same promise and calls as ``Sidecar``'s relay (``submit``/``send``/``close``,
``events``, ``closed``, ``error``), without gRPC on the hot path: each message is one
length-prefixed protobuf frame written at once, and outcomes come back as frames
(docs/api.md).

    async with await FramedRelay.connect("/run/failover/h1.framed.sock", "s1") as fr:
        outcome = await fr.send("cme-orders", b'{"sym":"ESZ6","qty":1}')

Every ``submit``/``send`` resolves exactly once: ACKED/REJECTED/IN_DOUBT/NO_PATH from
the sidecar; when the connection ends, every message still waiting becomes IN_DOUBT
(it may have reached the venue: ask ``Sidecar.resolve_in_doubt`` over gRPC), or
REJECTED when the sidecar refused the connection before any message entered its order
path (unknown strategy, bad first frame); a message submitted after that, or after
``close``, gets NO_PATH (nothing was written).

A paused or hung sidecar keeps its socket open and answers nothing, so the connection
carries its own liveness check, as gRPC's keepalive pings do for ``Sidecar``: after
``keepalive_s`` without a frame from the sidecar the client sends a ping, and ends the
connection when nothing arrives within ``keepalive_timeout_s`` after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from types import TracebackType
from typing import cast

from google.protobuf.message import DecodeError

from failover.reading import CopyingReader
from failover.v1 import sidecar_pb2 as spb
from failover.wire.frames import (
    HEADER,
    MAX_EVENT_FRAME_BYTES,
    MAX_FRAME_BYTES,
    FrameError,
    FrameReader,
    frame,
)
from failover_client.liveness import PingClock
from failover_client.outcomes import OutcomeBook

log = logging.getLogger(__name__)

_pack = HEADER.pack
_NEW, _CANCEL = spb.MESSAGE_KIND_NEW_ORDER, spb.MESSAGE_KIND_CANCEL


class FramedRelay(OutcomeBook, CopyingReader):
    """One strategy's framed connection to its host's sidecar. Create with ``await FramedRelay.connect``."""

    def __init__(
        self, strategy_id: str, keepalive_s: float | None = 1.0, keepalive_timeout_s: float = 1.0
    ) -> None:
        super().__init__(strategy_id)
        self._alive = PingClock(keepalive_s, keepalive_timeout_s) if keepalive_s is not None else None
        self._clock = time.monotonic
        self._timer: asyncio.TimerHandle | None = None
        self._reader = FrameReader(MAX_EVENT_FRAME_BYTES)
        self._transport: asyncio.Transport | None = None
        self.closed = asyncio.Event()
        self._closing = False
        self._close_done = asyncio.Event()
        self.error = ""
        self._refused_at_open = False
        self._local_close = False

    @classmethod
    async def connect(
        cls,
        path: str,
        strategy_id: str,
        timeout_s: float = 5.0,
        *,
        keepalive_s: float | None = 1.0,
        keepalive_timeout_s: float = 1.0,
    ) -> FramedRelay:
        """Connect and send the hello; OSError when the socket cannot be reached (nothing sent).

        The sidecar checks the strategy id when the hello arrives: a refusal closes the
        connection, and the messages submitted meanwhile resolve REJECTED.
        ``keepalive_s=None`` turns the liveness check off (a send may then wait as long
        as the sidecar is paused).
        """
        if keepalive_s is not None and not (keepalive_s > 0 and keepalive_timeout_s > 0):
            raise ValueError(
                f"keepalive_s and keepalive_timeout_s must be > 0 (got {keepalive_s}, {keepalive_timeout_s})"
            )
        loop = asyncio.get_running_loop()
        path = path.removeprefix("unix:")
        async with asyncio.timeout(timeout_s):
            _, fr = await loop.create_unix_connection(
                lambda: cls(strategy_id, keepalive_s, keepalive_timeout_s), path
            )
        hello = spb.RelayRequest(open=spb.RelayOpen(strategy_id=strategy_id)).SerializeToString()
        assert fr._transport is not None
        fr._transport.write(frame(hello))
        return fr

    # --- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        if self._alive is not None:
            self._alive.heard = loop.time()
            self._timer = loop.call_at(self._alive.heard + self._alive.every_s, self._check_alive)

    def data_received(self, data: bytes) -> None:
        if self._alive is not None:
            self._alive.heard = self._clock()
        try:
            frames = self._reader.feed(data)
        except FrameError as exc:
            frames = exc.frames
            self.error = f"bad framing from the sidecar: {exc.reason}"
        on_outcome = self._on_outcome
        for body in frames:
            try:
                ev = spb.RelayEvent.FromString(body)
            except DecodeError:
                self.error = self.error or "bad frame from the sidecar: not a RelayEvent"
                break
            kind = ev.WhichOneof("kind")
            if kind == "outcome":
                on_outcome(ev.outcome)
            elif kind == "venue_event":
                self.events.put_nowait(ev.venue_event)
            elif kind == "closed":
                self.error = f"the sidecar closed the connection: {ev.closed.reason}"
                self._refused_at_open = ev.closed.nothing_relayed
            # "pong": hearing anything is the answer (``PingClock.heard``)
        if self.error and self._transport is not None:
            self._transport.abort()

    def _check_alive(self) -> None:
        """Ping after ``keepalive_s`` of silence; end the connection when the ping goes unanswered."""
        self._timer = None
        t, alive = self._transport, self._alive
        if t is None or t.is_closing() or self.closed.is_set() or alive is None:
            return
        loop = asyncio.get_running_loop()
        # Read events run before timers in a loop pass: an answer already here was seen.
        verdict, at = alive.check(loop.time())
        if verdict == "dead":
            self.error = alive.silence()
            log.warning("strategy %s: %s; ending the framed connection", self.strategy_id, self.error)
            t.abort()
            return
        if verdict == "ping":
            t.write(frame(spb.RelayRequest(ping=spb.RelayPing(seq=alive.seq)).SerializeToString()))
        self._timer = loop.call_at(at, self._check_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if exc is not None and not self.error:
            self.error = f"{type(exc).__name__}: {exc}"
        self.closed.set()
        if self._refused_at_open:
            kind, why = spb.OUTCOME_KIND_REJECTED, "the sidecar refused the connection"
        elif self._local_close:
            kind, why = spb.OUTCOME_KIND_IN_DOUBT, "the client closed before the outcome arrived"
        else:
            kind, why = spb.OUTCOME_KIND_IN_DOUBT, "connection to the sidecar ended"
        self._settle_all(kind, f"{why}: {self.error}" if self.error else why)

    # --- sending ----------------------------------------------------------

    def submit(
        self, group: str, payload: bytes | str, *, msg_id: int | None = None, cancel_of: int | None = None
    ) -> tuple[int, asyncio.Future[spb.Outcome]]:
        """Write one message now; returns its id and a future for its one outcome.

        Resolved at once, with nothing sent, after ``close`` or once the connection has
        ended (NO_PATH), and for an id still waiting for its outcome (REJECTED).
        """
        mid = msg_id if msg_id is not None else next(self._ids)
        fut: asyncio.Future[spb.Outcome] = asyncio.get_running_loop().create_future()
        t = self._transport
        ended = self.closed.is_set() or t is None or t.is_closing()
        refusal = self._refusal(mid, self._closing, ended, self.error)
        if refusal is not None:
            fut.set_result(spb.Outcome(client_msg_id=mid, kind=refusal[0], reason=refusal[1]))  # type: ignore[arg-type]
            return mid, fut
        assert t is not None
        body = spb.RelayRequest(
            message=spb.RelayMessage(
                group=group,
                client_msg_id=mid,
                payload=payload.encode() if isinstance(payload, str) else payload,
                kind=_CANCEL if cancel_of else _NEW,
                cancel_msg_id=cancel_of or 0,
            )
        ).SerializeToString()
        if len(body) > MAX_FRAME_BYTES:
            # The sidecar would refuse the frame's length by closing the connection, and
            # everything else on it with it: refused here, nothing sent.
            reason = f"library: message of {len(body)} bytes is over the {MAX_FRAME_BYTES}-byte frame limit"
            fut.set_result(spb.Outcome(client_msg_id=mid, kind=spb.OUTCOME_KIND_REJECTED, reason=reason))
            return mid, fut
        self._pending[mid] = fut
        t.write(_pack(len(body)) + body)
        return mid, fut

    async def send(
        self, group: str, payload: bytes | str, *, msg_id: int | None = None, cancel_of: int | None = None
    ) -> spb.Outcome:
        """Send one message and wait for its one outcome."""
        _, fut = self.submit(group, payload, msg_id=msg_id, cancel_of=cancel_of)
        return await fut

    async def close(self, timeout_s: float = 2.0) -> None:
        """Stop sending, wait up to ``timeout_s`` for outstanding outcomes, then close the connection.

        Messages still without an outcome then resolve IN_DOUBT (they were written);
        later ``submit`` calls resolve NO_PATH at once. Idempotent: a second call
        waits for the first to finish.
        """
        if self._closing:
            await self._close_done.wait()
            return
        self._closing = True
        try:
            if self._pending and not self.closed.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        await asyncio.wait(list(self._pending.values()))
            t = self._transport
            if t is not None and not self.closed.is_set():
                self._local_close = True
                t.close()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout_s):
                        await self.closed.wait()
                if not self.closed.is_set():
                    t.abort()
                    await self.closed.wait()
        finally:
            self._close_done.set()

    async def __aenter__(self) -> FramedRelay:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
