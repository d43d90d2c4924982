"""``PathSession``: one warm connection to one path's endpoint (the venue simulator's framed TCP protocol).

A session keeps its path at the configured warmth, reconnects with bounded
exponential backoff (with jitter) whenever it goes DOWN, and reports every change of
state as a ``PathStatus`` through ``on_state``. Venue messages other than ``hb`` and
``logon_ack`` go to ``on_message`` unchanged (acks, rejects, fills, unsolicited
cancels, status replies, session rejects, logon rejects, logout acks).

Warmth:

- ``logged_on``: TCP + logon as ``host_id`` + a heartbeat every interval. UP once the
  venue acknowledges the logon (within ``logon_timeout_ms``, its own deadline: a
  logon may take longer than the silence budget of an established session); orders
  can be sent.
- ``connected``: TCP only, no session (for venues that allow one logged-on session
  per sender). UP once TCP is connected. Liveness is the TCP state, plus (by default,
  ``probe_connected``) a heartbeat, which the simulator's protocol answers before
  logon. A venue that answers nothing before logon needs ``probe_connected=False``,
  and then a stalled gateway is not noticed on a connected-only line. ``send``
  refuses (returns False): there is no session. ``warm_up()`` logs on.
- ``cold``: nothing until ``await warm_up()``.

Why a path goes DOWN: see ``Cause`` (``status.py``). After any DOWN the socket is
aborted before reconnecting; that matters for SILENT, where a stalled venue keeps
the socket open.

Silence: an idle line is declared SILENT when nothing has arrived for
``silent_after`` heartbeat intervals, checked at that instant (not at the next
tick). A line that carries orders is watched more closely (``ReplyWatch``): when
the oldest order written on it has had no ack or reject for ``max(k x RTT median,
floor)``, a heartbeat probe goes out at once, and an unanswered probe (within
``max(k x RTT median, probe floor)``) declares the line SILENT (detail
``order_timeout``), typically some 10 ms after a stall instead of 150 ms.

Loop-lag guard: a blocked event loop looks like silence on every line (replies sit
unread, heartbeats are not sent). The checker measures its own lateness and reports
it to the ``SilenceGuard`` shared by the sessions of a process; when the loop lagged
since the last sign of life, or every watched line is silent at once, the session
probes and waits one more interval before declaring SILENT.

The clock (``clock``, seconds, default ``time.monotonic``) must advance in real
seconds: the heartbeat task sleeps on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import replace
from typing import cast

from failover.aio import cancel_and_wait
from failover.reading import CopyingReader
from failover.wire import protocol as p
from failover.wire.address import parse_host_port
from failover_sidecar.liveness import (
    Backoff,
    Heartbeats,
    ReplyWatch,
    SilenceCheck,
    SilenceGuard,
    Verdict,
    default_guard,
)
from failover_sidecar.status import Cause, PathState, PathStatus, Warmth

log = logging.getLogger(__name__)

_OWES_REPLY = frozenset({p.MsgType.NEW, p.MsgType.CANCEL})  # answered by an ack or a reject
_REPLIES = frozenset({p.MsgType.ACK, p.MsgType.REJECT})
# An UP path's round trip is compared with the one last reported at most this often, and
# reported again when its p99 moved by a quarter and at least 0.5 ms.
RTT_CHECK_S = 1.0
RTT_MOVED_FRACTION = 0.25
RTT_MOVED_US = 500.0


class _Cork(threading.local):
    """Writes to venue links inside ``corked()`` are gathered per link, in order, and each
    link's are written with one system call when the block ends: a burst of orders cut from
    one read of a strategy's socket costs one ``send`` per venue line, not one per order.
    The block is synchronous (nothing awaits inside), so no link can end in between; the
    state is per thread, as each event loop (and its links) is."""

    def __init__(self) -> None:
        self.depth = 0
        self.pending: dict[_Link, list[bytes]] = {}

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for link, chunks in pending.items():
            t = link.transport
            if t is not None and not t.is_closing():
                t.write(b"".join(chunks))


_cork = _Cork()


@contextlib.contextmanager
def corked() -> Iterator[None]:
    """Gather venue writes until the block ends (see ``_Cork``); nests."""
    _cork.depth += 1
    try:
        yield
    finally:
        _cork.depth -= 1
        if not _cork.depth and _cork.pending:
            _cork.flush()


class _Link(CopyingReader):
    """One TCP connection; events go to the owner tagged with the link, so stale ones are ignored."""

    def __init__(self, owner: PathSession, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.decoder = p.FrameDecoder()
        self.seq = p.SeqTracker()
        self.ended: asyncio.Future[None] = loop.create_future()
        self.last_rx = owner.clock()
        self.logged_on = False
        self.logon_pending = False
        self.session = ""
        # Logged on, not UP yet: the id of the heartbeat whose echo proves the line (0: none
        # owed). A logon answer alone says nothing of the line's round trip.
        self.proving = 0
        self.gateway = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.last_rx = self.owner.clock()
        self.owner._on_made(self)

    def data_received(self, data: bytes) -> None:
        self.owner._on_data(self, data)

    def eof_received(self) -> bool | None:
        # The venue closed: DOWN now. ``connection_lost`` comes a loop iteration later, and
        # orders written in between would go to a line the venue no longer reads.
        self.owner._on_lost(self, None)
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._on_lost(self, exc)

    def write(self, msg: p.Message) -> None:
        if self.transport is not None and not self.transport.is_closing():
            data = p.encode(msg)
            if _cork.depth:
                _cork.pending.setdefault(self, []).append(data)
            else:
                self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class PathSession:
    """Keeps one path warm; see the module docstring. Use from one event loop."""

    def __init__(
        self,
        group: str,
        path: str,
        endpoint: str,
        host_id: str,
        *,
        warmth: Warmth | str = Warmth.LOGGED_ON,
        heartbeat_interval_ms: int = 50,
        silent_after: int = 3,
        backoff_min_ms: int = 50,
        backoff_max_ms: int = 2000,
        on_state: Callable[[PathStatus], None] | None = None,
        on_message: Callable[[str, p.Message], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        guard: SilenceGuard | None = None,
        probe_connected: bool = True,
        connect_timeout_ms: int = 1000,
        logon_timeout_ms: int = 1000,
        rtt_window: int = 200,
        rng: random.Random | None = None,
        order_probe: bool = True,
        order_timeout_rtt_multiple: float = 4.0,
        order_timeout_floor_ms: float = 5.0,
        probe_timeout_floor_ms: float = 5.0,
        probe_timeout_per_owed_us: float = 50.0,
    ) -> None:
        if heartbeat_interval_ms <= 0 or silent_after < 1:
            raise ValueError("heartbeat_interval_ms must be > 0 and silent_after >= 1")
        if not host_id:
            raise ValueError("host_id must be non-empty")
        self.group = group
        self.path = path
        self.endpoint = endpoint
        self.host_id = host_id
        self._hostport = parse_host_port(endpoint)
        self._warmth = Warmth(warmth)
        self.configured_warmth = self._warmth  # as defined (``warm_up`` raises ``warmth`` only)
        self._interval = heartbeat_interval_ms / 1000.0
        self._silent_s = silent_after * self._interval
        self._connect_timeout = connect_timeout_ms / 1000.0
        self._logon_timeout = logon_timeout_ms / 1000.0
        self._probe_connected = probe_connected
        self._on_state = on_state
        self._on_message = on_message
        self.clock = clock
        self.guard = guard if guard is not None else default_guard
        self._backoff = Backoff(backoff_min_ms, backoff_max_ms, rng)
        self._hb = Heartbeats(rtt_window)
        self._rtt_checked = 0.0  # when the reported round trip was last compared with the window
        self.rtt = self._hb.rtt  # recent round trips (µs) of heartbeat echoes
        self.connections_opened = 0
        self.seq_gaps = 0  # venue messages with an unexpected seq (logged, not fatal)
        self._status = PathStatus(
            group, path, PathState.DOWN, None, None, None, self._warmth, None, 0, clock()
        )
        self._link: _Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._stopping = False
        self._stop_task: asyncio.Task[None] | None = None
        self._silence = SilenceCheck(self._interval, self._silent_s, self.guard)
        self._order_probe = order_probe
        self.replies = ReplyWatch(
            self.rtt,
            self.guard,
            rtt_multiple=order_timeout_rtt_multiple,
            floor_s=order_timeout_floor_ms / 1000.0,
            probe_floor_s=probe_timeout_floor_ms / 1000.0,
            per_owed_s=probe_timeout_per_owed_us / 1e6,
            quiet_limit_s=self._silent_s,
            alone=lambda: self.guard.others_up(self) == 0,
        )
        self._reply_timer: asyncio.Handle | None = None
        self._reply_due = 0.0
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ public API

    @property
    def status(self) -> PathStatus:
        """The latest status, with the current RTT percentiles."""
        return replace(self._status, rtt_p50_us=self.rtt.percentile(50), rtt_p99_us=self.rtt.percentile(99))

    @property
    def is_up(self) -> bool:
        return self._status.state is PathState.UP

    @property
    def warmth(self) -> Warmth:
        return self._warmth

    @property
    def can_send(self) -> bool:
        """UP with a logged-on session: ``send`` will write."""
        return self.is_up and self._link is not None and self._link.logged_on

    async def start(self) -> None:
        """Start keeping the path warm (a cold session waits for ``warm_up``). Idempotent."""
        if self._started:
            return
        self._started = True
        self.guard.register(self)
        if self._warmth is not Warmth.COLD:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"path {self.path}")

    async def warm_up(self, warmth: Warmth | str = Warmth.LOGGED_ON, timeout_s: float = 5.0) -> bool:
        """Raise the warmth (cold -> connected/logged_on, connected -> logged_on); return whether UP at it.

        Waits until the session is UP at the new warmth, fails (DOWN), or ``timeout_s`` passes.
        """
        target = Warmth(warmth)
        if target is Warmth.COLD:
            raise ValueError("warm_up needs logged_on or connected")
        if not self._started or self._stopping:
            raise RuntimeError("warm_up needs a started, not stopped, session")
        if self._warmth is Warmth.COLD or (self._warmth is Warmth.CONNECTED and target is Warmth.LOGGED_ON):
            was_cold = self._warmth is Warmth.COLD
            self._warmth = target
            link = self._link
            if was_cold:
                self._task = asyncio.get_running_loop().create_task(self._run(), name=f"path {self.path}")
            elif link is not None and self.is_up and not link.logged_on:
                self._begin_logon(link)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not (self.is_up and self._status.warmth is self._warmth):
                    self._changed.clear()
                    await self._changed.wait()
                    if self._status.state is PathState.DOWN:
                        break
        return self.is_up

    def send(self, msg: p.Message) -> bool:
        """Stamp the session ``seq`` on ``msg`` (in place) and write it; False if not UP and logged on.

        Raises ``ProtocolError`` for a message that cannot be encoded (its seq is not used up).
        """
        link = self._link
        if link is None or not self.is_up or not link.logged_on:
            return False
        link.seq.stamp(msg)
        try:
            link.write(msg)
        except p.ProtocolError:
            link.seq.out_seq -= 1
            raise
        if msg.get("t") in _OWES_REPLY:
            self.expect_reply(str(msg.get("clordid")))
        return True

    def expect_reply(self, token: Hashable) -> None:
        """Watch for the reply to ``token`` (a clordid): ``send`` calls it for orders and cancels.

        Until an ack or reject naming it arrives, it counts as evidence against the line
        once overdue (see ``ReplyWatch``). No-op unless ``order_probe`` and logged on.
        """
        link = self._link
        if not self._order_probe or link is None or not link.logged_on or link.ended.done():
            return
        self.replies.written(token, self.clock())
        if self._reply_timer is None:
            self._arm_reply_timer(link)

    async def stop(self) -> None:
        """Log out if logged on (bounded wait), close the socket, end every task. Idempotent.

        The work runs in one task the session keeps: a second call, or a call after the
        first caller was cancelled, waits for that same stop to finish.
        """
        if self._stop_task is None:
            self._stopping = True
            self._stop_task = asyncio.get_running_loop().create_task(self._stop(), name=f"stop {self.path}")
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        link = self._link
        if link is not None and link.logged_on and not link.ended.done():
            link.write(link.seq.stamp(p.logout()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(2 * self._silent_s, 0.1)):
                    await asyncio.shield(link.ended)
        if self._task is not None:
            await cancel_and_wait([self._task])
        if link is not None:
            link.abort()
        self.guard.unregister(self)
        if self._started:
            self._emit(PathState.DOWN, None, "stopped")

    def nudge(self) -> bool:
        """For the ``SilenceGuard``: a heartbeat now, so another line's probe sees if this one is heard."""
        link = self._link
        if link is None or link.ended.done() or not link.logged_on or not self._watching(link):
            return False
        self._send_hb(link, self.clock())
        return True

    def silent_at(self, now: float) -> bool | None:
        """For the ``SilenceGuard``: is the watched line silent past its limit? None when not watching."""
        link = self._link
        if link is None or link.ended.done() or not self._watching(link):
            return None
        return now - link.last_rx >= self._silent_s + self.replies.allowance_s()

    # ------------------------------------------------------------ connection lifecycle

    async def _run(self) -> None:
        while not self._stopping:
            await self._connect_once()
            if self._stopping:
                return
            await asyncio.sleep(self._backoff.next_ms() / 1000.0)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        self._emit(PathState.CONNECTING, self._status.cause, f"connecting to {self.endpoint}")
        started = self.clock()
        host, port = self._hostport
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, link = await loop.create_connection(lambda: _Link(self, loop), host, port)
        except (OSError, TimeoutError) as exc:
            detect_us = int((self.clock() - started) * 1e6)
            self._emit(
                PathState.DOWN, Cause.REFUSED, f"connect to {self.endpoint} failed: {exc!r}", detect_us
            )
            return
        ticker = loop.create_task(self._tick_loop(link), name=f"path {self.path} heartbeat")
        try:
            await link.ended
        finally:
            await cancel_and_wait([ticker])
            link.abort()

    def _on_made(self, link: _Link) -> None:
        self.connections_opened += 1
        self._link = link
        self._hb.clear()
        self._silence.alive()
        self._reset_replies()
        if self._warmth is Warmth.LOGGED_ON:
            self._begin_logon(link)
        else:
            self._backoff.reset()
            self._emit(PathState.UP, None, f"connected to {self.endpoint} (no session)")

    def _begin_logon(self, link: _Link) -> None:
        link.logon_pending = True
        link.last_rx = self.clock()  # the logon's answer is due within logon_timeout_ms from now
        if self._status.state is PathState.UP:
            self._emit(PathState.CONNECTING, None, "logging on")
        link.write(p.logon(self.host_id, int(self._interval * 1000), slot=f"{self.group}/{self.path}"))

    def _fail(self, link: _Link, cause: Cause, detail: str) -> None:
        """Declare the path DOWN once per link: abort the socket, report, end the link."""
        if link.ended.done():
            return
        link.logged_on = link.logon_pending = False
        link.abort()
        self._reset_replies()
        # A silent path was unnoticed since its last byte; a hard failure (reset, logon
        # lost or refused) is known the moment the connection reports it.
        detect_us = int((self.clock() - link.last_rx) * 1e6) if cause is Cause.SILENT else 0
        if not self._stopping:
            self._emit(PathState.DOWN, cause, detail, detect_us)  # the flip first, then the log line
            log.info("path %s/%s DOWN: %s (%s)", self.group, self.path, cause.value, detail)
        link.ended.set_result(None)

    def _on_lost(self, link: _Link, exc: Exception | None) -> None:
        self._fail(
            link, Cause.RESET, f"connection lost: {exc!r}" if exc else "connection closed by the venue"
        )

    # ------------------------------------------------------------ receiving

    def _on_data(self, link: _Link, data: bytes) -> None:
        if link.ended.done():
            return
        now = self.clock()
        link.last_rx = now
        self.guard.heard(now)
        self._silence.alive()
        error: str | None = None
        try:
            msgs = link.decoder.feed(data)
        except p.ProtocolError as exc:
            msgs, error = exc.decoded, exc.reason
        probing = self.replies.probing
        for msg in msgs:
            try:
                p.check_from_venue(msg)
            except p.MessageError as exc:  # what came before it is acted on; nothing after
                error = exc.reason
                break
            self._handle(link, msg, now)
            if link.ended.done():
                return
        if link.logged_on:
            self.replies.heard(now)  # after the echoes: an echoed probe vouches for what preceded it
            if probing and not self.replies.probing:
                self._rearm_reply_timer(link)  # it was due at the probe's deadline: later than the check
        if error is not None:
            self._fail(link, Cause.RESET, f"protocol error from the venue: {error}")

    def _handle(self, link: _Link, msg: p.Message, now: float) -> None:
        t = msg["t"]
        if link.logged_on and link.seq.check(msg) is not None:
            self.seq_gaps += 1
        if t == p.MsgType.HB:
            hb_id = msg.get("id")
            rtt_us = self._hb.echoed(hb_id, now)
            self.replies.echoed(hb_id)
            if link.proving and isinstance(hb_id, int) and hb_id >= link.proving:
                link.proving = 0
                rtt = f"{rtt_us / 1000:.2f} ms" if rtt_us is not None else "-"
                self._emit(PathState.UP, None, f"logged on to {link.gateway}, heartbeat answered in {rtt}")
            elif rtt_us is not None and now - self._rtt_checked >= RTT_CHECK_S:
                self._report_rtt_if_moved(now)
            return
        if t in _REPLIES:
            self.replies.replied(msg.get("clordid"))
        if t == p.MsgType.LOGON_ACK:
            link.seq.reset()
            link.logged_on = True
            link.logon_pending = False
            link.session = str(msg.get("session", ""))
            link.gateway = str(msg.get("gateway", self.endpoint))
            self._backoff.reset()
            # UP at the echo of a heartbeat sent now: a line slower than the silence limit
            # is declared silent before, instead of taking orders after every logon.
            link.proving = self._send_hb(link, now)
            return
        self._callback(self._on_message, self.path, msg)
        if t == p.MsgType.SESSION_REJECT and link.logged_on:
            # The venue skipped a message of ours (a sequence gap: bytes lost inside the
            # connection, or one it could not read): the session is no longer one stream of
            # what we sent. Reset it, as any protocol error: what it carried is asked about on
            # another path, and a new logon replaces this session at the venue.
            self._fail(
                link,
                Cause.RESET,
                f"the venue rejected our message seq {msg.get('ref_seq')}: {msg.get('reason', '')}",
            )
        elif t == p.MsgType.LOGON_REJECT:
            self._fail(link, Cause.LOGON_REFUSED, f"logon refused: {msg.get('reason', '')}")
        elif t == p.MsgType.LOGOUT_ACK and not self._stopping:
            self._fail(link, Cause.LOGON_LOST, "the venue ended the session")

    # ------------------------------------------------------------ heartbeat and silence

    def _heartbeating(self, link: _Link) -> bool:
        if link.logged_on:
            return True
        return self._warmth is Warmth.CONNECTED and self._probe_connected and not link.logon_pending

    def _watching(self, link: _Link) -> bool:
        """Is the line held to the silence budget? Not while a logon waits: that has its own deadline."""
        return not link.logon_pending and self._heartbeating(link)

    async def _tick_loop(self, link: _Link) -> None:
        """Every interval: heartbeat, then check silence; and a check at the silence limit itself.

        Wakes at the next tick or at the instant the line would reach its silence
        limit, whichever comes first, so a silent line is declared at the limit rather
        than at the tick after it. Measures its own lateness for the guard.
        """
        interval = self._interval
        due = self.clock() + interval
        while not link.ended.done():
            watching = self._watching(link)
            check_at = (
                self._silence.next_check(link.last_rx, self.replies.allowance_s()) if watching else math.inf
            )
            wake = min(due, check_at)
            delay = wake - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            now = self.clock()
            if now - wake > interval:
                self.guard.note_lag(now, now - wake)
            if link.ended.done():
                return
            if now < due:  # woke for the silence limit only
                self._check_silence(link, now, probe=True)
                continue
            due += interval
            if due <= now:
                due = now + interval  # skip the ticks the loop missed
            if link.ended.done():
                return
            self._tick(link, now)

    def _tick(self, link: _Link, now: float) -> None:
        if self._heartbeating(link):
            self._send_hb(link, now)
        if link.logon_pending:
            # A logon may take longer than a heartbeat round trip (venue-side checks, a
            # loaded host): it has its own deadline, not the established session's budget.
            if now - link.last_rx >= self._logon_timeout:
                waited = (now - link.last_rx) * 1000
                self._fail(link, Cause.SILENT, f"no answer to logon for {waited:.0f} ms")
            return
        self._check_silence(link, now, probe=False)  # PROBE: this tick's heartbeat (if any) is the probe

    def _check_silence(self, link: _Link, now: float, *, probe: bool) -> None:
        if not self._watching(link):
            return
        verdict = self._silence.verdict(
            now, link.last_rx, proven=not link.proving, extra_s=self.replies.allowance_s()
        )
        if verdict is Verdict.SILENT:
            quiet_ms = (now - link.last_rx) * 1000
            self._fail(
                link, Cause.SILENT, f"nothing received for {quiet_ms:.0f} ms ({self.guard.describe(now)})"
            )
        elif verdict is Verdict.PROBE and probe:
            self._send_hb(link, now)

    def _send_hb(self, link: _Link, now: float) -> int:
        hb_id = self._hb.sent(now)
        msg = p.hb(hb_id)
        link.write(link.seq.stamp(msg) if link.logged_on else msg)
        return hb_id

    # ------------------------------------------------------------ replies owed (orders in flight)

    def _reset_replies(self) -> None:
        self.replies.clear()
        if self._reply_timer is not None:
            self._reply_timer.cancel()
            self._reply_timer = None

    def _arm_reply_timer(self, link: _Link) -> None:
        at = self.replies.next_check()
        if at is None:
            return
        self._reply_due = at
        loop = asyncio.get_running_loop()
        self._reply_timer = loop.call_later(max(0.0, at - self.clock()), self._on_reply_timer, link)

    def _rearm_reply_timer(self, link: _Link) -> None:
        if self._reply_timer is not None:
            self._reply_timer.cancel()
            self._reply_timer = None
        self._arm_reply_timer(link)

    def _on_reply_timer(self, link: _Link, confirming: bool = False) -> None:
        """An owed reply is overdue, or a probe's time is up: probe, wait, or declare SILENT.

        A SILENT verdict is confirmed two loop iterations later: a timer can run in the
        same iteration as a late wake-up, before the loop has read what arrived in the
        meantime (an echo sitting in the socket is no silence).
        """
        self._reply_timer = None
        if link is not self._link or link.ended.done() or not link.logged_on:
            return
        now = self.clock()
        late = now - self._reply_due
        if not confirming and late > self.replies.probe_floor_s:
            self.guard.note_lag(now, late)  # this timer ran late: the loop, not the line, may be slow
        verdict = self.replies.check(now)
        if verdict is Verdict.SILENT and not confirming:
            loop = asyncio.get_running_loop()
            self._reply_timer = loop.call_soon(self._confirm_hop, link)
            return
        if verdict is Verdict.SILENT:
            oldest = self.replies.oldest()
            owed = f"{(now - oldest) * 1000:.1f} ms" if oldest is not None else "?"
            self._fail(
                link,
                Cause.SILENT,
                f"order_timeout: an order unanswered for {owed}, and no echo of a probe within "
                f"{self.replies.probe_window_s * 1000:.1f} ms ({self.guard.describe(now)})",
            )
            return
        if verdict is Verdict.PROBE:
            if self.replies.probing:
                log.info(
                    "path %s/%s: probe unanswered, but %s: probing again (%s)",
                    self.group,
                    self.path,
                    self.replies.excuse,
                    self.guard.describe(now),
                )
            hb_id = self._send_hb(link, now)
            # Is any other line heard meanwhile? If none is, the silence may be ours, not this line's.
            self.replies.probe_sent(hb_id, now, self.guard.nudge_others(self))
        self._arm_reply_timer(link)

    def _confirm_hop(self, link: _Link) -> None:
        """First hop of the confirmation: the next iteration's reads run before the second."""
        self._reply_timer = asyncio.get_running_loop().call_soon(self._on_reply_timer, link, True)

    # ------------------------------------------------------------ status

    def _report_rtt_if_moved(self, now: float) -> None:
        """Report an UP path again when its round trip moved: the leader's
        ``slow_threshold_ms`` and `failover sidecars` read the RTT from these reports, which
        otherwise come on state changes only. Checked at most every ``RTT_CHECK_S``;
        moved = the p99 by ``RTT_MOVED_FRACTION`` of the last reported one and at least
        ``RTT_MOVED_US``."""
        self._rtt_checked = now
        if self._status.state is not PathState.UP or self._link is None or not self._link.logged_on:
            return
        p99, was = self.rtt.percentile(99), self._status.rtt_p99_us
        if p99 is None or (was is not None and abs(p99 - was) < max(RTT_MOVED_US, was * RTT_MOVED_FRACTION)):
            return
        self._emit(PathState.UP, None, f"heartbeat round trip now {p99 / 1000:.2f} ms (p99)")

    def _emit(self, state: PathState, cause: Cause | None, detail: str, detect_us: int | None = None) -> None:
        link = self._link
        session = link.session if link is not None and link.logged_on else ""
        rtt = (self.rtt.percentile(50), self.rtt.percentile(99))
        head = (self.group, self.path, state, cause, *rtt, self._warmth, detect_us)
        self._status = PathStatus(*head, self._status.seq + 1, self.clock(), detail, session)
        self._changed.set()
        self._callback(self._on_state, self._status)

    def _callback(self, fn: Callable[..., None] | None, *args: object) -> None:
        """Call a user callback; its failure is logged, never allowed to break the session."""
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("path %s/%s: callback %r failed", self.group, self.path, fn)
