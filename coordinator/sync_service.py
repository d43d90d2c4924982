"""The sidecar stream, served by every replica: sessions, pushes, health reports.

Decisions down: each is encoded once (fanout.EncodedCache) and written as
the same bytes to every session that needs it; the latest value wins, and at
most one push per sidecar and group is unacknowledged, so a slow sidecar
delays nobody and a halt never waits behind other work. Acks and health up:
health that changes a path goes to the HealthForwarder, which passes it on to
the leader; a report of the effective route alone stays here (status).
Each decision pushed is a ``failover.push`` span (push_traces.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.trace import Tracer

from coordinator.access import Denials
from coordinator.authz import check_site_groups, check_stream_host, parse_identity, site_groups_of
from coordinator.config import CoordinatorConfig
from coordinator.core.epoch_proof import to_replace
from coordinator.fanout import EncodedCache, SnapshotGroup
from coordinator.freshness import FreshnessProbe
from coordinator.health_forwarder import HealthForwarder
from coordinator.held_epochs import HeldEpochCheck
from coordinator.metrics import CoordinatorMetrics
from coordinator.push_traces import PushTraces
from coordinator.request_checks import check_ack, check_health, check_hello, trace_context
from coordinator.urgent import Urgent
from coordinator.view import ClusterView
from failover.aio import run_until_failure
from failover.log_limit import OUTSIDE_INPUT
from failover.model.convert import epoch_of
from failover.model.instances import StreamSeen, live_instances
from failover.model.spec import ZERO_EPOCH, DecisionRecord, Epoch
from failover.telemetry import tracing
from failover.telemetry.loop_lag import LoopLag
from failover.tls import peer_uri_or_cn
from failover.v1 import admin_pb2 as apb
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

# How often the heartbeat task looks for a change of freshness worth telling at once.
FRESHNESS_CHECK_S = 0.05
# Sessions woken per event-loop iteration when a decision or heartbeat goes to every stream:
# work already ready (an operator's reply, a lease keepalive, a freshness probe) runs
# between two batches instead of behind every session's wake-up and write.
WAKE_BATCH = 16


@dataclass
class Session:
    sid: int
    host_id: str
    site: str
    groups: tuple[str, ...]
    acked: dict[str, Epoch]
    version: str = ""
    instance: str = ""  # Hello.instance: which sidecar process (failover.model.instances)
    held_at_hello: dict[str, Epoch] = field(default_factory=dict)  # what an ack may name beyond our view
    connected_ns: int = field(default_factory=time.monotonic_ns)
    heard_ns: int = 0  # the last message received (the hello: connected_ns)
    pending: dict[str, tuple[Epoch, int]] = field(default_factory=dict)
    defs_sent: dict[str, int] = field(default_factory=dict)
    health: dict[tuple[str, str], pb.PathHealth] = field(default_factory=dict)
    effective: dict[str, str] = field(default_factory=dict)
    push_to_ack_us: dict[str, int] = field(default_factory=dict)
    apply_us: dict[str, int] = field(default_factory=dict)
    heartbeats_sent: int = 0
    asked_seq: int = 0  # the hub's health-request round this session has been sent
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Something besides a heartbeat may be due (a decision, a definition, an ack that frees
    # the next push): a heartbeat-only wake skips the per-group scan.
    dirty: bool = True
    error: tuple[grpc.StatusCode, str] | None = None
    # When a newer decision waits behind an unacknowledged push: the timer that wakes the
    # writer when its ack timeout ends (heartbeats are too rare to).
    retry_timer: asyncio.TimerHandle | None = None


class SyncHub:
    """Owns this replica's sessions and what they are sent."""

    def __init__(
        self,
        cfg: CoordinatorConfig,
        view: ClusterView,
        freshness: FreshnessProbe,
        forwarder: HealthForwarder,
        tracer: Tracer | None = None,
    ) -> None:
        self.cfg = cfg
        self.traces = PushTraces(tracer or tracing.unexported(), cfg.replica_id)
        # A push not acknowledged within this long may be replaced by the latest one.
        self._ack_timeout_ns = cfg.stream.ack_timeout_ms * 1_000_000
        self.view = view
        self.freshness = freshness
        self.cache = EncodedCache(view, self._push_started)
        self.sessions: dict[int, Session] = {}
        # Streams refused because the hello named another host or site than the certificate,
        # or a group its site may not receive (site_groups).
        self.denied_hellos = 0
        self.site_groups = site_groups_of(cfg.site_groups)
        self.denials: Denials | None = None  # the replica's count per identity (set by the replica)
        # Streams refused per host id for stream.max_streams_per_host.
        self.refused_host_streams: dict[str, int] = {}
        # Sessions per host id, and hosts whose id two sidecar processes use right now
        # (host -> their instances, failover.model.instances), each logged as it starts.
        self._by_host: dict[str, dict[int, Session]] = {}
        self.shared_hosts: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        self._heartbeat = b""
        self._heartbeat_seq = 0
        # Back from stale: every sidecar is asked for its full health (see _heartbeats).
        self._health_request = sync_pb2.ReplicaMessage(
            health_request=sync_pb2.HealthRequest()
        ).SerializeToString()
        self._ask_seq = 0
        self.announced_stale: bool | None = None  # what the last heartbeat told the sidecars
        self.forwarder = forwarder
        self.metrics: CoordinatorMetrics | None = None  # set by the replica
        self.loop_lag: LoopLag | None = None  # set by the replica: sheds new streams when late
        self.held_check: HeldEpochCheck | None = None  # set by the replica: restore detection
        self.acks_refused = 0  # acks naming an epoch beyond what the stream could hold
        self.shed_streams = 0
        self._to_wake: dict[int, Session] = {}  # insertion order: woken first come, first served
        self._waker: asyncio.Task[None] | None = None
        # Operator calls in progress here: the fan-out wakes no more sessions meanwhile.
        self.urgent = Urgent()  # the replica shares its own with the Admin service
        view.listeners.append(self._on_view)

    # --- wiring ------------------------------------------------------------

    def register(self, server: grpc.aio.Server) -> None:
        handler = grpc.stream_stream_rpc_method_handler(self._stream)  # raw bytes both ways
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("failover.v1.Sync", {"Stream": handler}),)
        )

    async def run(self) -> None:
        await run_until_failure(
            {"sync-heartbeats": self._heartbeats(), "health-forwarder": self.forwarder.run()}
        )

    async def close(self) -> None:
        for s in self.sessions.values():
            s.error = (grpc.StatusCode.UNAVAILABLE, "replica shutting down")
            s.wake.set()
        self.traces.close()

    def _push_started(self, rec: DecisionRecord, epoch: Epoch) -> tracing.Carrier:
        """A new decision to push: its span waits for the sessions that lack it."""
        waiting = [
            (s.sid, s.host_id)
            for s in self.sessions.values()
            if rec.group in s.groups and s.acked.get(rec.group, ZERO_EPOCH) < epoch
        ]
        return self.traces.started(rec, epoch, waiting)

    # --- fan-out -----------------------------------------------------------

    def _on_view(self, view: ClusterView, groups: set[str]) -> None:
        changed = {g for g in groups if g in view.groups or g in self.cache.decisions}
        for g in changed:
            self.cache.refresh(g)
        if changed:
            due = [s for s in self.sessions.values() if changed.intersection(s.groups)]
            for s in due:
                s.dirty = True
            self._wake_later(due)

    def _wake_later(self, sessions: Iterable[Session]) -> None:
        """Wake these sessions from the next loop iteration on, WAKE_BATCH per iteration."""
        for s in sessions:
            self._to_wake[s.sid] = s
        if self._to_wake and (self._waker is None or self._waker.done()):
            self._waker = asyncio.get_running_loop().create_task(self._wake_in_batches(), name="sync-wake")

    async def _wake_in_batches(self) -> None:
        """Set each queued session's wake event, a batch per loop iteration.

        Yielding first lets what is already ready go ahead of the fan-out (the reply of
        the commit that caused it); yielding between batches keeps the ready queue short
        for everything else while a decision goes to thousands of streams. The total
        work is unchanged: a few more loop iterations per decision.
        """
        budget = self.urgent.max_hold_s  # what this push may wait for operator calls in all
        while self._to_wake:
            await asyncio.sleep(0)
            budget -= await self.urgent.give_way(budget)
            for sid in list(itertools.islice(self._to_wake, WAKE_BATCH)):
                self._to_wake.pop(sid).wake.set()

    async def _heartbeats(self) -> None:
        """One shared, pre-encoded heartbeat per interval for every stream; sooner when the
        freshness a sidecar acts on (stale or not, the era) changes, so a long interval
        delays only the proof of life, never the news that this replica went stale."""
        interval = self.cfg.stream.heartbeat_interval_ms / 1000
        check = min(interval, FRESHNESS_CHECK_S)
        sent_at, sent_key = 0.0, None
        while True:
            fresh = self.freshness_pb()
            key = (fresh.stale, fresh.era)
            now = time.monotonic()
            if sent_key is not None and sent_key[0] and not key[0]:
                # Fresh again: the guard rails count only reports received since this
                # replica's outage began or from hosts whose stream stayed open, and
                # sidecars report on change only: asking confirms every host's state at
                # once instead of when some path next changes.
                self._ask_seq += 1
            if key != sent_key or now - sent_at >= interval:
                self._heartbeat = self.cache.heartbeat_message(fresh, int(time.time() * 1000))
                self._heartbeat_seq += 1
                sent_at, sent_key = now, key
                self.announced_stale = key[0]
                self._wake_later(self.sessions.values())
            await asyncio.sleep(min(check, max(0.0, sent_at + interval - time.monotonic())))

    def freshness_pb(self) -> sync_pb2.Freshness:
        f = self.freshness.state
        stale, reason = f.stale, f.reason
        if self.view.restore.detected:
            stale, reason = True, f"etcd restore detected: {self.view.restore.detail}"
        return sync_pb2.Freshness(
            replica_id=self.cfg.replica_id,
            applied_revision=f.applied_revision,
            lag_revisions=f.lag_revisions,
            stale=stale,
            stale_reason=reason,
            era=self.view.era.value,
            heartbeat_interval_ms=self.cfg.stream.heartbeat_interval_ms,
        )

    def _due(self, s: Session, now_ns: int) -> tuple[list[bytes], int]:
        """What this session should be sent now (definitions, newest decisions), and when the
        earliest push held back behind an unacknowledged one may go (0: none held back)."""
        out: list[bytes] = []
        retry_at_ns = 0
        for g in s.groups:
            body = self.cache.group_body(g, s.site)
            if body is not None and s.defs_sent.get(g) != body[0]:
                out.append(self.cache.group_message(body[1]))
                s.defs_sent[g] = body[0]
            d = self.cache.decisions.get(g)
            if d is None or d.epoch <= s.acked.get(g, ZERO_EPOCH):
                continue
            pending = s.pending.get(g)
            if pending is not None and pending[0] >= d.epoch:
                continue
            if pending is not None and now_ns - pending[1] < self._ack_timeout_ns:
                due_ns = pending[1] + self._ack_timeout_ns
                retry_at_ns = min(retry_at_ns, due_ns) if retry_at_ns else due_ns
                continue
            out.append(d.message)
            s.pending[g] = (d.epoch, now_ns)
        return out, retry_at_ns

    def _held_to_replace(self, hello: sync_pb2.Hello, held: dict[str, Epoch]) -> list[str]:
        """Groups whose held epoch no replica made and the cluster is behind (logged)."""
        current = {g: d.epoch for g, d in self.cache.decisions.items() if g in held}
        claims = {g: (held[g], hello.held[g].proof) for g in current}
        replace = to_replace(self.view.proof_key, claims, current)
        for g in replace:
            log.warning(
                "sidecar %s holds %s at epoch %s, ahead of the cluster's %s, with no proof a replica "
                "made (its state file edited or corrupt?): told to replace it with the cluster's decision",
                hello.host_id,
                g,
                held[g],
                current[g],
                extra=OUTSIDE_INPUT,
            )
        return replace

    def _snapshot(self, s: Session, now_ns: int, replace: list[str] | tuple[str, ...] = ()) -> list[bytes]:
        """The snapshot for a new stream, in as many messages as stream.max_message_bytes needs."""
        parts: list[SnapshotGroup] = []
        for g in s.groups:
            definition = decision = None
            body = self.cache.group_body(g, s.site)
            if body is not None:
                definition = body[1]
                s.defs_sent[g] = body[0]
            d = self.cache.decisions.get(g)
            if d is not None and d.epoch > s.acked.get(g, ZERO_EPOCH):
                decision = d.body
                s.pending[g] = (d.epoch, now_ns)
            parts.append(SnapshotGroup(g, definition, decision, g in replace))
        parts[:0] = [SnapshotGroup(g, None, None, True) for g in replace if g not in s.groups]
        fresh = self.freshness_pb()
        # A stale replica (its first etcd listing not in yet, for one) cannot tell: it names none.
        unknown = [] if fresh.stale else [g for g in s.groups if g not in self.view.groups]
        if unknown:
            log.warning(
                "sidecar %s asks for groups this cluster does not define: %s (no path for their "
                "orders until they are defined)",
                s.host_id,
                ",".join(unknown),
                extra=OUTSIDE_INPUT,
            )
        limit = self.cfg.stream.max_message_bytes
        return self.cache.snapshot_messages(parts, fresh, limit, unknown)

    # --- the stream --------------------------------------------------------

    def _overloaded_ms(self) -> float:
        """How late the loop ran in the last second, when that is past ``stream.shed_loop_lag_ms``
        and streams are already served (0.0 otherwise): a replica sheds new streams before it
        starves the ones it has; the sidecar tries another replica, with jittered backoff."""
        limit_ms = self.cfg.stream.shed_loop_lag_ms
        if not limit_ms or self.loop_lag is None or not self.sessions:
            return 0.0
        late_ms = self.loop_lag.worst_since(time.monotonic() - 1.0) * 1000
        return late_ms if late_ms >= limit_ms else 0.0

    async def _stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        if len(self.sessions) >= self.cfg.stream.max_streams:
            if self.metrics is not None:
                self.metrics.refused("limit")
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"replica {self.cfg.replica_id} already serves {len(self.sessions)} sidecar streams (limit)",
            )
        late_ms = self._overloaded_ms()
        if late_ms:
            self.shed_streams += 1
            if self.metrics is not None:
                self.metrics.refused("overload")
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"replica {self.cfg.replica_id} is overloaded (its event loop ran {late_ms:.0f} ms late "
                "in the last second): try another replica",
            )
        it = requests.__aiter__()
        try:
            first = await asyncio.wait_for(it.__anext__(), self.cfg.stream.hello_timeout_ms / 1000)
        except (StopAsyncIteration, TimeoutError):
            return
        hello, problem = _parse_hello(first)
        if hello is None:
            if self.metrics is not None:
                self.metrics.refused("hello")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            return
        site = await self._authorize_hello(hello, context)
        await self._refuse_over_host_limit(hello.host_id, context)
        claimed = {g: epoch_of(e) for g, e in hello.held.items()}
        replace = self._held_to_replace(hello, claimed)
        # For a replaced group the snapshot carries the cluster's decision; acks start over.
        held = {g: ZERO_EPOCH if g in replace else e for g, e in claimed.items()}
        s = Session(
            sid=next(self._ids),
            host_id=hello.host_id,
            site=site,
            groups=tuple(hello.groups),  # distinct: check_hello
            acked=dict(held),
            held_at_hello=held,
            version=hello.version,
            instance=hello.instance,
            asked_seq=self._ask_seq,  # a new stream sends its full health after connecting
        )
        s.heard_ns = s.connected_ns
        self.sessions[s.sid] = s
        self._by_host.setdefault(s.host_id, {})[s.sid] = s
        self.forwarder.opened(s.sid, s.host_id, s.site)
        if self.held_check is not None:
            self.held_check.claim(s.host_id, claimed, {g: e.proof for g, e in hello.held.items()})
        log.info("sidecar %s (site %s) connected for %s", s.host_id, s.site, ",".join(s.groups))
        reader = asyncio.create_task(self._read(s, it), name=f"sync-read-{s.host_id}")
        try:
            for piece in self._snapshot(s, time.monotonic_ns(), replace):
                await context.write(piece)
            await self._write_loop(s, context, reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            if s.retry_timer is not None:
                s.retry_timer.cancel()
            self.sessions.pop(s.sid, None)
            same_host = self._by_host.get(s.host_id, {})
            same_host.pop(s.sid, None)
            if not same_host:
                self._by_host.pop(s.host_id, None)
            self._check_shared(s.host_id)
            self._to_wake.pop(s.sid, None)
            self.forwarder.ended(s.sid)
            self.traces.gone(s.sid)
            log.info("sidecar %s disconnected", s.host_id)
        if s.error is not None:
            await context.abort(*s.error)

    async def _authorize_hello(self, hello: sync_pb2.Hello, context: Any) -> str:
        """The session's site, or PERMISSION_DENIED (logged and counted) when the certificate
        may not stream as this host or site, or its site may not receive a group it asks for.

        With mTLS the site is the certificate's when it names one; otherwise (and always in
        insecure mode, where site_groups guards against mistakes, not attackers) the hello's.
        """
        raw = peer_uri_or_cn(context) if self.cfg.tls.enabled else None
        denied: str | None = None
        site = hello.site or "default"
        if self.cfg.tls.enabled:
            denied = check_stream_host(raw, hello.host_id, hello.site)
            ident = parse_identity(raw) if raw else None
            if denied is None and ident is not None:
                site = ident.site or ("" if self.site_groups else site)
                denied = check_site_groups(str(ident), site, hello.groups, self.site_groups)
                site = site or "default"
        else:
            denied = check_site_groups(f"host {hello.host_id}", site, hello.groups, self.site_groups)
        if denied is not None:
            log.warning("denied: %s", denied, extra=OUTSIDE_INPUT)
            self.denied_hellos += 1
            if self.denials is not None:
                self.denials.by_caller[(raw or hello.host_id, "/failover.v1.Sync/Stream")] += 1
            if self.metrics is not None:
                self.metrics.refused("denied")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
        return site

    async def _refuse_over_host_limit(self, host_id: str, context: Any) -> None:
        """RESOURCE_EXHAUSTED past stream.max_streams_per_host: one host reconnecting in a
        loop (or a stolen certificate) cannot take the streams every other host needs."""
        limit = self.cfg.stream.max_streams_per_host
        held = len(self._by_host.get(host_id, ()))
        if held >= limit:
            self.refused_host_streams[host_id] = self.refused_host_streams.get(host_id, 0) + 1
            log.warning(
                "refused a stream of host %s: it holds %d (stream.max_streams_per_host)",
                host_id,
                held,
                extra=OUTSIDE_INPUT,
            )
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"host {host_id} already holds {held} streams on replica {self.cfg.replica_id} "
                f"(stream.max_streams_per_host {limit})",
            )

    def _check_shared(self, host_id: str) -> None:
        """Name a host id that two sidecar processes use (each logon at the venue closes the
        other's: both hosts flip back and forth while the cluster shows one host)."""
        streams = self._by_host.get(host_id, {}).values()
        live = live_instances(StreamSeen(x.instance, x.connected_ns, x.heard_ns) for x in streams)
        before = self.shared_hosts.get(host_id)
        if live and live != before:
            peers = sorted({x.site for x in streams})
            self.shared_hosts[host_id] = live
            log.warning(
                "host id %s is used by %d sidecar processes at once (instances %s, site %s): "
                "each must have its own host_id",
                host_id,
                len(live),
                ", ".join(live),
                ", ".join(peers),
            )
        elif not live and before is not None and len(streams) < 2:
            del self.shared_hosts[host_id]
            log.info("host id %s is used by one sidecar process again", host_id)

    async def _write_loop(self, s: Session, context: Any, reader: asyncio.Task[None]) -> None:
        sent_hb = self._heartbeat_seq
        # The reader sets ``wake`` when it ends, so one event is all this loop waits on
        # (no task per wake-up: idle streams are woken once per heartbeat).
        reader.add_done_callback(lambda _t: s.wake.set())
        while s.error is None and not reader.done():
            await s.wake.wait()
            s.wake.clear()
            if s.error is not None or reader.done():
                return
            if s.dirty or s.pending:  # pending: the ack timeout is checked on every wake-up
                s.dirty = False
                due, retry_at_ns = self._due(s, time.monotonic_ns())
                for msg in due:
                    await context.write(msg)
                if retry_at_ns:
                    self._wake_at(s, retry_at_ns)
            if s.asked_seq != self._ask_seq:
                s.asked_seq = self._ask_seq
                await context.write(self._health_request)
            if sent_hb != self._heartbeat_seq and self._heartbeat:
                sent_hb = self._heartbeat_seq
                s.heartbeats_sent += 1
                await context.write(self._heartbeat)

    @staticmethod
    def _wake_at(s: Session, at_ns: int) -> None:
        """Wake the writer when a held-back push's ack timeout ends (one timer per session)."""
        if s.retry_timer is not None and not s.retry_timer.cancelled():
            s.retry_timer.cancel()
        delay = max(0.0, (at_ns - time.monotonic_ns()) / 1e9)
        s.retry_timer = asyncio.get_running_loop().call_later(delay, s.wake.set)

    async def _read(self, s: Session, it: AsyncIterator[bytes]) -> None:
        try:
            async for raw in it:
                try:
                    msg = sync_pb2.SidecarMessage.FromString(raw)
                except DecodeError:
                    s.error = (
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "message is not a failover.v1.SidecarMessage",
                    )
                    return
                problem = _check_message(msg, s.groups)
                if problem is not None:
                    s.error = (grpc.StatusCode.INVALID_ARGUMENT, problem)
                    return
                s.heard_ns = time.monotonic_ns()
                if len(self._by_host.get(s.host_id, ())) > 1:
                    self._check_shared(s.host_id)
                kind = msg.WhichOneof("kind")
                if kind == "ack":
                    self._on_ack(s, msg.ack)
                elif kind == "health":
                    self._on_health(s, msg.health)
                elif kind == "hello":
                    s.error = (grpc.StatusCode.INVALID_ARGUMENT, "hello may be sent once, first")
                    return
        finally:
            s.wake.set()

    def _on_health(self, s: Session, report: sync_pb2.HealthReport) -> None:
        """Keep the report; forward the host's health only when it says something new.

        A sidecar reports its effective route after applying each decision: that
        changes no path's health, stays here for status, and costs the leader nothing.
        """
        if report.full:
            s.health, s.effective = {}, dict(report.effective)
        else:
            s.effective.update(report.effective)
        changed = report.full
        for ph in report.paths:
            key = (ph.group, ph.path)
            if s.health.get(key) != ph:
                s.health[key] = ph
                changed = True
        if changed:
            trace = trace_context(report.traceparent, report.tracestate)  # a bad one is ignored
            self.forwarder.report(s.sid, s.health.values(), trace)

    def _on_ack(self, s: Session, ack: sync_pb2.Ack) -> None:
        epoch = epoch_of(ack.epoch)
        in_view = self.view.epoch_of(ack.group) or ZERO_EPOCH
        if epoch > in_view and epoch > s.held_at_hello.get(ack.group, ZERO_EPOCH):
            # No replica of ours pushed it (our view has every decision we could have sent,
            # and the stream's hello did not hold it): not counted as applied.
            self.acks_refused += 1
            log.warning(
                "sidecar %s acked %s at epoch %s, beyond every decision of it here: not counted",
                s.host_id,
                ack.group,
                epoch,
                extra=OUTSIDE_INPUT,
            )
            return
        if epoch > s.acked.get(ack.group, ZERO_EPOCH):
            s.acked[ack.group] = epoch
        pending = s.pending.get(ack.group)
        if pending is None or epoch < pending[0]:
            self.traces.acked(s.sid, ack.group, epoch, None)
        else:
            s.push_to_ack_us[ack.group] = (time.monotonic_ns() - pending[1]) // 1000
            self.traces.acked(s.sid, ack.group, epoch, s.push_to_ack_us[ack.group])
            for st in ack.stages:
                if st.stage == "apply":
                    s.apply_us[ack.group] = st.duration_us
            if self.metrics is not None:
                self.metrics.acked(ack.group, s.push_to_ack_us[ack.group], s.apply_us.get(ack.group))
            del s.pending[ack.group]
            newest = self.cache.decisions.get(ack.group)
            if newest is not None and newest.epoch > epoch:
                s.dirty = True
                s.wake.set()  # a newer decision waited behind this one

    # --- status --------------------------------------------------------------

    def sidecar_statuses(self) -> list[apb.SidecarStatus]:
        now = time.monotonic_ns()
        out = []
        for s in sorted(self.sessions.values(), key=lambda x: x.host_id):
            st = apb.SidecarStatus(
                host_id=s.host_id,
                site=s.site,
                health=list(s.health.values()),
                connected_for_ms=(now - s.connected_ns) // 1_000_000,
                effective=s.effective,
                push_to_ack_us=s.push_to_ack_us,
                apply_us=s.apply_us,
                groups=s.groups,
                version=s.version,
                instance=s.instance,
                heard_ms_ago=(now - s.heard_ns) // 1_000_000,
            )
            for g, e in s.acked.items():
                st.acked[g].CopyFrom(pb.Epoch(era=e.era, revision=e.revision))
            out.append(st)
        return out


def _parse_hello(raw: bytes) -> tuple[sync_pb2.Hello | None, str]:
    try:
        msg = sync_pb2.SidecarMessage.FromString(raw)
    except DecodeError:
        return None, "message is not a failover.v1.SidecarMessage"
    if msg.WhichOneof("kind") != "hello":
        return None, "the first message must be a hello"
    problem = check_hello(msg.hello)
    return (None, problem) if problem is not None else (msg.hello, "")


def _check_message(msg: sync_pb2.SidecarMessage, groups: tuple[str, ...]) -> str | None:
    """Refuse an ack or health report about other groups, or with bad fields (request_checks)."""
    kind = msg.WhichOneof("kind")
    if kind == "ack":
        return check_ack(msg.ack, groups)
    if kind == "health":
        return check_health(msg.health, groups)
    return None
