"""The sidecar: warm paths, the effective route per group, and the coordinator link.

Everything runs on one event loop and reacts to three kinds of input: path
status changes (a path died or recovered here: flip at once, report up),
decisions from the coordinators (apply only newer epochs, ack, persist), and
strategy messages (see orders.py). The control plane is never on the data
path: with every coordinator gone, the last route and the warm paths stay.

This module wires the parts and owns the session lifecycle; each other idea
lives in its own module: the route rules (route.py), a path session (path.py),
the flip log and its timeline (flips.py), the protobuf form of path health
(health_pb.py), the state file and its writer (state_file.py, saver.py), and
the coordinator stream (stream.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Tracer

from failover.aio import cancel_and_wait
from failover.log_limit import OUTSIDE_INPUT
from failover.model.convert import WARMTH_FROM_PB, group_pb
from failover.model.spec import epoch_out_of_range
from failover.telemetry import tracing
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb
from failover.wire.address import parse_host_port
from failover_sidecar import state_file
from failover_sidecar.config import GroupOverride, SidecarConfig
from failover_sidecar.flips import FlipLog
from failover_sidecar.health_pb import path_health
from failover_sidecar.liveness import SilenceGuard
from failover_sidecar.metrics import SidecarMetrics
from failover_sidecar.path import PathSession
from failover_sidecar.route import RouteState, repeated_path
from failover_sidecar.saver import StateSaver
from failover_sidecar.status import PathState, PathStatus, Warmth
from failover_sidecar.stream import CoordinatorLink
from failover_sidecar.traces import SidecarTraces

# A local flip's spans, log line and health report wait for the new path's first ack, at
# most this long. Run in the callback that flips, they held the event loop 0.2-0.5 ms just
# as the strategy's next message was due on the new path (docs/benchmarks.md, "The flip's
# bookkeeping after the first ack"); a report a few ms later costs the coordinators nothing.
AFTER_FLIP_S = 0.002

log = logging.getLogger(__name__)

RouteListener = Callable[[str], None]


def _warmth(p: pb.Path, ov: GroupOverride | None) -> Warmth:
    """A path's warmth: this host's override, else the definition's (logged on by default)."""
    if ov is not None and p.name in ov.warmth:
        return Warmth(ov.warmth[p.name])
    return Warmth(WARMTH_FROM_PB.get(p.warmth, Warmth.LOGGED_ON))


_WARMER = {Warmth.COLD: 0, Warmth.CONNECTED: 1, Warmth.LOGGED_ON: 2}


def _reported(st: PathStatus) -> pb.PathHealth:
    """A path's health as reported to the coordinators: a cold path opens nothing, so its
    "down" is no evidence of anything; it is reported unknown (not counted, never down)."""
    ph = path_health(st)
    if st.warmth is Warmth.COLD:
        ph.state, ph.cause = pb.PATH_STATE_UNSPECIFIED, pb.FAILURE_CAUSE_UNSPECIFIED
    return ph


class Sessions(dict[tuple[str, str], PathSession]):
    """The host's path sessions by (group, path), also by group (``by_group``: path ->
    session), kept as entries are set and deleted: a group's paths without a scan of every
    session of the host (many wide groups made that quadratic)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_group: dict[str, dict[str, PathSession]] = {}

    def __setitem__(self, key: tuple[str, str], sess: PathSession) -> None:
        super().__setitem__(key, sess)
        self.by_group.setdefault(key[0], {})[key[1]] = sess

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(key)
        self.by_group.get(key[0], {}).pop(key[1], None)


def now_ms() -> float:
    return time.monotonic() * 1000


class Agent:
    def __init__(
        self, cfg: SidecarConfig, metrics: SidecarMetrics | None = None, tracer: Tracer | None = None
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.traces = SidecarTraces(tracer or tracing.unexported(), cfg.host_id)
        saved = state_file.load(cfg.state_file)
        self.definitions: dict[str, pb.GroupDefinition] = {
            g: d for g, d in saved.definitions.items() if g in cfg.groups
        }
        self.decisions: dict[str, pb.Decision] = {g: d for g, d in saved.decisions.items() if g in cfg.groups}
        if not self.definitions:
            for spec in cfg.bootstrap:
                self.definitions[spec.name] = group_pb(spec, 0, cfg.site)
        self.routes: dict[str, RouteState] = {}
        self.sessions = Sessions()
        self.guard = SilenceGuard()
        self.flip_log = FlipLog(metrics)
        self.flips = self.flip_log.entries
        self.route_listeners: list[RouteListener] = []
        self.path_dead_listeners: list[Callable[[str, str], None]] = []
        self.message_listeners: list[Callable[[str, str, dict[str, object]], None]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        # Per group: the flip's bookkeeping, its AFTER_FLIP_S timer, and the path whose
        # first ack releases it.
        self._after_flip: dict[str, tuple[Callable[[], None], asyncio.TimerHandle, str]] = {}
        # Every task the agent starts (session start/retire, warm-ups) is kept here and
        # ended or awaited by stop(); the save task is awaited by stop() too.
        self._tasks: set[asyncio.Task[Any]] = set()
        self.saver = StateSaver(
            cfg.state_file,
            cfg.host_id,
            lambda: state_file.SavedState(dict(self.definitions), dict(self.decisions)),
        )
        self._stop_task: asyncio.Task[None] | None = None
        self._stopping = False  # paths end by our logout: no flips, no route changes, no reports
        self.link = CoordinatorLink(
            host_id=cfg.host_id,
            site=cfg.site,
            groups=list(cfg.groups),
            addresses=list(cfg.coordinators),
            held=self.held,
            on_definition=self.on_definition,
            on_decision=self.on_decision,
            on_replace_held=self.replace_held,
            full_health=self.full_health,
            dead_after_ms=cfg.stream.dead_after_ms,
            tls=cfg.tls,
            interceptors=metrics.client_interceptors() if metrics is not None else (),
        )

    # --- state -------------------------------------------------------------

    def held(self) -> dict[str, pb.Epoch]:
        """The epoch of each group's decision, with the proof its replica pushed (the hello)."""
        return {g: d.epoch for g, d in self.decisions.items()}

    def route(self, group: str) -> spb.Route:
        r = self.routes.get(group)
        d = self.decisions.get(group)
        out = spb.Route(group=group)
        if d is not None:
            out.decision_paths.extend(d.paths)
            out.epoch.CopyFrom(d.epoch)
            out.reason = d.reason
        if r is not None:
            out.effective_path = r.effective or ""
            out.deviates = r.deviates
            out.halted = r.halted
            if r.deviates or r.reason not in ("", "decision"):
                out.reason = r.reason
        out.health.extend(self._health(group))
        return out

    def sessions_of(self, group: str) -> dict[str, PathSession]:
        """The group's path sessions by path name (do not change it)."""
        return self.sessions.by_group.get(group, {})

    def _health(self, group: str) -> list[pb.PathHealth]:
        return [path_health(s.status) for _, s in sorted(self.sessions_of(group).items())]

    def full_health(self) -> sync_pb2.HealthReport:
        rep = sync_pb2.HealthReport(full=True)
        for s in self.sessions.values():
            rep.paths.append(_reported(s.status))
        for g, r in self.routes.items():
            rep.effective[g] = r.effective or ""
        return rep

    # --- definitions -------------------------------------------------------

    def on_definition(self, gdef: pb.GroupDefinition) -> None:
        if gdef.name not in self.cfg.groups:
            return
        twice = repeated_path(p.name for p in gdef.paths)
        if twice is not None:
            # No coordinator of ours writes this; kept, it would be saved and the next
            # start would refuse the state file. The definition held stays.
            log.error(
                "group %s: definition lists path %r twice: not applied",
                gdef.name,
                twice,
                extra=OUTSIDE_INPUT,
            )
            return
        self.definitions[gdef.name] = gdef
        self._apply_definition(gdef)
        self.saver.schedule()

    def _apply_definition(self, gdef: pb.GroupDefinition) -> None:
        g = gdef.name
        ov = self.cfg.overrides.get(g)
        local = gdef.policy.local_failover if ov is None or ov.local_failover is None else ov.local_failover
        r = self.routes.get(g)
        if r is None:
            r = self.routes[g] = RouteState(
                g, local, gdef.policy.failback_hold_down_ms, self.cfg.data_plane.cold_start_grace_ms
            )
            d = self.decisions.get(g)
            if d is not None:
                r.on_decision(list(d.paths), (d.epoch.era, d.epoch.revision))
        else:
            r.local_failover = local
            r.hold_down_ms = gdef.policy.failback_hold_down_ms
        wanted = {p.name: p for p in gdef.paths}
        for name, sess in list(self.sessions_of(g).items()):
            p = wanted.get(name)
            if p is not None and p.endpoint == sess.endpoint:
                warmth = _warmth(p, ov)
                if warmth is sess.configured_warmth:
                    continue
                if warmth is sess.warmth or (_WARMER[warmth] < _WARMER[sess.warmth] and r.effective == name):
                    # The session is already at it, or it is lowered on the path in use: the
                    # session stays (the route needs it logged on); a lower warmth applies
                    # when it next starts.
                    sess.configured_warmth = warmth
                    continue
            # Gone, a new endpoint, or a new warmth: a new session (a warmth raised logs on,
            # one lowered logs out or disconnects, as at start).
            del self.sessions[(g, name)]
            self._spawn(sess.stop(), f"retire path {name}")  # bounded; stop() awaits it
        for p in gdef.paths:
            if (g, p.name) in self.sessions:
                continue
            if not p.endpoint:
                log.error("group %s path %s has no endpoint for site %s", g, p.name, self.cfg.site)
                continue
            try:
                parse_host_port(p.endpoint)
            except ValueError as exc:  # a coordinator validates this; never let one kill the stream
                log.error("group %s path %s: bad endpoint %.80r: %s", g, p.name, p.endpoint, exc)
                continue
            warmth = _warmth(p, ov)
            dp = self.cfg.data_plane
            made: list[PathSession] = []  # the session its own state callback names
            sess = PathSession(
                g,
                p.name,
                p.endpoint,
                self.cfg.host_id,
                warmth=warmth,
                heartbeat_interval_ms=dp.heartbeat_interval_ms,
                silent_after=dp.silent_after_intervals,
                logon_timeout_ms=dp.logon_timeout_ms,
                backoff_min_ms=dp.reconnect_min_ms,
                backoff_max_ms=dp.reconnect_max_ms,
                order_probe=dp.order_probe,
                order_timeout_rtt_multiple=dp.order_timeout_rtt_multiple,
                order_timeout_floor_ms=dp.order_timeout_floor_ms,
                probe_timeout_floor_ms=dp.probe_timeout_floor_ms,
                probe_timeout_per_owed_us=dp.probe_timeout_per_owed_us,
                on_state=functools.partial(self._on_state_of, made),
                on_message=functools.partial(self._on_path_message, g),
                guard=self.guard,
            )
            made.append(sess)
            self.sessions[(g, p.name)] = sess
            self._spawn(sess.start(), f"start path {p.name}")
        self._route_changed(g)

    # --- decisions ---------------------------------------------------------

    def replace_held(self, group: str) -> None:
        """A replica says the epoch held for ``group`` is ahead of the cluster and none it made
        (the state file edited or corrupt): the decision that follows replaces it, older or
        not. Without this every real decision would be ignored as older, for ever."""
        held = self.decisions.pop(group, None)
        r = self.routes.get(group)
        if r is not None:
            r.epoch = None
        if held is not None:
            log.warning(
                "group %s: the epoch held, %d:%d, is none a replica made (state file edited or corrupt?): "
                "replaced by the cluster's decision",
                group,
                held.epoch.era,
                held.epoch.revision,
                extra=OUTSIDE_INPUT,
            )

    def on_decision(self, d: pb.Decision, stages: list[pb.StageTiming]) -> tuple[int, int]:
        g = d.group
        epoch = (d.epoch.era, d.epoch.revision)
        if g not in self.cfg.groups:
            return epoch
        self._flush_after_flip(g)  # a group's reports go out in the order of its changes
        r = self.routes.get(g)
        held = self.decisions.get(g)
        held_epoch = (held.epoch.era, held.epoch.revision) if held is not None else (0, 0)
        if held is not None and held_epoch >= epoch:
            return held_epoch
        if bad := epoch_out_of_range(*epoch, "epoch"):
            # No replica makes it, and the state file refuses it at the next start.
            log.error(
                "group %s: decision %s: not applied, keeping epoch %d:%d",
                g,
                bad,
                *held_epoch,
                extra=OUTSIDE_INPUT,
            )
            return held_epoch
        if repeated_path(d.paths) is not None:
            # No coordinator of ours writes this; whatever did, the route held stays
            # (static stability), and the ack names the epoch still held, so `failover sync`
            # shows this host behind.
            log.error(
                "group %s: decision at epoch %d:%d lists a path twice (%s): not applied, keeping epoch %d:%d",
                g,
                *epoch,
                ",".join(d.paths),
                *held_epoch,
                extra=OUTSIDE_INPUT,
            )
            return held_epoch
        started = time.monotonic_ns()
        before = r.effective if r is not None else None
        self.decisions[g] = d
        if r is not None:
            r.on_decision(list(d.paths), epoch)
        flip = None
        if r is not None and r.effective != before:
            flip = self._record_flip(g, before, r.effective, "decision", None, 0, started)
        self._route_changed(g)
        if r is not None:
            rep = sync_pb2.HealthReport()
            rep.effective[g] = r.effective or ""
            self.link.report(rep)  # status shows each host's effective route, also after a decision
        self.saver.schedule()
        applied = time.monotonic_ns()
        # The route has moved: now the span and the log lines (which carry its trace id); when
        # it moved, once the new path has its first ack (AFTER_FLIP_S at most), as for a local flip.
        work = functools.partial(self._after_decision, d, started, applied, flip)
        if flip is None:
            work()
        else:
            self.flip_log.measure(flip)
            self._defer_after_flip(g, work, flip.to_path)
        return epoch

    def _after_decision(
        self, d: pb.Decision, started_ns: int, applied_ns: int, flip: spb.Flip | None
    ) -> None:
        span = self.traces.applying(d, started_ns)
        with trace.use_span(span, end_on_exit=False):
            log.info(
                "decision %s %d:%d -> %s (%s)",
                d.group,
                d.epoch.era,
                d.epoch.revision,
                ",".join(d.paths) or "HALT",
                d.reason,
            )
            if flip is not None:
                self.traces.flipped(span, flip)
                self.flip_log.log(flip)
        span.end(end_time=tracing.wall_ns(applied_ns))

    # --- paths -------------------------------------------------------------

    def _on_state_of(self, made: list[PathSession], st: PathStatus) -> None:
        self._on_path_state(st, made[0])

    def _on_path_state(self, st: PathStatus, sess: PathSession | None = None) -> None:
        """``sess``: the session reporting; one a new definition retired (its endpoint or
        warmth changed) says nothing of the path, which its successor reports now."""
        g = st.group
        self._flush_after_flip(g)  # a group's reports go out in the order of its changes
        r = self.routes.get(g)
        current = self.sessions.get((g, st.path))
        if r is None or current is None or (sess is not None and current is not sess):
            return
        if self._stopping:
            # Our own logouts: the route stays as it was (watchers see no flip), and only
            # the orders still in flight on a path that ended hear of it (their outcomes).
            if st.state is PathState.DOWN:
                for cb in self.path_dead_listeners:
                    cb(g, st.path)
            return
        declared = time.monotonic_ns()
        before = r.effective
        dead = st.state is PathState.DOWN
        if st.state is PathState.CONNECTING and r.health(st.path) is None:
            # Still connecting for the first time says nothing yet: keep the cold-start
            # rule (use the decision's order) until the path is really up or down.
            self._report(g, st)
            return
        # A path going dead (not again: a reconnect that fails) starts a failover's trace.
        traced = dead and r.health(st.path) is not False
        r.on_health(st.path, st.state is PathState.UP, now_ms())
        flip = None
        if r.effective != before:
            cause = self._flip_cause(g, before, st, dead)
            flip = self._record_flip(g, before, r.effective, "local", cause, st.detect_us or 0, declared)
        if dead:
            for cb in self.path_dead_listeners:
                cb(g, st.path)
        self._route_changed(g)
        if flip is None:
            self._report(g, st, self.traces.detected(st, declared) if traced else None)
            return
        self.flip_log.measure(flip)
        # The route has moved: the spans, the log line (with their trace id) and the report
        # come once the new path has its first ack (AFTER_FLIP_S at most).
        self._defer_after_flip(
            g, functools.partial(self._after_local_flip, st, declared, traced, flip), flip.to_path
        )

    def _flip_cause(self, g: str, before: str | None, st: PathStatus, dead: bool) -> str | None:
        """Why a local flip left ``before``: the failure that ``st`` reports, or, when another
        path coming up moved the route, ``before``'s own failure (nothing was healthy, so
        the route had stayed on it); ``recovered`` when ``before`` was healthy; None when
        it never was (a start-up)."""
        if dead:
            return st.cause.value if st.cause is not None else None
        old = self.sessions.get((g, before)) if before is not None else None
        if old is not None and old.status.state is PathState.DOWN and old.status.cause is not None:
            return old.status.cause.value
        r = self.routes.get(g)
        return "recovered" if r is not None and before is not None and r.health(before) else None

    def _after_local_flip(self, st: PathStatus, declared_ns: int, traced: bool, flip: spb.Flip) -> None:
        span = self.traces.detected(st, declared_ns) if traced else None
        if span is not None:
            span = self.traces.flipped(span, flip)
        with tracing.current(span):
            self.flip_log.log(flip)
        self._report(st.group, st, span)

    def _defer_after_flip(self, g: str, work: Callable[[], None], to_path: str) -> None:
        timer = asyncio.get_running_loop().call_later(AFTER_FLIP_S, self._flush_after_flip, g)
        self._after_flip[g] = (work, timer, to_path)

    def _flush_after_flip(self, g: str) -> None:
        """Run the group's pending flip bookkeeping now (no-op when none is pending)."""
        pending = self._after_flip.pop(g, None)
        if pending is None:
            return
        work, timer, _ = pending
        timer.cancel()
        try:
            work()
        except Exception:  # bookkeeping must never break the path that called us
            log.exception("group %s: a flip's spans, log line or report failed", g)

    def _report(self, g: str, st: PathStatus, span: Span | None = None) -> None:
        """A health delta; with ``span``, its trace context (the coordinators continue the trace)."""
        r = self.routes.get(g)
        rep = sync_pb2.HealthReport(paths=[_reported(st)])
        rep.effective[g] = (r.effective if r is not None else None) or ""
        if span is not None:
            rep.traceparent, rep.tracestate = tracing.inject(span)
        self.link.report(rep)

    def _on_path_message(self, g: str, path: str, msg: dict[str, object]) -> None:
        for cb in self.message_listeners:
            cb(g, path, msg)

    def _record_flip(
        self,
        g: str,
        before: str | None,
        after: str | None,
        trigger: str,
        cause: str | None,
        detect_us: int,
        started_ns: int,
    ) -> spb.Flip:
        d = self.decisions.get(g)
        epoch = d.epoch if d is not None else None
        return self.flip_log.record(g, before, after, trigger, cause, detect_us, started_ns, epoch)

    def note_in_doubt(self, g: str, path: str, count: int) -> None:
        """Messages a dead path left in doubt are charged to the flip away from it."""
        self.flip_log.note_in_doubt(g, path, count)

    def note_ack(self, g: str, path: str) -> None:
        """First ack on a path after a flip to it completes that flip's timeline, and lets
        the flip's bookkeeping run (next loop iteration: the ack's own work comes first)."""
        self.flip_log.note_ack(g, path)
        pending = self._after_flip.get(g)
        # Only the new path's: an order written on the old one just before the flip is
        # often acked after it, and its ack says nothing about the new path.
        if pending is not None and pending[2] == path:
            asyncio.get_running_loop().call_soon(self._flush_after_flip, g)

    def _route_changed(self, g: str) -> None:
        r = self.routes.get(g)
        if r is not None and r.effective is not None:
            sess = self.sessions.get((g, r.effective))
            if sess is not None and sess.is_up and not sess.can_send and sess.warmth is not Warmth.LOGGED_ON:
                # A path kept only connected (or cold) logs on when it becomes the route.
                self._spawn(sess.warm_up(Warmth.LOGGED_ON), f"warm up path {r.effective}")
        if r is not None:
            t = self._timers.pop(g, None)
            if t is not None:
                t.cancel()
            deadline = r.next_deadline_ms()
            if deadline is not None:
                delay = max(0.0, (deadline - now_ms()) / 1000)
                self._timers[g] = asyncio.get_running_loop().call_later(delay, self._tick, g)
        for cb in self.route_listeners:
            cb(g)

    def _tick(self, g: str) -> None:
        self._timers.pop(g, None)
        self._flush_after_flip(g)
        r = self.routes.get(g)
        if r is None:
            return
        before = r.effective
        flip = None
        if r.tick(now_ms()):
            # A hold-down ended (recovered), or the start-up wait for a first path that never
            # reported (no cause: it did not fail, it is not up yet).
            cause = "recovered" if before is None or r.health(before) is not None else None
            flip = self._record_flip(g, before, r.effective, "local", cause, 0, time.monotonic_ns())
            rep = sync_pb2.HealthReport()
            rep.effective[g] = r.effective or ""
            self.link.report(rep)
        self._route_changed(g)
        if flip is not None:
            self.flip_log.measure(flip)
            self.flip_log.log(flip)

    # --- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        for gdef in list(self.definitions.values()):
            self._apply_definition(gdef)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` as a task the agent owns; nothing new starts once stopping."""
        if self._stop_task is not None:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Stop every path session and end every task the agent started. Idempotent.

        The work runs in one task of its own: a second call, or a call after the first
        caller was cancelled, waits for that same stop instead of returning early.
        """
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._stop(), name="agent stop")
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        self._stopping = True
        for g in list(self._after_flip):
            self._flush_after_flip(g)
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        warm_ups = [t for t in self._tasks if t.get_name().startswith("warm up")]
        await cancel_and_wait(warm_ups)
        # Session starts return at once and retirements are bounded: wait for them, then
        # stop the sessions still in use (each stop is bounded too).
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in self.sessions.values()), return_exceptions=True)
        await self.saver.flush()
