"""`failover demo`: start everything, wait until warm, run the script, print the timeline, stop everything."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover_client.api import Sidecar
from rich.console import Console

from failover.demo.cluster import ClusterError, Layout, LocalCluster, wait_until
from failover.demo.control import Control
from failover.demo.observe import RouteWatch, Sender, watch_routes
from failover.demo.render import render_event, render_summary
from failover.demo.scenario import PRIMARY, EventResult, Script
from failover.gc_policy import freeze_startup_heap
from failover.machine import machine_info, write_json


@dataclass
class DemoOptions:
    quick: bool = False
    repeat: int = 1
    json_path: Path | None = None
    etcd: list[str] | None = None
    heartbeat_ms: int = 50
    probe_floor_ms: float | None = None
    order_interval_ms: float = 10.0
    hosts: int = 3
    keep_logs: bool = False
    pid_file: Path | None = None


class Demo:
    def __init__(self, opts: DemoOptions, console: Console) -> None:
        self.opts = opts
        self.out = console
        self.cluster = LocalCluster(
            Layout(hosts=opts.hosts, heartbeat_ms=opts.heartbeat_ms, probe_floor_ms=opts.probe_floor_ms),
            etcd_endpoints=list(opts.etcd or []),
            pid_file=opts.pid_file,
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.senders: dict[str, Sender] = {}
        self.steady_pause_ms: float | None = None  # longest ack gap with no fault, before the events
        self.steady_end = 0.0  # the first event's orders are those sent after it
        self.strategies: list[Sidecar] = []
        self.control: Control | None = None

    def step(self, text: str) -> float:
        self.out.print(f"[bold]>[/bold] {text}", highlight=False)
        return time.monotonic()

    def done(self, t: float, extra: str = "") -> None:
        self.out.print(
            f"  ok ({(time.monotonic() - t) * 1000:.0f} ms){' ' + extra if extra else ''}", highlight=False
        )

    async def start(self) -> None:
        c = self.cluster
        lay = c.layout
        t = self.step(
            "starting etcd" if not c.etcd_endpoints else f"using etcd at {','.join(c.etcd_endpoints)}"
        )
        c.start_etcd()  # on the main thread, so it dies with us (procs.py); nothing else runs yet
        self.done(t, ",".join(c.etcd_endpoints))
        t = self.step(
            f"starting the venue simulator (gateways primary {c.gateways['primary']}, "
            f"backup {c.gateways['backup']})"
        )
        c.start_venue()
        t2 = self.step(f"starting {lay.replicas} coordinator replicas")
        for i in range(lay.replicas):
            c.start_coordinator(f"c{i + 1}")
        self.control = Control(c.coordinator_addrs, c.venue_control, {})

        async def leader() -> str:
            st = await self.control.status()  # type: ignore[union-attr]
            return (
                st.leader.replica_id
                if st.leader.replica_id and st.groups and st.groups[0].decision.paths
                else ""
            )

        lid = await wait_until(leader, 30, "a leader and the first decision", c, 0.05)
        self.done(t2, f"leader {lid}")
        t = self.step(f"starting {lay.hosts} sidecars (heartbeat every {lay.heartbeat_ms} ms)")
        hosts = [f"h{i + 1}" for i in range(lay.hosts)]
        for h in hosts:
            c.start_sidecar(h)
        self.control = Control(c.coordinator_addrs, c.venue_control, c.sockets)
        await wait_until(lambda: all(Path(s).exists() for s in c.sockets.values()), 20, "sidecar sockets", c)
        self.done(t)
        t = self.step("waiting until every path is warm (logged on) on every host")
        await wait_until(self._warm, 30, "every sidecar logged on to both gateways", c, 0.05)
        counters = await self.control.counters()
        logons = {g.name: dict(g.logons_by_session) for g in counters.gateways}
        self.done(t, f"logons per gateway: {logons}")
        self.watches = {h: RouteWatch(h) for h in hosts}
        for h in hosts:
            self.tasks.append(asyncio.create_task(watch_routes(c.sockets[h], lay.group, self.watches[h])))
        await wait_until(
            lambda: all(w.last and w.last.effective == PRIMARY for w in self.watches.values()),
            10,
            "every host routing on primary",
            c,
        )
        t = self.step(
            f"starting an order sender per host (one order every {self.opts.order_interval_ms:g} ms)"
        )
        # This process is the hosts' strategies: its start-up heap is frozen as the sidecar's
        # is (failover/gc_policy.py), so a full collection here does not pause their orders.
        freeze_startup_heap()
        for h in hosts:
            sc = await Sidecar.connect(c.sockets[h], "demo")
            self.strategies.append(sc)
            s = self.senders[h] = Sender(h, sc, lay.group, self.opts.order_interval_ms)
            s.start()
        await wait_until(
            lambda: all(any(r.outcomes for r in s.sent.values()) for s in self.senders.values()),
            10,
            "the first outcomes",
            c,
        )
        self.done(t)
        # The same figure as each event's "order flow paused", with no fault: what the
        # machine and this process's own scheduling give, so an event's pause reads against it.
        quiet_s = 0.5 if self.opts.quick else 1.5
        t = self.step(f"letting orders flow for {quiet_s:g} s with no fault")
        t0 = time.monotonic()
        await asyncio.sleep(quiet_s)
        t1 = time.monotonic()
        self.steady_pause_ms = round(max(s.longest_ack_gap(t0, t1) for s in self.senders.values()) * 1000, 2)
        self.steady_end = t1
        self.done(t, f"longest gap between acks on any host: {self.steady_pause_ms:.1f} ms")

    async def _warm(self) -> bool:
        assert self.control is not None
        for h in self.cluster.sockets:
            st = await self.control.sidecar(h)
            r = [x for x in st.routes if x.group == self.cluster.layout.group]
            if not r or len([p for p in r[0].health if p.state == 1]) < 2 or not r[0].effective_path:
                return False
        return True

    async def script(self) -> list[EventResult]:
        assert self.control is not None
        settle = 0.2 if self.opts.quick else 0.6
        sc = Script(
            self.cluster,
            self.control,
            self.watches,
            self.senders,
            self.cluster.layout.group,
            settle,
            orders_since=self.steady_end,
        )
        results: list[EventResult] = []
        for round_ in range(self.opts.repeat):
            label = f" (round {round_ + 1}/{self.opts.repeat})" if self.opts.repeat > 1 else ""
            steps = [
                ("hard failure: resetting the primary gateway", lambda: sc.path_failure("hard")),
                ("recovering the primary, then failing back by operator switch", self._failback(sc)),
                ("silent failure: stalling the primary gateway", lambda: sc.path_failure("silent")),
                ("recovering the primary, then failing back by operator switch", self._failback(sc)),
                (
                    "killing the leader coordinator (SIGKILL) while orders flow",
                    lambda: sc.leader_kill(self.cluster.layout.lease_ttl_s),
                ),
            ]
            for i, (title, fn) in enumerate(steps, 1):
                self.out.print()
                self.out.rule(f"[{i}] {title}{label}")
                r = await fn()
                results.append(r)
                render_event(r, self.out)
            if round_ + 1 < self.opts.repeat:
                await wait_until(self._replicas_back, 30, "the killed replica to rejoin", self.cluster, 0.1)
        return results

    def _failback(self, sc: Script) -> Any:
        async def run() -> EventResult:
            await sc.recover_primary()
            return await sc.operator_switch(PRIMARY, "primary recovered")

        return run

    async def _replicas_back(self) -> bool:
        assert self.control is not None
        st = await self.control.status()
        return len([r for r in st.replicas if r.reachable]) == self.cluster.layout.replicas

    async def finish(self, results: list[EventResult]) -> int:
        for s in self.senders.values():
            await s.stop(drain_s=3.0)
        total = sum(len(s.sent) for s in self.senders.values())
        missing = [(h, r.msg_id) for h, s in self.senders.items() for r in s.sent.values() if r.outcomes == 0]
        doubled = [(h, r.msg_id) for h, s in self.senders.items() for r in s.sent.values() if r.outcomes > 1]
        assert self.control is not None
        counters = await self.control.counters()
        self.out.print()
        self.out.rule("summary")
        render_summary(results, self.out, steady_pause_ms=self.steady_pause_ms)
        self.out.print(
            f"orders sent: {total}; without an outcome: {len(missing)}; with more than one: "
            f"{len(doubled)}; venue duplicates: {counters.duplicates}"
        )
        if self.opts.json_path is not None:
            data = {
                "events": [r.as_dict() for r in results],
                "steady_flow_pause_ms": self.steady_pause_ms,
                "orders_total": total,
                "orders_without_outcome": len(missing),
                "orders_with_several_outcomes": len(doubled),
                "venue_duplicates": counters.duplicates,
                "options": {
                    "heartbeat_ms": self.opts.heartbeat_ms,
                    "hosts": self.opts.hosts,
                    "order_interval_ms": self.opts.order_interval_ms,
                    "repeat": self.opts.repeat,
                },
                "machine": machine_info(etcd=True),
            }
            write_json(self.opts.json_path, data)
            self.out.print(f"timeline written to {self.opts.json_path}")
        if missing or doubled or counters.duplicates:
            self.out.print("[red]FAILED: some orders did not get exactly one outcome[/red]")
            return 1
        return 0

    async def shutdown(self) -> None:
        for s in self.senders.values():
            with contextlib.suppress(Exception):
                await s.stop(drain_s=0)
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for sc in self.strategies:
            with contextlib.suppress(Exception):
                await sc.close()
        if self.control is not None:
            with contextlib.suppress(Exception):
                await self.control.close()


async def run_demo(opts: DemoOptions, console: Console) -> int:
    demo = Demo(opts, console)
    code = 1
    try:
        await demo.start()
        results = await demo.script()
        code = await demo.finish(results)
    except ClusterError as exc:
        console.print(f"[red]demo failed:[/red] {exc}", highlight=False)
        console.print(f"logs: {demo.cluster.workdir}")
        opts.keep_logs = True
        code = 1
    finally:
        await demo.shutdown()
        t = time.monotonic()
        killed = await asyncio.to_thread(demo.cluster.stop, opts.keep_logs)
        console.print(
            f"stopped {len(demo.cluster.children)} processes and etcd in "
            f"{(time.monotonic() - t) * 1000:.0f} ms" + (f" (had to SIGKILL {killed})" if killed else "")
        )
    return code
