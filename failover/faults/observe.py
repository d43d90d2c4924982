"""Watch a fault cluster from outside and feed the invariant checker.

Polls each sidecar's local status (routes with their local path health: one
consistent snapshot per host), the venue's counters, and the coordinators'
cluster status. It only reads; a process that does not answer (killed, stopped)
is skipped until it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from failover import rpc
from failover.faults.harness import GROUP, PATHS, FaultCluster
from failover.faults.invariants import Checker, RouteView
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc, sidecar_pb2_grpc, venue_pb2, venue_pb2_grpc
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import types_pb2 as pb

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message names what was awaited."""


def route_of(st: spb.SidecarLocalStatus, group: str = GROUP) -> spb.Route | None:
    return next((r for r in st.routes if r.group == group), None)


def to_view(host: str, t: float, r: spb.Route) -> RouteView:
    has = r.HasField("epoch") and (r.epoch.era or r.epoch.revision)
    health: dict[str, bool | None] = {}
    seq: dict[str, int] = {}
    for h in r.health:
        health[h.path] = (
            True if h.state == pb.PATH_STATE_UP else None if h.state == pb.PATH_STATE_UNSPECIFIED else False
        )
        seq[h.path] = int(h.seq)  # moves on every change: tells a down-up between two polls
    return RouteView(
        host,
        r.group,
        t,
        r.effective_path,
        tuple(r.decision_paths),
        (int(r.epoch.era), int(r.epoch.revision)) if has else None,
        r.halted,
        health,
        seq,
    )


@dataclass
class Sample:
    t: float
    status: spb.SidecarLocalStatus


@dataclass
class Observer:
    cluster: FaultCluster
    checker: Checker
    interval_s: float = 0.05
    last: dict[str, Sample] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    counters: venue_pb2.Counters | None = None
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def _channel(self, target: str) -> grpc.aio.Channel:
        ch = self._channels.get(target)
        if ch is None:
            ch = self._channels[target] = rpc.channel(target)
        return ch

    async def sidecar_status(self, host: str, timeout: float = 1.0) -> spb.SidecarLocalStatus | None:
        stub = sidecar_pb2_grpc.SidecarStub(self._channel(f"unix:{self.cluster.sockets[host]}"))
        try:
            st: spb.SidecarLocalStatus = await stub.GetStatus(spb.SidecarStatusRequest(), timeout=timeout)
            return st
        except grpc.aio.AioRpcError:
            return None

    async def venue_counters(self) -> venue_pb2.Counters | None:
        stub = venue_pb2_grpc.VenueControlStub(self._channel(self.cluster.venue_control))
        try:
            c: venue_pb2.Counters = await stub.GetCounters(venue_pb2.CountersRequest(), timeout=2)
            return c
        except grpc.aio.AioRpcError:
            return None

    async def venue_fault(
        self, gateway: str, kind: venue_pb2.FaultKind, session: str = "", delay_ms: int = 0
    ) -> None:
        stub = venue_pb2_grpc.VenueControlStub(self._channel(self.cluster.venue_control))
        await stub.InjectFault(
            venue_pb2.FaultRequest(gateway=gateway, kind=kind, session=session, delay_ms=delay_ms),
            timeout=5,
        )

    async def cluster_status(self, exclude: set[str] | None = None) -> apb.ClusterStatus | None:
        """Status from the first live replica that answers (what ``failover status --json`` shows)."""
        for rid, addr in self.cluster.coordinator_addrs.items():
            p = self.cluster.procs.get(rid)
            if (exclude and rid in exclude) or p is None or not p.alive:
                continue
            stub = admin_pb2_grpc.AdminStub(self._channel(addr))
            with contextlib.suppress(grpc.aio.AioRpcError):
                st: apb.ClusterStatus = await stub.GetStatus(apb.GetStatusRequest(), timeout=2)
                return st
        return None

    async def leaders_claimed(self, timeout: float = 1.0) -> dict[str, bool]:
        """Each live replica's own claim to lead (its local status, no etcd read), for
        the replicas that answer: a replica without quorum must stop claiming it."""

        async def one(rid: str, addr: str) -> tuple[str, bool | None]:
            stub = admin_pb2_grpc.PeerStub(self._channel(addr))
            try:
                st = await stub.LocalStatus(apb.LocalStatusRequest(host_limit=1), timeout=timeout)
                return rid, bool(st.is_leader)
            except grpc.aio.AioRpcError:
                return rid, None

        live = [
            (rid, addr)
            for rid, addr in self.cluster.coordinator_addrs.items()
            if (p := self.cluster.procs.get(rid)) is not None and p.alive
        ]
        got = await asyncio.gather(*(one(rid, addr) for rid, addr in live))
        return {rid: v for rid, v in got if v is not None}

    async def history(self, limit: int = 100) -> list[pb.Decision]:
        """Committed decisions of the group, from the first live replica that answers."""
        for rid, addr in self.cluster.coordinator_addrs.items():
            p = self.cluster.procs.get(rid)
            if p is None or not p.alive:
                continue
            stub = admin_pb2_grpc.AdminStub(self._channel(addr))
            with contextlib.suppress(grpc.aio.AioRpcError):
                resp = await stub.History(apb.HistoryRequest(group=GROUP, limit=limit), timeout=3)
                return list(resp.decisions)
        return []

    def replica_of(self, host: str) -> str:
        """The replica a host streams from now ('' if none or unknown)."""
        s = self.last.get(host)
        if s is None or not s.status.control_plane_connected:
            return ""
        return self.cluster.replica_of_link_address(s.status.replica)

    async def switch(
        self, path: str, reason: str = "fault test", via: str | None = None, settle_s: float = 5.0
    ) -> pb.Decision:
        """An operator switch through the first replica that takes it.

        A leader elected a moment ago learns the hosts' health within a second or two and
        refuses meanwhile ("no host reports the path up"): that refusal alone is retried
        for ``settle_s``; any other one is raised at once, every replica's error named."""
        t0 = time.monotonic()
        while True:
            rids = (
                [via]
                if via
                else [
                    r
                    for r, p in self.cluster.procs.items()
                    if r in self.cluster.coordinator_addrs and p.alive
                ]
            )
            errors: list[str] = []
            unsettled = True
            for rid in rids:
                stub = admin_pb2_grpc.AdminStub(self._channel(self.cluster.coordinator_addrs[rid]))
                try:
                    resp = await stub.Switch(
                        apb.SwitchRequest(group=GROUP, path=path, reason=reason, operator="fault"), timeout=5
                    )
                    d: pb.Decision = resp.decision
                    return d
                except grpc.aio.AioRpcError as exc:
                    errors.append(f"{rid}: {exc.code().name} {exc.details()}")
                    unsettled = unsettled and "no host reports" in (exc.details() or "")
            if not unsettled or time.monotonic() - t0 > settle_s:
                raise WaitTimeout(f"switch to {path} failed: " + "; ".join(errors))
            await asyncio.sleep(0.2)

    async def replicas_answering(self) -> bool:
        """Every live replica answers a status request (a restarted one may still be starting)."""
        for rid, addr in self.cluster.coordinator_addrs.items():
            p = self.cluster.procs.get(rid)
            if p is None or not p.alive:
                continue
            stub = admin_pb2_grpc.AdminStub(self._channel(addr))
            try:
                await stub.GetStatus(apb.GetStatusRequest(), timeout=2)
            except grpc.aio.AioRpcError:
                return False
        return True

    # ------------------------------------------------------------ polling

    async def poll_once(self) -> None:
        async def one(host: str) -> None:
            st = await self.sidecar_status(host, timeout=max(0.5, self.interval_s * 4))
            if st is None:
                return
            t = time.monotonic()
            s = Sample(t, st)
            self.last[host] = s
            self.samples.setdefault(host, []).append(s)
            r = route_of(st)
            if r is not None:
                self.checker.route(to_view(host, t, r))

        await asyncio.gather(*(one(h) for h in self.cluster.topo.hosts))

    async def _routes(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_s)

    async def _venue(self) -> None:
        while True:
            c = await self.venue_counters()
            if c is not None:
                self.counters = c
                self.checker.venue(time.monotonic(), int(c.duplicates))
            await asyncio.sleep(0.5)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._routes()), asyncio.create_task(self._venue())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        c = await self.venue_counters()
        if c is not None:
            self.checker.venue(time.monotonic(), int(c.duplicates))
        for ch in self._channels.values():
            await ch.close(None)
        self._channels.clear()

    # ------------------------------------------------------------ waits

    async def until(self, pred: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> float:
        """Poll ``pred`` until true; returns the seconds it took; WaitTimeout naming ``what``."""
        t0 = time.monotonic()
        while True:
            for task in self._tasks:  # a broken observer must not look like a slow system
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            v = pred()
            if not isinstance(v, bool):
                v = await v
            if v:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise WaitTimeout(
                    f"timed out after {timeout:.1f}s waiting for {what}; last routes: {self.describe()}"
                )
            await asyncio.sleep(0.02)

    def route(self, host: str) -> spb.Route | None:
        s = self.last.get(host)
        return route_of(s.status) if s else None

    def describe(self) -> str:
        out = []
        for h in self.cluster.topo.hosts:
            s = self.last.get(h)
            r = route_of(s.status) if s else None
            if r is None or s is None:
                out.append(f"{h}: -")
                continue
            health = ",".join(f"{x.path}={pb.PathState.Name(x.state)[11:]}" for x in r.health)
            out.append(
                f"{h}: eff={r.effective_path or '-'} order={list(r.decision_paths)} "
                f"epoch=({r.epoch.era},{r.epoch.revision}) {health} replica={s.status.replica} "
                f"cp={s.status.control_plane_connected} age={time.monotonic() - s.t:.2f}s"
            )
        return "; ".join(out)

    def all_hosts(
        self, pred: Callable[[str, spb.SidecarLocalStatus, spb.Route], bool], since: float = 0.0
    ) -> bool:
        for h in self.cluster.topo.hosts:
            s = self.last.get(h)
            if s is None or s.t < since:
                return False
            r = route_of(s.status)
            if r is None or not pred(h, s.status, r):
                return False
        return True

    async def settle_on_primary(self, timeout: float = 60.0) -> float:
        """``wait_ready``, after putting the group back on primary if a start-up flap moved it.

        A path still logging on when a loaded machine's timer fires late is reported down,
        and the leader may move the group before any fault; with failback off (the
        default) it stays there. The first fault must start from the primary.
        """
        t0 = time.monotonic()

        def settled(_h: str, st: spb.SidecarLocalStatus, r: spb.Route) -> bool:
            return _streaming_with_every_path_up(st, r) and bool(r.decision_paths)

        await self.until(lambda: self.all_hosts(settled), timeout, "every sidecar with both paths up")
        hist = await self.history(1)
        if not hist or list(hist[0].paths)[:1] != ["primary"]:
            await self.switch("primary", "start from the primary (a start-up flap moved the group)")
        return await self.wait_ready(max(5.0, timeout - (time.monotonic() - t0)))

    async def wait_ready(self, timeout: float = 60.0) -> float:
        """Every sidecar holds a decision on primary with both paths up, and streams from a replica;
        and the venue's control service answers.

        The rows inject venue faults through that service, which the venue may open after
        its gateways: a row that ran first would fail with "connection refused". Awaiting
        an answer also leaves the cached channel connected for the rows.
        """

        def ok(_h: str, st: spb.SidecarLocalStatus, r: spb.Route) -> bool:
            return (
                _streaming_with_every_path_up(st, r)
                and r.effective_path == "primary"
                and r.epoch.revision > 0
            )

        took = await self.until(lambda: self.all_hosts(ok), timeout, "every sidecar ready on primary")

        async def venue_answers() -> bool:
            return await self.venue_counters() is not None

        return took + await self.until(venue_answers, max(5.0, timeout - took), "the venue's control service")


def _streaming_with_every_path_up(st: spb.SidecarLocalStatus, r: spb.Route) -> bool:
    """The sidecar streams from a replica and reports each of the group's paths up."""
    return (
        st.control_plane_connected
        and len(r.health) == len(PATHS)
        and all(x.state == pb.PATH_STATE_UP for x in r.health)
    )


def leader_of(st: apb.ClusterStatus | None) -> str:
    return st.leader.replica_id if st is not None else ""


async def bounded(coro: Awaitable[T], timeout: float, what: str) -> T:
    try:
        return await asyncio.wait_for(coro, timeout)
    except TimeoutError as exc:
        raise WaitTimeout(f"{what} did not finish in {timeout}s") from exc
