"""The leader's health state, built afresh for every term.

``LeaderHealth`` is one term's table of fleet health, the policy's memory and
the wake-up timer for dwell and failback holds. ``HealthTerms`` creates one
when a term starts, runs its timer in the term's task group next to the
leader's work, and drops it when the term ends: nothing a term learned or
scheduled survives into the next (a failback hold begun in an old term
cannot fire in a new one).

A new term first collects every replica's full state, waiting at most
``health.collect_timeout_ms``, before any health-driven decision: hosts not
heard from are unknown, never down. A graceful hand-over goes further: the
stopping leader asks its possible successors to collect before it lets go
(``HealthTerms.prepare``), and the term handed over begins with that state,
so guard rails answer at once; the term still collects again (the state may
have moved between the two) before its own decisions. Each report says how
old it is; a guard rail counts only reports current since this replica's
latest etcd outage began: received since, or from a host whose stream never
ended (health from hosts that left a stale replica may no longer be true;
they report again when they reconnect). Stage durations (detect on the host,
forward on the replica, decide on the leader) travel with the reports into
each decision, and so does the trace context of the report that
drove it (the leader's decide span continues that trace).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from coordinator.commit import Leadership
from coordinator.config import HealthSection
from coordinator.core.health import HealthTable, PathReport, State
from coordinator.core.policy import GroupStatus, Memory, Snapshot, evaluate, health_view, judge
from coordinator.core.reconcile import Proposal
from coordinator.peers import PeerChannels
from coordinator.request_checks import trace_context
from coordinator.view import ClusterView
from failover import rpc
from failover.aio import run_until_failure
from failover.model.spec import Stage
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from failover.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

_STATES = {
    pb.PATH_STATE_UP: State.UP,
    pb.PATH_STATE_DOWN: State.DOWN,
    pb.PATH_STATE_CONNECTING: State.CONNECTING,
}
_CAUSES = {
    pb.FAILURE_CAUSE_RESET: "reset",
    pb.FAILURE_CAUSE_REFUSED: "refused",
    pb.FAILURE_CAUSE_LOGON_LOST: "logon_lost",
    pb.FAILURE_CAUSE_SILENT: "silent",
    pb.FAILURE_CAUSE_LOGON_REFUSED: "logon_refused",
}


def _report(ph: pb.PathHealth) -> PathReport:
    return PathReport(
        _STATES.get(ph.state, State.UNKNOWN), _CAUSES.get(ph.cause, ""), ph.rtt_p99_us, ph.detect_us
    )


class LeaderHealth:
    """One term's health table, policy memory and wake-up timer.

    Inputs: the view (definitions, controls, routes, members), the peers to
    collect from, this replica's own full state, ``wake`` (re-run the leader's
    pass), ``outage_since`` (monotonic seconds when this replica's latest
    etcd outage began; 0 for none) and ``outage`` (why it is in one now, or None).
    """

    def __init__(
        self,
        *,
        replica_id: str,
        settings: HealthSection,
        view: ClusterView,
        peers: PeerChannels,
        local_state: Callable[[], apb.HealthForward],
        wake: Callable[[], None],
        outage_since: Callable[[], float],
        outage: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._id = replica_id
        self.outage = outage
        self._settings = settings
        self._view = view
        self._peers = peers
        self._local_state = local_state
        self._wake = wake
        self._outage_since = outage_since
        self.table = HealthTable()
        self.ready = False  # this term's own collection is in: health may drive decisions
        self.prepared_at: float | None = None  # collected ahead of a hand-over (monotonic s)
        self.statuses: dict[str, GroupStatus] = {}
        # (host, group, path) -> (arrived at the leader, monotonic ns; stages so far; trace context)
        self._arrivals: dict[tuple[str, str, str], tuple[int, list[Stage], tuple[str, str]]] = {}
        self._memory = Memory()
        self._wake_at_ms: float | None = None
        self._rescheduled = asyncio.Event()

    # --- input -----------------------------------------------------------------

    def accept(self, msg: apb.HealthForward) -> None:
        now_ns = time.monotonic_ns()
        now_ms = now_ns / 1e6
        changed = False
        for h in msg.hosts:
            age_us = sum(st.duration_us for st in h.stages if st.stage == "forward")
            received_ms = now_ms - age_us / 1000
            before = self.table.hosts.get(h.host_id)
            paths = {(ph.group, ph.path): _report(ph) for ph in h.paths}
            applied = self.table.update(
                h.host_id,
                h.site,
                msg.replica_id,
                paths,
                full=h.full,
                received_ms=received_ms,
                gone_ms=now_ms if h.gone else None,
                seq=h.state_seq,
            )
            if not applied:
                continue
            changed = True
            stages = [Stage(stage=st.stage, where=st.where, duration_us=st.duration_us) for st in h.stages]
            trace = trace_context(h.traceparent, h.tracestate)
            for key, rep in paths.items():
                old = before.paths.get(key) if before is not None else None
                if old is None or old.state != rep.state:
                    detect = Stage(stage="detect", where=h.host_id, duration_us=rep.detect_us)
                    arrival = (h.host_id, *key)
                    self._arrivals[arrival] = (now_ns, [detect, *stages], self._trace(arrival, rep, trace))
        if changed:
            self._wake()

    def _trace(
        self, arrival: tuple[str, str, str], rep: PathReport, trace: tuple[str, str]
    ) -> tuple[str, str]:
        """The trace a path's latest state belongs to: the report's own, else, while the path
        stays unhealthy (a failed reconnect after it died), the trace of the failure it began
        with; recovery ends it."""
        if trace[0] or rep.state is State.UP:
            return trace
        prev = self._arrivals.get(arrival)
        return prev[2] if prev is not None else trace

    @property
    def guard_ready(self) -> bool:
        """Guard rails may read the table: collected in this term, or just before it."""
        return self.ready or self.prepared_at is not None

    async def prepare(self, timeout_s: float) -> int:
        """Collect ahead of a term a stopping leader may hand over; how many replicas answered."""
        started = time.monotonic()
        answered = await self._collect(min(timeout_s, self._settings.collect_timeout_ms / 1000))
        self.prepared_at = time.monotonic()
        log.info(
            "health state prepared for a hand-over from %d replicas in %.0f ms: %d hosts known",
            answered,
            (self.prepared_at - started) * 1000,
            len(self.table.hosts),
        )
        return answered

    async def gather(self) -> None:
        """Collect every replica's full state, bounded in time; then health may drive decisions."""
        started = time.monotonic()
        answered = await self._collect(self._settings.collect_timeout_ms / 1000)
        self.ready = True
        log.info(
            "health state gathered from %d of %d replicas in %.0f ms: %d hosts known",
            answered,
            len(self._members()),
            (time.monotonic() - started) * 1000,
            len(self.table.hosts),
        )

    def _members(self) -> dict[str, str]:
        members = {rid: m.address for rid, m in self._view.members.items()}
        members.setdefault(self._id, "")
        return members

    async def _collect(self, timeout: float) -> int:
        """Every member's full state (this replica's own included), bounded by ``timeout``."""
        answered = 0

        async def one(rid: str, address: str) -> None:
            nonlocal answered
            if rid == self._id:
                self.accept(self._local_state())
                answered += 1
                return
            stub = admin_pb2_grpc.PeerStub(self._peers.get(address))
            try:
                resp = await rpc.unary(
                    stub.CollectHealth(apb.CollectHealthRequest(leader_id=self._id), timeout=timeout)
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("no health state from replica %s: %s", rid, exc.code().name)
                return
            self.accept(resp)
            answered += 1

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), asyncio.TaskGroup() as tg:
                for rid, address in self._members().items():
                    tg.create_task(one(rid, address), name=f"collect-health-{rid}")
        return answered

    # --- the policy ------------------------------------------------------------

    def propose(self) -> list[Proposal]:
        if not self.ready:
            return []
        now_ns = time.monotonic_ns()
        now_ms = now_ns / 1e6
        grace_ms = self._settings.host_grace_s * 1000
        self.table.forget_expired(now_ms, grace_ms)
        v = self._view
        snap = Snapshot(
            groups={n: g.value for n, g in v.groups.items()},
            controls={n: c.value for n, c in v.controls.items()},
            routes={n: r.record for n, r in v.routes.items()},
            health=health_view(self.table),
            health_ready=self.ready,
            health_versions=self.table.group_versions,
        )
        proposals, self._memory, statuses = evaluate(snap, self._memory, now_ms)
        self.statuses = {st.group: st for st in statuses}
        # Woken again when a hold ends, or when a host gone is to be forgotten (its paths
        # then no longer count in the statuses), whichever comes first.
        due = [t for t in (self._memory.wake_at_ms, self.table.next_expiry_ms(grace_ms)) if t is not None]
        self._schedule(min(due) if due else None)
        return [self._with_arrival(p, now_ns) for p in proposals]

    def _with_arrival(self, p: Proposal, now_ns: int) -> Proposal:
        """A health proposal with the stages and trace context of the latest report about
        the active path (decide: that report's arrival here -> now)."""
        if p.kind != "health":
            return p
        route = self._view.routes.get(p.group)
        active = route.record.paths[0] if route and route.record.paths else ""
        arrivals = [a for (_h, g, path), a in self._arrivals.items() if g == p.group and path == active]
        if not arrivals:
            return p
        arrived_ns, stages, trace = max(arrivals, key=lambda a: a[0])
        decide = Stage(stage="decide", where=self._id, duration_us=(now_ns - arrived_ns) // 1000)
        return dataclasses.replace(p, stages=[*p.stages, *stages, decide], trace=trace)

    def _schedule(self, at_ms: float | None) -> None:
        if at_ms != self._wake_at_ms:
            self._wake_at_ms = at_ms
            self._rescheduled.set()

    async def run(self) -> None:
        """The term's timer: re-run the leader's pass when a dwell or failback hold runs out."""
        while True:
            self._rescheduled.clear()
            at = self._wake_at_ms
            delay = None if at is None else max(0.0, at - time.monotonic_ns() / 1e6) / 1000 + 0.001
            try:
                async with asyncio.timeout(delay):
                    await self._rescheduled.wait()
            except TimeoutError:
                self._wake_at_ms = None
                self._wake()

    # --- guard rails (coordinator.operator_requests.HealthGuard) -----------------

    def _fresh_view(self) -> dict[str, dict[tuple[str, str], PathReport]]:
        return self.table.current_since(self._outage_since() * 1000)

    def path_has_up_report(self, group: str, path: str) -> bool:
        """Some host reports the path up, in a report current since the latest etcd outage
        (received since, or from a host whose stream stayed open: core.health rule 5)."""
        since_ms = self._outage_since() * 1000
        reports = self.table.reports(group, path, since_ms=since_ms)
        return any(r.state is State.UP for r in reports.values())

    def healthy_paths(self, group: str) -> list[str] | None:
        """Paths healthy for the group per the policy, on reports since the latest outage.

        None: health not gathered yet in this term.
        """
        g = self._view.groups.get(group)
        if not self.guard_ready or g is None:
            return None
        spec, fresh = g.value, self._fresh_view()
        return [p for p in spec.path_names() if judge(group, p, spec.policy, fresh).healthy]


PREPARED_FOR_S = 1.0  # health prepared for a hand-over serves a term that begins within this


class HealthTerms:
    """The current term's ``LeaderHealth`` (None between terms), and the hooks the leader calls."""

    def __init__(self, make: Callable[[], LeaderHealth]) -> None:
        self._make = make
        self.current: LeaderHealth | None = None
        self._prepared: LeaderHealth | None = None  # collected for a hand-over not yet come

    async def prepare(self, timeout_s: float) -> int:
        """Collect the health a term handed over from a stopping leader will need; kept for
        ``PREPARED_FOR_S`` (a hand-over that does not come leaves nothing behind after that)."""
        health = self._make()
        answered = await health.prepare(timeout_s)
        self._prepared = health
        return answered

    def _take_prepared(self) -> LeaderHealth | None:
        health, self._prepared = self._prepared, None
        at = health.prepared_at if health is not None else None
        if health is None or at is None or time.monotonic() - at > PREPARED_FOR_S:
            return None
        return health

    def guard_ready(self) -> bool:
        return self.current is not None and self.current.guard_ready

    def term(
        self, work: Callable[[Leadership], Coroutine[Any, Any, None]]
    ) -> Callable[[Leadership], Coroutine[Any, Any, None]]:
        """Wrap one term's leader work: fresh health state, its timer running beside the work."""

        async def run(leadership: Leadership) -> None:
            health = self._take_prepared() or self._make()
            self.current = health
            try:
                # The work's own error ends the term, as the election expects it; each task
                # is cancelled until it ends (a TaskGroup's one cancel can be lost).
                await run_until_failure(
                    {"leader-health-timer": health.run(), "leader-term": work(leadership)}
                )
            finally:
                if self.current is health:
                    self.current = None

        return run

    def accept(self, msg: apb.HealthForward) -> bool:
        """Forwarded health; False when this replica has no term (the sender retries)."""
        if self.current is None:
            return False
        self.current.accept(msg)
        return True

    async def gather(self) -> None:
        if self.current is not None:
            await self.current.gather()

    def propose(self, view: ClusterView) -> list[Proposal]:
        return self.current.propose() if self.current is not None else []

    def path_has_up_report(self, group: str, path: str) -> bool:
        return self.current is not None and self.current.path_has_up_report(group, path)

    def outage(self) -> str | None:
        return self.current.outage() if self.current is not None else None

    def healthy_paths(self, group: str) -> list[str] | None:
        return self.current.healthy_paths(group) if self.current is not None else None

    @property
    def statuses(self) -> dict[str, GroupStatus]:
        return self.current.statuses if self.current is not None else {}
