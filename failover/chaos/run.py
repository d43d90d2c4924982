"""``failover chaos``: random overlapping faults on a local cluster while strategies trade.

Starts the real processes (3 etcd members, 3 replicas, a venue, sidecars) with the
fault tier's harness, runs a strategy per host, and for ``duration`` injects faults
drawn from a seeded generator: at most two at once, each held for a random time,
then healed. After each heal it measures the recovery (heal -> every host on a
replica, on the decision's first path, with every path up) per fault kind. The
observing checker judges every invariant throughout.

While it runs: one line per fault injected or healed, and each recovery. At the end:
invariant results, outcome counts, recovery p50/p99/max per kind and
the seed to replay. Exit 1 on a violation or a recovery that did not happen (logs
kept and their directory printed), 0 otherwise. Loopback only; it stops every
process it started, by pid.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from failover.chaos.strategy import Strategy
from failover.cli_values import MAX_SECONDS
from failover.faults.harness import GROUP, FaultCluster, StartError, Topology
from failover.faults.invariants import Checker
from failover.faults.observe import Observer, WaitTimeout
from failover.faults.proxy import Mode, ProxyThread
from failover.machine import MachineLoad
from failover.rpc import error_text
from failover.v1 import types_pb2 as pb
from failover.v1 import venue_pb2

RECOVERY_BOUND_S = 30.0
GATEWAYS = ("gw:primary", "gw:backup")
LINE_DELAY_MS = 20.0  # added to every chunk each way on a slowed line, as the venue's own "slow"


@dataclass
class Fault:
    kind: str
    inject: Callable[[], Awaitable[None]]
    heal: Callable[[], Awaitable[None]]
    resource: str  # two faults never hit the same resource at once
    data_plane: bool = False
    control_plane: bool = False
    also: tuple[str, ...] = ()  # further resources it holds (a paused venue: both gateways' controls)

    @property
    def holds(self) -> set[str]:
        return {self.resource, *self.also}


@dataclass
class ChaosResult:
    seed: int
    duration_s: float
    faults: list[dict[str, Any]] = field(default_factory=list)
    recovery: dict[str, list[float]] = field(default_factory=dict)
    unrecovered: list[str] = field(default_factory=list)


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else 0.0


class Chaos:
    def __init__(self, cluster: FaultCluster, obs: Observer, rng: random.Random) -> None:
        self.c = cluster
        self.obs = obs
        self.rng = rng

    def catalogue(self) -> list[Fault]:
        c, obs = self.c, self.obs
        rep = self.rng.choice(c.topo.replicas)
        host = self.rng.choice(c.topo.hosts)
        member = self.rng.randrange(len(c.etcd.members)) if c.etcd else 0
        gw = self.rng.choice(("primary", "backup"))

        async def noop() -> None:
            return None

        async def kill_rep() -> None:
            c.kill(rep)

        async def start_rep() -> None:
            c.start_coordinator(rep)

        async def stop_rep() -> None:
            c.pause(rep)

        async def cont_rep() -> None:
            c.resume(rep)

        def venue(kind: venue_pb2.FaultKind) -> Callable[[], Awaitable[None]]:
            async def go() -> None:
                await obs.venue_fault(gw, kind, delay_ms=20 if kind == venue_pb2.FAULT_KIND_SLOW else 0)

            return go

        async def kill_member() -> None:
            assert c.etcd is not None
            c.etcd.kill(member)

        async def start_member() -> None:
            assert c.etcd is not None
            # Started here, on the main thread, so the kernel kills it if we die (procs.py);
            # only the wait for it goes to a worker thread.
            c.etcd.restart(member, wait=False)
            await asyncio.to_thread(c.etcd.wait_healthy, 20.0, [c.etcd.members[member]])

        async def pause_member() -> None:
            assert c.etcd is not None
            c.etcd.signal_member(member, signal.SIGSTOP)

        async def cont_member() -> None:
            assert c.etcd is not None
            c.etcd.signal_member(member, signal.SIGCONT)

        async def pause_venue() -> None:
            c.pause("venue")

        async def cont_venue() -> None:
            c.resume("venue")

        async def cut_host() -> None:
            c.cut_sidecar_from(host, mode=Mode.CUT)

        async def heal_host() -> None:
            c.heal_sidecar(host)

        async def cut_rep_etcd() -> None:
            c.cut_replica_from_etcd(rep, Mode.STALL)

        async def heal_rep_etcd() -> None:
            c.cut_replica_from_etcd(rep, Mode.PASS)

        async def kill_sidecar() -> None:
            c.kill(host)
            c.start_sidecar(host)

        def line(mode: Mode, delay_ms: float = 0.0) -> Callable[[], Awaitable[None]]:
            """Every host's line to ``gw``, broken between the hosts and the venue."""

            async def go() -> None:
                c.break_line(gw, mode, delay_ms)

            return go

        line_ok = line(Mode.PASS)

        recover = venue(venue_pb2.FAULT_KIND_RECOVER)
        return [
            Fault("replica SIGKILL", kill_rep, start_rep, f"replica:{rep}", control_plane=True),
            Fault("replica SIGSTOP", stop_rep, cont_rep, f"replica:{rep}", control_plane=True),
            Fault(
                f"path reset ({gw})", venue(venue_pb2.FAULT_KIND_RESET), recover, f"gw:{gw}", data_plane=True
            ),
            Fault(
                f"path stall ({gw})", venue(venue_pb2.FAULT_KIND_STALL), recover, f"gw:{gw}", data_plane=True
            ),
            Fault(
                f"path slow ({gw})", venue(venue_pb2.FAULT_KIND_SLOW), recover, f"gw:{gw}", data_plane=True
            ),
            Fault("etcd member SIGKILL", kill_member, start_member, f"etcd:{member}", control_plane=True),
            Fault("etcd member SIGSTOP", pause_member, cont_member, f"etcd:{member}", control_plane=True),
            # Both gateways at once. A paused venue answers no fault control: it holds both
            # gateways' (a line fault, outside the venue, may overlap it).
            Fault("venue SIGSTOP", pause_venue, cont_venue, "venue", data_plane=True, also=GATEWAYS),
            Fault("sidecar cut from replicas", cut_host, heal_host, f"host:{host}", control_plane=True),
            Fault("replica cut from etcd", cut_rep_etcd, heal_rep_etcd, f"replica:{rep}", control_plane=True),
            Fault("sidecar SIGKILL+restart", kill_sidecar, noop, f"host:{host}"),
            # The lines: the venue hears nothing of these, so one may overlap a venue fault.
            Fault(f"line cut ({gw})", line(Mode.CUT), line_ok, f"line:{gw}", data_plane=True),
            Fault(f"line blackholed ({gw})", line(Mode.STALL), line_ok, f"line:{gw}", data_plane=True),
            Fault(
                f"line replies dropped ({gw})", line(Mode.DROP_DOWN), line_ok, f"line:{gw}", data_plane=True
            ),
            Fault(f"line orders dropped ({gw})", line(Mode.DROP_UP), line_ok, f"line:{gw}", data_plane=True),
            Fault(
                f"line slowed ({gw})", line(Mode.PASS, LINE_DELAY_MS), line_ok, f"line:{gw}", data_plane=True
            ),
        ]

    def healthy(self) -> bool:
        def ok(_h: str, st: Any, r: Any) -> bool:
            return bool(
                st.control_plane_connected
                and r.decision_paths
                and r.effective_path == r.decision_paths[0]
                and len(r.health) == 2
                and all(x.state == pb.PATH_STATE_UP for x in r.health)
            )

        return self.obs.all_hosts(ok, since=time.monotonic() - 0.5)


async def run_chaos(duration_s: float, seed: int, hosts: int = 2, out: Callable[[str], None] = print) -> int:
    rng = random.Random(seed)
    topo = Topology(hosts=tuple(f"h{i + 1}" for i in range(hosts)), proxy_lines=True)
    checker = Checker(hold_down_s=topo.hold_down_ms / 1000, grace_s=0.5, outcome_bound_s=5.0)
    result = ChaosResult(seed, duration_s)
    load = MachineLoad()
    with ProxyThread() as proxy:
        cluster = FaultCluster(topo, proxy)
        obs = Observer(cluster, checker)
        strategies: list[Strategy] = []
        ok = False
        try:
            try:
                # On the main thread: a child started from a worker thread would not die with
                # us (procs.py). It blocks the loop only while nothing else runs on it.
                cluster.start()
                obs.start()
                await obs.settle_on_primary(60)
            except (StartError, WaitTimeout) as exc:
                out(f"chaos: the cluster did not become ready: {exc}")
                return 1
            for h in topo.hosts:
                s = Strategy(h, cluster.sockets[h], checker, GROUP)
                s.start()
                strategies.append(s)
            chaos = Chaos(cluster, obs, rng)
            active: dict[str, tuple[Fault, float]] = {}
            t_end = time.monotonic() + duration_s
            t0 = time.monotonic()
            out(
                f"chaos: cluster ready (3 etcd members, {len(topo.replicas)} replicas, a venue, "
                f"{hosts} sidecars); faults for {duration_s:.0f}s, seed {seed}"
            )

            def say(what: str) -> None:  # progress: one line per fault injected or healed
                out(f"  t+{time.monotonic() - t0:7.1f}s  {what}")

            while time.monotonic() < t_end:
                await asyncio.sleep(rng.uniform(0.5, 3.0))
                # heal what is due, then maybe inject something new (at most two at once)
                for res, (f, until) in list(active.items()):
                    if time.monotonic() >= until:
                        await _step(f"healing {f.kind}", f.heal)
                        del active[res]
                        say(f"healed {f.kind}")
                        if f.data_plane:
                            checker.data_plane_fault(time.monotonic(), active=False)
                        if not active:
                            checker.control_plane(time.monotonic(), up=True)
                            say(await _recover(chaos, obs, f.kind, result))
                if len(active) < 2 and time.monotonic() < t_end - 5:
                    f = rng.choice(chaos.catalogue())
                    if not f.holds & {r for g, _ in active.values() for r in g.holds}:
                        hold = rng.uniform(1.0, 6.0)
                        now = time.monotonic()
                        result.faults.append(
                            {"t": round(now - t0, 2), "kind": f.kind, "hold_s": round(hold, 2)}
                        )
                        if f.data_plane:
                            checker.data_plane_fault(now, active=True)
                        await _step(f"injecting {f.kind}", f.inject)
                        active[f.resource] = (f, now + hold)
                        say(f"inject {f.kind}, held {hold:.1f}s")
            for f, _ in active.values():
                await _step(f"healing {f.kind}", f.heal)
                say(f"healed {f.kind}")
                if f.data_plane:
                    checker.data_plane_fault(time.monotonic(), active=False)
            if active:
                say(await _recover(chaos, obs, "final heal", result))
            for s in strategies:
                await s.stop()
            await obs.poll_once()
            await obs.stop()
            rep = checker.finish(time.monotonic())
            ok = rep.ok and not result.unrecovered
            out(f"chaos: seed {seed}, {duration_s:.0f}s, {len(result.faults)} faults injected")
            out(f"invariants: {'all held' if rep.ok else f'{len(rep.violations)} violation(s)'}")
            for v in rep.violations[:50]:
                out(f"  {v}")
            out(f"orders: sent {rep.orders_sent}, outcomes {json.dumps(rep.outcomes)}")
            out(f"route views checked: {rep.route_views}, decisions seen: {rep.epochs_seen}")
            out("recovery (heal -> every host on a replica, first path, all paths up):")
            for kind, xs in sorted(result.recovery.items()):
                out(
                    f"  {kind:32s} n={len(xs):3d} p50={percentile(xs, 0.5):6.2f}s "
                    f"p99={percentile(xs, 0.99):6.2f}s max={max(xs):6.2f}s"
                )
            for u in result.unrecovered:
                out(f"  NOT RECOVERED within {RECOVERY_BOUND_S:.0f}s: {u}")
            out(f"replay: failover chaos --duration {duration_s:.0f}s --seed {seed}")
        except StepFailed as exc:
            out(f"chaos: {exc}; stopped (replay: failover chaos --duration {duration_s:.0f}s --seed {seed})")
        finally:
            for s in strategies:
                await s.stop(drain_s=0)
            await obs.stop()
            cluster.stop(keep=not ok)
            if not ok:
                out(f"logs kept in {cluster.workdir}")
            m = load.finish()  # every child is reaped now: its CPU counts as ours
            out(
                f"machine: load average {m['loadavg_at_start'][0]} -> {m['loadavg_at_end'][0]}, "
                f"other processes used {m['other_processes_mean_cores']} cores on average, "
                f"hypervisor steal {m['hypervisor_steal_share'] * 100:.1f} % of the cores' time"
            )
    return 0 if ok else 1


class StepFailed(Exception):
    """A fault could not be injected or healed: the run cannot go on as scheduled."""


async def _step(what: str, fn: Callable[[], Awaitable[None]]) -> None:
    try:
        await fn()
    except Exception as exc:
        raise StepFailed(f"{what} failed: {error_text(exc) or repr(exc)}") from exc


async def _recover(chaos: Chaos, obs: Observer, kind: str, result: ChaosResult) -> str:
    """Waits for every host to recover and files the time under ``kind``; says how it went."""
    t = time.monotonic()
    try:
        took = await obs.until(chaos.healthy, RECOVERY_BOUND_S, f"recovery after {kind}")
    except WaitTimeout as exc:
        result.unrecovered.append(f"{kind}: {str(exc)[:300]}")
        return f"NOT recovered within {RECOVERY_BOUND_S:.0f}s after {kind}"
    took = max(took, time.monotonic() - t)
    result.recovery.setdefault(kind, []).append(took)
    return f"recovered in {took:.2f}s"


def parse_duration(text: str) -> float:
    """'90', '90s', '2m', '1h' -> seconds; ValueError naming the problem."""
    t = text.strip().lower()
    mult = {"s": 1, "m": 60, "h": 3600}.get(t[-1:])
    num = t[:-1] if mult else t
    try:
        v = float(num) * (mult or 1)
    except ValueError:
        raise ValueError(f"--duration: {text!r} is not a duration like 120s or 2m") from None
    if not (math.isfinite(v) and 0 < v <= MAX_SECONDS):  # nan fails every comparison
        raise ValueError(f"--duration: {text!r} is not from 0 to {MAX_SECONDS:g} seconds (a day)")
    return v


def install_sigterm() -> None:
    """SIGTERM ends the run like Ctrl-C, so everything started is stopped."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
