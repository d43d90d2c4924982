"""Path health from sidecars to the leader, and the leader's use of it.

Every replica keeps the full health state of its own sidecars (they send it
in full after every reconnect) and forwards changes to the leader, whose
address it reads from the election key. A new leader first collects the full
state from every replica, waiting at most ``health.collect_timeout_ms``,
before any health-driven decision: hosts not heard from are unknown, never
down. Stage durations (detect on the host, forward on the replica, decide on
the leader) travel with the reports into each decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import grpc

from coordinator.commit import Committed
from coordinator.config import CoordinatorConfig
from coordinator.core.health import HealthTable, PathReport, State
from coordinator.core.policy import GroupStatus, Memory, Snapshot, evaluate, health_view
from coordinator.core.reconcile import Proposal
from coordinator.view import ClusterView
from failover.aio import wait_any
from failover.model.spec import Stage
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc, sync_pb2
from failover.v1 import types_pb2 as pb

if TYPE_CHECKING:
    from coordinator.admin_service import PeerChannels
    from coordinator.sync_service import Session, SyncHub

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


class HealthRelay:
    def __init__(self, cfg: CoordinatorConfig, view: ClusterView, peers: PeerChannels, hub: SyncHub) -> None:
        self._cfg = cfg
        self._view = view
        self._peers = peers
        self._hub = hub
        self.table = HealthTable()
        self.ready = False
        # (host, group, path) -> (arrived at the leader, monotonic ns; stages so far)
        self._arrivals: dict[tuple[str, str, str], tuple[int, list[Stage]]] = {}
        self._dirty: dict[str, tuple[Session | None, int]] = {}
        self._dirty_event = asyncio.Event()
        self._memory = Memory()
        self.statuses: dict[str, GroupStatus] = {}
        self._wake_handle: asyncio.TimerHandle | None = None

    @property
    def _id(self) -> str:
        return self._cfg.replica_id

    def _is_leader(self) -> bool:
        return self._hub.leader is not None and self._hub.leader.leadership is not None

    # --- replica side ------------------------------------------------------

    def on_report(self, s: Session, report: sync_pb2.HealthReport) -> None:
        if report.full:
            s.health = {}
        for ph in report.paths:
            s.health[(ph.group, ph.path)] = ph
        if report.full:
            s.effective = dict(report.effective)
        else:
            s.effective.update(report.effective)
        self._dirty[s.host_id] = (s, time.monotonic_ns())
        self._dirty_event.set()

    def session_ended(self, s: Session) -> None:
        if any(o.host_id == s.host_id for o in self._hub.sessions.values()):
            return  # the host is still connected through another stream
        self._dirty[s.host_id] = (None, time.monotonic_ns())
        self._dirty_event.set()

    def wants_full_health(self, s: Session) -> bool:
        return False  # sidecars send full state after every (re)connect

    def _host_msg(self, host: str, s: Session | None, received_ns: int, now_ns: int) -> apb.HostHealth:
        forward = Stage(stage="forward", where=self._id, duration_us=(now_ns - received_ns) // 1000)
        stage = pb.StageTiming(stage=forward.stage, where=forward.where, duration_us=forward.duration_us)
        if s is None:
            return apb.HostHealth(host_id=host, gone=True, stages=[stage])
        return apb.HostHealth(
            host_id=host, site=s.site, full=True, paths=list(s.health.values()), stages=[stage]
        )

    def full_state(self) -> apb.HealthForward:
        now = time.monotonic_ns()
        hosts = {s.host_id: s for s in self._hub.sessions.values()}
        return apb.HealthForward(
            replica_id=self._id,
            complete=True,
            hosts=[self._host_msg(h, s, now, now) for h, s in sorted(hosts.items())],
        )

    async def run(self) -> None:
        while True:
            await self._dirty_event.wait()
            self._dirty_event.clear()
            batch, self._dirty = self._dirty, {}
            now = time.monotonic_ns()
            msg = apb.HealthForward(
                replica_id=self._id, hosts=[self._host_msg(h, s, t, now) for h, (s, t) in batch.items()]
            )
            if await self._send(msg):
                continue
            for host, entry in batch.items():  # keep what was not delivered, unless superseded
                self._dirty.setdefault(host, entry)
            self._dirty_event.set()
            await wait_any(self._view.changed.wait(), timeout=0.2)

    async def _send(self, msg: apb.HealthForward) -> bool:
        if self._is_leader():
            self.accept_forward(msg)
            return True
        leader = self._view.leader
        if leader is None or not leader.address:
            return False
        try:
            stub = admin_pb2_grpc.PeerStub(self._peers.get(leader.address))
            ack = await stub.ForwardHealth(msg, timeout=1.0)
            return bool(ack.is_leader)
        except grpc.aio.AioRpcError as exc:
            log.debug("forwarding health to %s failed: %s", leader.replica_id, exc.code().name)
            return False

    # --- leader side -------------------------------------------------------

    def accept_forward(self, msg: apb.HealthForward) -> bool:
        if not self._is_leader():
            return False
        now_ns = time.monotonic_ns()
        now_ms = now_ns / 1e6
        for h in msg.hosts:
            if h.gone:
                self.table.mark_gone(h.host_id, now_ms)
                continue
            before = self.table.hosts.get(h.host_id)
            paths = {(ph.group, ph.path): _report(ph) for ph in h.paths}
            stages = [Stage(stage=st.stage, where=st.where, duration_us=st.duration_us) for st in h.stages]
            for key, rep in paths.items():
                old = before.paths.get(key) if before is not None else None
                if old is None or old.state != rep.state:
                    detect = Stage(stage="detect", where=h.host_id, duration_us=rep.detect_us)
                    self._arrivals[(h.host_id, *key)] = (now_ns, [detect, *stages])
            self.table.update(h.host_id, h.site, msg.replica_id, paths, full=h.full, now_ms=now_ms)
        self._hub.leader.wake()
        return True

    async def gather(self) -> None:
        """New leader: collect every replica's full state, bounded in time."""
        self.ready = False
        self.table = HealthTable()
        timeout = self._cfg.health.collect_timeout_ms / 1000
        members = dict(self._view.members)
        started = time.monotonic()

        async def one(rid: str, address: str) -> None:
            if rid == self._id:
                self.accept_forward(self.full_state())
                return
            stub = admin_pb2_grpc.PeerStub(self._peers.get(address))
            try:
                resp = await stub.CollectHealth(apb.CollectHealthRequest(leader_id=self._id), timeout=timeout)
                self.accept_forward(resp)
            except grpc.aio.AioRpcError as exc:
                log.warning("no health state from replica %s: %s", rid, exc.code().name)

        jobs: list[Any] = [one(rid, m.address) for rid, m in members.items()]
        if self._id not in members:
            jobs.append(one(self._id, ""))
        tasks = [asyncio.ensure_future(j) for j in jobs]
        try:
            await asyncio.wait(tasks, timeout=timeout)
        finally:
            for t in tasks:
                t.cancel()
        self.ready = True
        log.info(
            "health state gathered from %d replicas in %.0f ms: %d hosts known",
            len(jobs),
            (time.monotonic() - started) * 1000,
            len(self.table.hosts),
        )

    def propose(self) -> list[Proposal]:
        if not self.ready:
            return []
        now_ns = time.monotonic_ns()
        now_ms = now_ns / 1e6
        self.table.forget_expired(now_ms, self._cfg.health.host_grace_s * 1000)
        v = self._view
        snap = Snapshot(
            groups={n: g.value for n, g in v.groups.items()},
            controls={n: c.value for n, c in v.controls.items()},
            routes={n: r.record for n, r in v.routes.items()},
            health=health_view(self.table),
            health_ready=self.ready,
        )
        proposals, self._memory, statuses = evaluate(snap, self._memory, now_ms)
        self.statuses = {st.group: st for st in statuses}
        self._schedule_wake(self._memory.wake_at_ms, now_ms)
        for p in proposals:
            if p.kind != "health":
                continue
            route = v.routes.get(p.group)
            active = route.record.paths[0] if route and route.record.paths else ""
            arrivals = [a for (h, g, path), a in self._arrivals.items() if g == p.group and path == active]
            if arrivals:
                arrived_ns, stages = max(arrivals, key=lambda a: a[0])
                decide = Stage(stage="decide", where=self._id, duration_us=(now_ns - arrived_ns) // 1000)
                p.stages.extend([*stages, decide])
        return proposals

    def _schedule_wake(self, at_ms: float | None, now_ms: float) -> None:
        """Re-run the policy when a dwell or failback hold runs out (no new input will come)."""
        if self._wake_handle is not None:
            self._wake_handle.cancel()
            self._wake_handle = None
        if at_ms is not None and self._hub.leader is not None:
            delay = max(0.0, (at_ms - now_ms) / 1000) + 0.001
            self._wake_handle = asyncio.get_running_loop().call_later(delay, self._hub.leader.wake)

    def path_has_up_report(self, group: str, path: str) -> bool:
        return any(
            (r := e.paths.get((group, path))) is not None and r.state is State.UP
            for e in self.table.hosts.values()
        )

    def healthy_paths(self, group: str) -> list[str] | None:
        """Paths healthy for the group per the policy (None: health not gathered yet)."""
        st = self.statuses.get(group)
        if not self.ready or st is None:
            return None
        return [v.path for v in st.verdicts if v.healthy]

    def on_commit(self, done: Committed) -> None:
        """Automatic decisions are remembered by the policy itself (its Memory)."""
