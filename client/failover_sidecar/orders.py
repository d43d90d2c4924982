"""The order path: each strategy message goes out on the effective route and
gets exactly one outcome (ACKED, REJECTED, IN_DOUBT, NO_PATH).

The pure rules live in ledger.Ledger (order per group, make-before-break,
in doubt on a dead path, never resent); this module wires it to the paths,
the route and the strategies' streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

from failover.aio import cancel_and_wait, wait_any
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import types_pb2 as pb
from failover.wire import protocol as vp
from failover_sidecar.agent import Agent, now_ms
from failover_sidecar.ledger import Entry, Ledger, LedgerError, MsgKey, Outcome, clordid, parse_clordid
from failover_sidecar.path import PathSession

log = logging.getLogger(__name__)

_OUTCOME_PB = {
    Outcome.ACKED: spb.OUTCOME_KIND_ACKED,
    Outcome.REJECTED: spb.OUTCOME_KIND_REJECTED,
    Outcome.IN_DOUBT: spb.OUTCOME_KIND_IN_DOUBT,
    Outcome.NO_PATH: spb.OUTCOME_KIND_NO_PATH,
}

Sink = Callable[[spb.RelayEvent], None]
STOPPING = "the sidecar is stopping"
_WRITTEN_KEPT = 200_000
# ResolveInDoubt's status queries in flight at once on a venue line (each answer is one
# small reply; the session's reads and the ledger's orders are not held up behind them).
RESOLVE_IN_FLIGHT = 64
# Confirmations of in-doubt messages wait at most this long for the live path's first
# ack after the path died (and at most half their own window).
CONFIRM_AFTER_ACK_S = 0.002
# What a status reply says of an order: the venue has it (ACKED: booked, filled or
# cancelled since) or refused it. Anything else leaves a message IN_DOUBT.
_CONFIRMED = {
    "acked": Outcome.ACKED,
    "filled": Outcome.ACKED,
    "cancelled": Outcome.ACKED,
    "rejected": Outcome.REJECTED,
}
_EVENT_KINDS = {str(vp.MsgType.FILL): "fill", str(vp.MsgType.UCANCEL): "unsolicited_cancel"}


def _stage(st: pb.StageTiming, stage: str, where: str, duration_us: int) -> None:
    st.stage, st.where, st.duration_us = stage, where, duration_us


def shown(value: str) -> str:
    """A caller's value for an error or a refusal: repr, cut to 80 characters (a status
    must fit gRPC's metadata limit, an outcome its frame, and an echo should stay readable)."""
    return repr(value) if len(value) <= 80 else repr(value[:80]) + f"... ({len(value)} characters)"


class RelayError(Exception):
    """A message refused before it entered the ledger; ``code`` maps to a gRPC status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class OrderPath:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.ledger = Ledger()
        self.sinks: dict[str, Sink] = {}
        self._replaced: dict[str, Callable[[str], None]] = {}  # strategy -> how its connection is closed
        self.counters: Counter[str] = Counter()
        self.metrics = agent.metrics
        self._submitted_ns: dict[MsgKey, int] = {}
        self._sent_ns: dict[MsgKey, int] = {}
        self._messages: dict[MsgKey, vp.Message] = {}
        # Where each message was written: (path, connection number of that path's session).
        self._written: OrderedDict[MsgKey, tuple[str, int]] = OrderedDict()
        # Status queries waiting for the venue's answer, per client order id.
        self._status_waiters: dict[str, list[asyncio.Future[dict[str, object]]]] = {}
        # Messages a dead path left without a reply, being confirmed with the venue.
        self._confirming: set[asyncio.Task[None]] = set()
        self._confirm_keys: set[MsgKey] = set()  # resolved in the ledger, outcome not delivered yet
        # Per group: set by the group's next ack after a path died (confirmations wait for it).
        self._acked: dict[str, asyncio.Event] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # strategy -> (tokens, last refill, s)
        self._wake = asyncio.Event()
        self._stopping = False  # the sidecar stops: nothing new enters, written ones get their replies
        self._logging_out = False  # the stop closes the lines now: a line that ends is our doing
        self._drained = asyncio.Event()  # set, while stopping, once no message lacks its outcome
        self._expiry_idle = False  # the expiry task waits with no deadline: a write must wake it
        # Per group: since when (ms) its queue waits for replies on a path the route left.
        self._draining: dict[str, float] = {}
        # Per strategy: messages without a delivered outcome, and who waits for none (a
        # connection its client half-closed stays open until then: all_delivered).
        self._owed: Counter[str] = Counter()
        self._owed_waiters: dict[str, list[asyncio.Future[None]]] = {}
        agent.route_listeners.append(self._on_route)
        agent.path_dead_listeners.append(self._on_path_dead)
        agent.message_listeners.append(self._on_venue)

    # --- in --------------------------------------------------------------

    def submit(self, strategy_id: str, m: spb.RelayMessage) -> None:
        if self._stopping:
            raise RelayError("unavailable", STOPPING)
        cfg = self.agent.cfg
        if m.group not in cfg.groups:
            raise RelayError("not_found", f"group: unknown group {shown(m.group)} on host {cfg.host_id}")
        if not m.client_msg_id:
            raise RelayError("invalid", "client_msg_id: required (non-zero)")
        if m.kind not in (spb.MESSAGE_KIND_NEW_ORDER, spb.MESSAGE_KIND_CANCEL):
            raise RelayError("invalid", "kind: NEW_ORDER or CANCEL")
        if m.kind == spb.MESSAGE_KIND_CANCEL and not m.cancel_msg_id:
            raise RelayError("invalid", "cancel_msg_id: required for a cancel")
        try:
            m.payload.decode("utf-8")
        except UnicodeDecodeError:
            raise RelayError("invalid", "payload: the sim transport carries UTF-8 text") from None
        self._rate_check(strategy_id)
        if self.undelivered() >= cfg.orders.max_outstanding:
            if self.metrics is not None:
                self.metrics.refused("max_outstanding")
            raise RelayError("exhausted", f"{cfg.orders.max_outstanding} messages already without an outcome")
        key = (strategy_id, str(m.client_msg_id))
        try:
            self.ledger.submit(key, m.group, now_ms())
        except LedgerError as exc:
            raise RelayError("duplicate", f"client_msg_id: {exc}") from None
        self._owed[strategy_id] += 1
        self._submitted_ns[key] = time.monotonic_ns()
        entry_msg = self._venue_message(strategy_id, m)
        self._messages[key] = entry_msg
        self.counters["submitted"] += 1
        r = self.agent.routes.get(m.group)
        if r is not None and r.halted:
            self._resolve_all(self.ledger.halt(m.group), "group is halted")
            return
        self._pump(m.group)
        entry = self.ledger.get(key)
        if entry is not None and not entry.written and entry.outcome is None:
            self._wake.set()  # still waiting for a path: the NO_PATH timer must know

    def attach(self, strategy_id: str, sink: Sink, replaced: Callable[[str], None]) -> None:
        """A strategy's new connection takes its events over; the one it replaces is closed
        (``replaced`` of that one, with the reason), so what it still waits for resolves
        there (IN_DOUBT in the library; ResolveInDoubt tells) instead of waiting forever."""
        old_sink, old_close = self.sinks.get(strategy_id), self._replaced.get(strategy_id)
        self.sinks[strategy_id] = sink
        self._replaced[strategy_id] = replaced
        if old_sink is not None and old_sink is not sink and old_close is not None:
            old_close(f"replaced by a newer connection of strategy {strategy_id}")

    def detach(self, strategy_id: str, sink: Sink) -> None:
        """A connection ends: its events from now on stay in the ledger (ResolveInDoubt)."""
        if self.sinks.get(strategy_id) == sink:
            del self.sinks[strategy_id]
            self._replaced.pop(strategy_id, None)

    # --- stop ------------------------------------------------------------

    def begin_stop(self) -> None:
        """The sidecar stops: refuse new messages, give what waits for a path NO_PATH
        (never written); what is at the venue keeps its session until ``drain`` ends."""
        self._stopping = True
        for g in self.agent.cfg.groups:
            self._resolve_all(self.ledger.halt(g, STOPPING), STOPPING)
        self._note_drained()

    async def drain(self, timeout_s: float) -> int:
        """Wait, at most ``timeout_s``, until every message has its outcome (the venue's
        replies of what is already written); how many still lack one."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()
        return self.undelivered()

    def logging_out(self) -> None:
        """The stop closes every line now (after ``drain``): what a line still carries when
        it ends is IN_DOUBT at once, neither resent nor asked about (no line stays up)."""
        self._stopping = self._logging_out = True

    async def stop(self) -> None:
        """After the sessions stopped: confirmations still asking end (IN_DOUBT)."""
        self.logging_out()
        await cancel_and_wait(list(self._confirming))

    def _note_drained(self) -> None:
        if self._stopping and not self.undelivered():
            self._drained.set()

    def undelivered(self) -> int:
        """Messages whose strategy has no outcome yet: unresolved in the ledger, or being
        confirmed with the venue after their path died."""
        return self.ledger.unresolved() + len(self._confirm_keys)

    def _rate_check(self, strategy_id: str) -> None:
        rate = self.agent.cfg.orders.rate_limit_per_s
        if not rate:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(strategy_id, (float(rate), now))
        tokens = min(float(rate), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[strategy_id] = (tokens, now)
            if self.metrics is not None:
                self.metrics.refused("rate_limit")
            raise RelayError(
                "exhausted", f"rate limit: strategy {shown(strategy_id)} may send {rate} messages per second"
            )
        self._buckets[strategy_id] = (tokens - 1.0, now)

    def _venue_message(self, strategy_id: str, m: spb.RelayMessage) -> vp.Message:
        host = self.agent.cfg.host_id
        cid = clordid(host, strategy_id, str(m.client_msg_id))
        if m.kind == spb.MESSAGE_KIND_CANCEL:
            return vp.cancel(cid, clordid(host, strategy_id, str(m.cancel_msg_id)))
        return vp.new_order(cid, m.payload.decode("utf-8"))

    # --- out -------------------------------------------------------------

    def _pump(self, group: str) -> None:
        r = self.agent.routes.get(group)
        if r is None or r.effective is None:
            self._draining.pop(group, None)
            return
        if not self.ledger.blocked(group, r.effective):
            self._draining.pop(group, None)
        elif group not in self._draining:
            self._draining[group] = now_ms()  # the expiry task bounds the wait
            self._wake.set()
        sess = self.agent.sessions.get((group, r.effective))
        if sess is None or not sess.can_send:
            return
        for entry in self.ledger.next_to_send(group, r.effective):
            msg = self._messages.get(entry.key)
            if msg is None or not sess.send(dict(msg)):
                return
            self.ledger.mark_sent(entry, r.effective, now_ms())
            self._sent_ns[entry.key] = time.monotonic_ns()
            if self._expiry_idle:  # its reply now has a deadline (once per idle spell, not per message)
                self._expiry_idle = False
                self._wake.set()
            if entry.resent_from is None:
                self._written[entry.key] = (r.effective, sess.connections_opened)
                if len(self._written) > _WRITTEN_KEPT:
                    self._written.popitem(last=False)
                self.counters["sent"] += 1
            else:
                # Two lines carried it: ResolveInDoubt treats it as written by an earlier
                # process (every path must have logged on again before "never received").
                self.counters["resent"] += 1

    def _resolve_all(self, entries: list[Entry], reason: str = "") -> None:
        for e in entries:
            # A resent message's IN_DOUBT says why it could not be resent: keep the ledger's.
            self._deliver(e, e.reason if e.resent_from is not None else reason or e.reason)

    def _deliver(self, e: Entry, reason: str = "", order_id: str = "") -> None:
        assert e.outcome is not None
        self._confirm_keys.discard(e.key)
        if self._stopping:
            self._note_drained()
        self.counters[e.outcome.value] += 1
        strategy, msg_id = e.key
        now = time.monotonic_ns()
        host = self.agent.cfg.host_id
        # Filled in place: building an Outcome and its stages apart and then the event
        # copies each message again (6 µs against 2.7 µs per outcome, measured).
        event = spb.RelayEvent()
        out = event.outcome
        out.client_msg_id = int(msg_id)
        out.kind = _OUTCOME_PB[e.outcome]
        out.path = e.path or ""
        out.reason = reason or e.reason
        out.venue_order_id = order_id
        out.client_order_id = clordid(host, strategy, msg_id)
        sub, sent = self._submitted_ns.pop(e.key, None), self._sent_ns.pop(e.key, None)
        if sub is not None and sent is not None:
            _stage(out.stages.add(), "queue", host, (sent - sub) // 1000)
            _stage(out.stages.add(), "venue", host, (now - sent) // 1000)
        self._messages.pop(e.key, None)
        sink = self.sinks.get(strategy)
        if sink is not None:
            sink(event)
        owed = self._owed[strategy] - 1
        if owed > 0:
            self._owed[strategy] = owed
        else:
            del self._owed[strategy]
            for f in self._owed_waiters.pop(strategy, ()):
                if not f.done():
                    f.set_result(None)

    def all_delivered(self, strategy_id: str) -> asyncio.Future[None]:
        """Done once every message of the strategy has had its outcome delivered (at once
        when none lacks one). Its sink got each outcome before this is done."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._owed[strategy_id] <= 0:
            fut.set_result(None)
        else:
            self._owed_waiters.setdefault(strategy_id, []).append(fut)
        return fut

    def owed(self, strategy_id: str) -> int:
        """Messages of the strategy without an outcome delivered yet."""
        return max(0, self._owed[strategy_id])

    # --- events ----------------------------------------------------------

    def _on_route(self, group: str) -> None:
        r = self.agent.routes.get(group)
        if r is not None and r.halted:
            self._resolve_all(self.ledger.halt(group), "group is halted")
        self._pump(group)

    def _on_path_dead(self, group: str, path: str) -> None:
        if self._logging_out:
            # Our own logout ended the line: what it still carries is in doubt; nothing is
            # resent or asked about (every line of the sidecar is closing). A line that dies
            # while the stop waits for replies is a failure like any other (asked about).
            dead = self.ledger.on_path_dead(path, group)
            self._resolve_all(dead, f"{path} closed by the sidecar's stop before the reply")
            return
        if self.agent.cfg.orders.resend_in_doubt:
            # Written once more, first, to the next path (same client order id: the venue
            # refuses a second copy); only what was resent once already is in doubt now.
            requeued, dead = self.ledger.requeue(path, group)
            for e in requeued:
                self._written.pop(e.key, None)
            if requeued:
                self._wake.set()  # waiting for a path now: the expiry timer must know
        else:
            dead = self.ledger.on_path_dead(path, group)
        reason = f"{path} died before the reply"
        if dead and self.agent.cfg.orders.confirm_in_doubt_ms > 0:
            self._acked[group] = asyncio.Event()
            self._start_confirm(group, path, dead, reason)
        else:
            self._resolve_all(dead, reason)
            if dead:
                self.agent.note_in_doubt(group, path, len(dead))
        self._pump(group)  # the requeued, then the group's next messages go to the live path

    def _start_confirm(
        self, group: str, dead_path: str, entries: list[Entry], reason: str, charge_flip: bool = True
    ) -> None:
        self._confirm_keys.update(e.key for e in entries)
        task = asyncio.get_running_loop().create_task(
            self._confirm(group, dead_path, entries, reason, charge_flip), name=f"confirm-in-doubt-{group}"
        )
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def _confirm(
        self, group: str, dead_path: str, entries: list[Entry], reason: str, charge_flip: bool = True
    ) -> None:
        """Ask the venue, over a live path of the group, about each message ``dead_path`` left
        without a reply; deliver ACKED or REJECTED for what it says it has, IN_DOUBT for the
        rest (unknown to it, no answer within orders.confirm_in_doubt_ms, no live path).
        ``charge_flip``: the in-doubt count goes to the flip away from ``dead_path`` (not
        for a line that is up and only left messages unanswered).

        Only a positive answer changes the outcome: an order the venue does not know may
        still be on its way on the dead line, so it stays IN_DOUBT. Every entry gets its
        outcome exactly once, also when this task is cancelled (the sidecar stops).
        """
        delivered: set[MsgKey] = set()
        timeout_s = self.agent.cfg.orders.confirm_in_doubt_ms / 1000
        acked = self._acked.get(group)
        if acked is not None:
            # The queries go after the live path's first ack (bounded): ahead of it they
            # would delay the first order after the flip, the gap the strategy sees.
            await wait_any(acked.wait(), timeout=min(CONFIRM_AFTER_ACK_S, timeout_s / 2))
        sess, via = self._live_session(group, dead_path)

        async def one(e: Entry) -> None:
            reply = None
            if sess is not None:
                strategy, msg_id = e.key
                cid = clordid(self.agent.cfg.host_id, strategy, msg_id)
                reply = await self._venue_status(sess, cid, timeout_s)
            state = str(reply.get("state", "")) if reply is not None else ""
            outcome = _CONFIRMED.get(state)
            if outcome is not None:
                self.ledger.confirm(e, outcome, f"{reason}; the venue has it ({state}, asked over {via})")
                self.counters["confirmed"] += 1
            delivered.add(e.key)
            order_id = str(reply.get("order_id") or "") if reply is not None else ""
            self._deliver(e, "" if outcome is not None else reason, order_id=order_id)

        try:
            await asyncio.gather(*(one(e) for e in entries))
        finally:
            for e in entries:
                if e.key not in delivered:
                    delivered.add(e.key)
                    self._deliver(e, reason)  # IN_DOUBT, as the ledger has it
            doubt = sum(1 for e in entries if e.outcome is Outcome.IN_DOUBT)
            if doubt and charge_flip:
                self.agent.note_in_doubt(group, dead_path, doubt)

    def _live_session(self, group: str, dead_path: str) -> tuple[PathSession | None, str]:
        """A session of the group, other than ``dead_path``'s, that can carry a status query
        now: the effective path's first, else any other live path (all lead to the same venue)."""
        r = self.agent.routes.get(group)
        paths = [r.effective] if r is not None and r.effective else []
        paths += [p for p in self.agent.sessions_of(group) if p not in paths]
        for p in paths:
            s = self.agent.sessions.get((group, p))
            if p != dead_path and s is not None and s.can_send:
                return s, p
        return None, ""

    async def _venue_status(self, sess: PathSession, cid: str, timeout_s: float) -> dict[str, object] | None:
        """The venue's status reply for ``cid`` over ``sess``, or None (not sent, no answer in time)."""
        fut: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        waiters = self._status_waiters.setdefault(cid, [])
        waiters.append(fut)
        try:
            if not sess.send(vp.status(cid)):
                return None
            async with asyncio.timeout(timeout_s):
                return await fut
        except TimeoutError:
            return None
        finally:
            if fut in waiters:
                waiters.remove(fut)
            if not waiters and self._status_waiters.get(cid) is waiters:
                del self._status_waiters[cid]

    def _on_venue(self, group: str, path: str, msg: dict[str, object]) -> None:
        t = msg.get("t")
        if t == vp.MsgType.SESSION_REJECT:  # names a seq, no client order id: counted (the path resets)
            self.counters["session_reject"] += 1
            return
        cid = str(msg.get("clordid", ""))
        if t == vp.MsgType.STATUS_REPLY:
            for waiter in self._status_waiters.pop(cid, ()):
                if not waiter.done():
                    waiter.set_result(msg)
            return
        try:
            host, strategy, msg_id = parse_clordid(cid)
        except ValueError:
            return
        if host != self.agent.cfg.host_id:
            return
        key = (strategy, msg_id)
        if t in (vp.MsgType.ACK, vp.MsgType.REJECT):
            acked = t == vp.MsgType.ACK
            e = self.ledger.on_reply(
                key, acked, str(msg.get("reason", "")), duplicate=not acked and vp.is_duplicate(msg)
            )
            if self._acked:
                waiting = self._acked.pop(group, None)
                if waiting is not None:
                    waiting.set()
            if e is not None:
                if e.outcome is Outcome.IN_DOUBT:  # a resend the venue had: ask it what became of it
                    self._start_confirm(group, e.resent_from or "", [e], e.reason)
                else:
                    self._deliver(e, order_id=str(msg.get("order_id", "")))
                if e.outcome is Outcome.ACKED:
                    self.agent.note_ack(group, path)
            self._pump(group)
        elif t in (vp.MsgType.FILL, vp.MsgType.UCANCEL):
            kind = _EVENT_KINDS[str(t)]
            sink = self.sinks.get(strategy)
            self.counters[kind] += 1
            if sink is not None:
                payload = vp.encode(msg)[vp.HEADER_BYTES :]
                sink(
                    spb.RelayEvent(
                        venue_event=spb.VenueEvent(
                            client_msg_id=int(msg_id),
                            kind=kind,
                            path=path,
                            client_order_id=cid,
                            payload=payload,
                        )
                    )
                )

    # --- in-doubt resolution ------------------------------------------------

    def _can_still_deliver(self, group: str, key: MsgKey) -> bool:
        """Could the session that carried this message still hand it to the venue?

        Only while that very connection is open: once closed (the path died, was
        declared silent and aborted, or this sidecar restarted) no buffered bytes
        of it can reach the venue any more.
        """
        written = self._written.get(key)
        if written is None:
            return False  # not written by this process: every earlier connection is gone
        path, conn = written
        s = self.agent.sessions.get((group, path))
        return s is not None and s.is_up and s.connections_opened == conn

    def _carrier_back(self, group: str, key: MsgKey) -> bool:
        """Has the path that carried this message logged on again over a newer connection?

        Closing our end does not take back what the line already carried: bytes held in
        the venue's socket buffer (a stalled gateway) or in a proxy reach the venue when it
        reads again. A new session on the same path means that gateway reads again, so by
        the time it answers, what the old connection held has been read (or dropped with
        it). For a message not written by this process (it restarted since), any path may
        have carried it: every path of the group must be logged on.
        """
        written = self._written.get(key)
        if written is None:
            mine = list(self.agent.sessions_of(group).values())
            return bool(mine) and all(s.can_send for s in mine)
        path, conn = written
        s = self.agent.sessions.get((group, path))
        return s is not None and s.can_send and s.connections_opened > conn

    async def resolve(
        self, strategy_id: str, group: str, ids: list[int], timeout_s: float = 1.0
    ) -> list[spb.Resolution]:
        """Each id's fate, in the request's order: from the ledger where it knows, else from
        the venue. The venue's queries overlap (``RESOLVE_IN_FLIGHT`` at most): one round
        trip each, in turn, made 1,000 ids after a restart outlast a client's deadline."""
        out: list[spb.Resolution | None] = []
        asks: list[tuple[int, int]] = []  # (index in out, id) for the venue
        for msg_id in ids:
            key = (strategy_id, str(msg_id))
            e = self.ledger.get(key)
            # A copy refused as a duplicate says nothing of the order with that id (the venue's
            # earlier copy, e.g. sent again after a restart of this sidecar): the venue is asked.
            if e is not None and e.outcome in (Outcome.ACKED, Outcome.REJECTED) and not e.duplicate:
                state = spb.RESOLVE_STATE_ACKED if e.outcome is Outcome.ACKED else spb.RESOLVE_STATE_REJECTED
                out.append(
                    spb.Resolution(client_msg_id=msg_id, state=state, detail=f"outcome {e.outcome.value}")
                )
                continue
            if e is not None and not e.resolved and not e.written:
                # Still queued here (behind a drain, or for a path): it may yet be written, so
                # the venue not knowing it says nothing. "Not written by this process" means
                # an earlier process only for a message this one does not hold.
                out.append(
                    spb.Resolution(
                        client_msg_id=msg_id,
                        state=spb.RESOLVE_STATE_STILL_IN_DOUBT,
                        detail="still queued in this sidecar, not written yet: it may yet be sent",
                    )
                )
                continue
            asks.append((len(out), msg_id))
            out.append(None)
        if asks:
            slots = asyncio.Semaphore(RESOLVE_IN_FLIGHT)

            async def ask(i: int, msg_id: int) -> None:
                async with slots:
                    out[i] = await self._ask_venue(
                        strategy_id, group, msg_id, (strategy_id, str(msg_id)), timeout_s
                    )

            await asyncio.gather(*(ask(i, msg_id) for i, msg_id in asks))
        answers = [r for r in out if r is not None]
        if self.metrics is not None:
            for res in answers:
                self.metrics.resolved(spb.ResolveState.Name(res.state).removeprefix("RESOLVE_STATE_").lower())
        return answers

    async def _ask_venue(
        self, strategy_id: str, group: str, msg_id: int, key: MsgKey, timeout_s: float
    ) -> spb.Resolution:
        still = spb.RESOLVE_STATE_STILL_IN_DOUBT
        # Any live path of the group, not only the effective one: a halt empties the route
        # but keeps the paths logged on, and a status query is not trading.
        sess, _ = self._live_session(group, "")
        if sess is None:
            return spb.Resolution(client_msg_id=msg_id, state=still, detail="no usable path to ask the venue")
        cid = clordid(self.agent.cfg.host_id, strategy_id, str(msg_id))
        back = self._carrier_back(group, key)  # before the query: the venue reads that line again
        reply = await self._venue_status(sess, cid, timeout_s)
        if reply is None:
            return spb.Resolution(
                client_msg_id=msg_id,
                state=still,
                detail="could not ask the venue, or it did not answer in time",
            )
        state = str(reply.get("state", "unknown"))
        outcome = _CONFIRMED.get(state)
        if outcome is not None:
            known = spb.RESOLVE_STATE_ACKED if outcome is Outcome.ACKED else spb.RESOLVE_STATE_REJECTED
            return spb.Resolution(client_msg_id=msg_id, state=known, detail=f"venue: {state}")
        if self._can_still_deliver(group, key):
            return spb.Resolution(
                client_msg_id=msg_id,
                state=still,
                detail="unknown to the venue, but its session is still open",
            )
        if not back:
            return spb.Resolution(
                client_msg_id=msg_id,
                state=still,
                detail="unknown to the venue so far, but the path that carried it has not logged on "
                "again since: what its line still held may yet reach the venue; ask again once it has",
            )
        return spb.Resolution(
            client_msg_id=msg_id,
            state=spb.RESOLVE_STATE_UNKNOWN_TO_VENUE,
            detail="unknown to the venue and the session that carried it is closed: it was never received",
        )

    async def run(self) -> None:
        """Gives NO_PATH to messages that found no usable path within the configured wait;
        when it ends (the sidecar stops), confirmations still asking the venue deliver
        IN_DOUBT for what they have not answered."""
        try:
            await self._expire_forever()
        finally:
            await cancel_and_wait(list(self._confirming))

    async def _expire_forever(self) -> None:
        """NO_PATH for what found no path within ``no_path_wait_ms``; IN_DOUBT for what was
        written and got no reply within ``reply_timeout_ms`` (0: none)."""
        wait = self.agent.cfg.orders.no_path_wait_ms
        reply = self.agent.cfg.orders.reply_timeout_ms
        drain = self.agent.cfg.orders.route_change_drain_ms
        ledger = self.ledger
        while True:
            dues = [ledger.next_expiry_ms(wait), ledger.next_reply_due_ms(reply) if reply else None]
            if self._draining:
                dues.append(min(self._draining.values()) + drain)
            nxt = min((d for d in dues if d is not None), default=None)
            self._wake.clear()
            if nxt is None:
                self._expiry_idle = bool(reply)
                await self._wake.wait()
                continue
            delay = (nxt - now_ms()) / 1000
            if delay > 0:
                # A message queued meanwhile (its NO_PATH may come first) wakes this early.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            now = now_ms()
            self._drain_overdue(now, drain)
            self._resolve_all(ledger.expire(now, wait), f"no usable path within {wait} ms")
            if reply:
                self._unanswered(ledger.expire_replies(now, reply), reply)

    def _drain_overdue(self, now: float, drain_ms: int) -> None:
        """Groups whose queue has waited ``drain_ms`` for a path the route left: what that
        path owes is asked about over the new one (ACKED/REJECTED if the venue has it, else
        IN_DOUBT), and the queue moves on. Without this, one reply a live line never sends
        held the group for ``reply_timeout_ms`` (for ever at 0)."""
        for group, since in list(self._draining.items()):
            if now - since < drain_ms:
                continue
            del self._draining[group]
            r = self.agent.routes.get(group)
            old = self.ledger.outstanding_path(group)
            if r is None or r.effective is None or old is None:
                continue
            if not self.ledger.blocked(group, r.effective):
                continue
            why = (
                f"no reply on {old} within {drain_ms} ms of the route moving to {r.effective}, "
                "the line still up"
            )
            entries = self.ledger.release(group, why)
            log.warning(
                "group %s: %d messages without a reply on %s %d ms after the route moved to %s "
                "(the line is up): %s",
                group,
                len(entries),
                old,
                drain_ms,
                r.effective,
                f"asking the venue over {r.effective}" if self._confirming_enabled else "IN_DOUBT",
            )
            self._ask_about(group, old, entries, why)
            self._pump(group)

    @property
    def _confirming_enabled(self) -> bool:
        return self.agent.cfg.orders.confirm_in_doubt_ms > 0

    def _ask_about(self, group: str, path: str, entries: list[Entry], reason: str) -> None:
        """Messages a line that is still up left without a reply: asked about over another
        live path of the group (``confirm_in_doubt_ms``), else IN_DOUBT at once."""
        if self._confirming_enabled:
            self._start_confirm(group, path, entries, reason, charge_flip=False)
        else:
            self._resolve_all(entries, reason)

    def _unanswered(self, late: list[Entry], reply_ms: int) -> None:
        """Messages a live line left without a reply: asked about over another live path of
        the group, as a dead path's are (a venue that has one says so), else IN_DOUBT."""
        by_line: dict[tuple[str, str], list[Entry]] = {}
        for e in late:
            by_line.setdefault((e.group, e.path or ""), []).append(e)
        for (group, path), entries in by_line.items():
            log.warning(
                "group %s: %d messages without a reply on %s within %d ms (the line is up): %s",
                group,
                len(entries),
                path,
                reply_ms,
                "asking the venue over another path" if self._confirming_enabled else "IN_DOUBT",
            )
            self._ask_about(group, path, entries, entries[0].reason)
