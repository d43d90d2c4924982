"""Fixtures of the fault tier: the real processes, the proxy, the observer and strategies.

The rows of a test module share one cluster (3 etcd members, 3 coordinator
replicas, a venue, two sidecars with one strategy each), restored between rows;
each row gets its own observing checker and strategies for the whole row, and at
the end every invariant must hold. A failing row keeps its process logs (the path
is printed, and its report shows each coordinator's lease and leadership lines) and
the next row gets a fresh cluster.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from failover.chaos.strategy import Strategy
from failover.faults.harness import GROUP, PATHS, FaultCluster, Topology
from failover.faults.invariants import Checker, Report
from failover.faults.observe import Observer, WaitTimeout, leader_of
from failover.faults.proxy import ProxyThread
from failover.machine import MachineLoad
from failover.v1 import venue_pb2


@dataclass
class FaultSystem:
    cluster: FaultCluster
    obs: Observer
    checker: Checker
    strategies: dict[str, Strategy] = field(default_factory=dict)

    def bound(self, name: str, measured_s: float, bound_s: float) -> None:
        """Assert a generous recovery bound and report the measured time."""
        bound_s = max(bound_s, 2.0)
        line = f"[fault] {name}: {measured_s:.3f}s (bound {bound_s:.1f}s)"
        print(line)
        out = os.environ.get("FAILOVER_FAULT_RESULTS")
        if out:
            with open(out, "a") as f:
                f.write(json.dumps({"fault": name, "seconds": round(measured_s, 4), "bound": bound_s}) + "\n")
        assert measured_s <= bound_s, f"{line}: over the bound\n{self.obs.describe()}"

    async def finish_clean(self) -> Report:
        """Stop the strategies, close the books, and require every invariant held."""
        rep = await self.finish()
        print(f"[fault] outcomes {rep.outcomes}, route views {rep.route_views}, epochs {rep.epochs_seen}")
        assert rep.ok, "invariants broken:\n" + "\n".join(str(v) for v in rep.violations[:20])
        return rep

    async def finish(self) -> Report:
        for s in self.strategies.values():
            await s.stop()
        await self.obs.poll_once()
        await self.obs.stop()
        return self.checker.finish(time.monotonic())


_REPORT_LINES = r"lease|leader|keepalive|term|fenc|deposed|\"level\": \"(WARNING|ERROR)|Traceback"
"""What a failed row's report shows of each coordinator's log (its last 40 such lines)."""


class SharedCluster:
    """One cluster for the rows of a test module; rebuilt only when a row leaves it broken.

    Starting the processes costs 15-30 s on shared cores, restoring them (heal every
    link and process, recover the venue, wait for a leader and every host on the
    newest decision, on primary, both paths up) a second or two. A row that fails,
    or whose restore times out, gets its cluster stopped (logs kept) and the next row
    a fresh one. ``FAILOVER_FAULT_FRESH=1`` gives every row its own cluster.
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.cluster: FaultCluster | None = None
        self.proxy: ProxyThread | None = None
        self.rows = 0

    def get(self, topology: Topology | None = None) -> tuple[FaultCluster, bool]:
        """The cluster and whether it is reused (then it needs ``restore``)."""
        if self.cluster is not None:
            return self.cluster, True
        self.proxy = ProxyThread()
        self.cluster = FaultCluster(topology or self.topology, self.proxy)
        self.rows = 0
        try:
            self.cluster.start()
        except BaseException:
            self.discard(keep=True)
            raise
        return self.cluster, False

    def discard(self, keep: bool = False) -> None:
        if self.cluster is not None:
            self.cluster.stop(keep=keep)
            if keep:
                print(f"[fault] logs kept in {Path(self.cluster.workdir)}")
        if self.proxy is not None:
            self.proxy.close()
        self.cluster, self.proxy = None, None


async def restore(cluster: FaultCluster, timeout: float = 45.0) -> float:
    """Bring a used cluster back to the ready state; returns the seconds it took."""
    t0 = time.monotonic()
    restarted = cluster.heal_processes()
    if cluster.etcd is not None:
        await asyncio.to_thread(cluster.etcd.wait_healthy, 20.0)
    scratch = Observer(cluster, Checker())
    scratch.start()
    try:

        async def venue_recovered() -> bool:
            try:
                for gw in PATHS:
                    await scratch.venue_fault(gw, venue_pb2.FAULT_KIND_RECOVER)
                return True
            except grpc.aio.AioRpcError:  # the venue may still be starting
                return False

        await scratch.until(venue_recovered, 20, "the venue recovering both gateways")
        deadline = time.monotonic() + timeout
        while True:
            # Loops: a fresh cluster on a loaded machine may move the group to the backup
            # (a start-up flap) after the history was read.
            try:
                await leader_within(scratch, max(1.0, deadline - time.monotonic()))
                hist = await scratch.history(1)
                if not hist or list(hist[0].paths)[:1] != ["primary"]:
                    d = await scratch.switch("primary", "restore between fault rows")
                    newest = (d.epoch.era, d.epoch.revision)
                else:
                    newest = (hist[0].epoch.era, hist[0].epoch.revision)
                await scratch.until(
                    _all_on_or_after(scratch, newest),
                    max(1.0, deadline - time.monotonic()),
                    f"every host on the newest decision {newest}",
                )
                await scratch.wait_ready(min(10.0, max(1.0, deadline - time.monotonic())))
                await scratch.until(scratch.replicas_answering, 10.0, "every replica answering")
                break
            except WaitTimeout:  # also a switch sent while a restarted replica was not serving yet
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await scratch.stop()
    took = time.monotonic() - t0
    print(f"[fault] cluster restored in {took:.2f}s (restarted: {', '.join(restarted) or 'none'})")
    return took


def _all_on_or_after(obs: Observer, epoch: tuple[int, int]) -> Callable[[], bool]:
    return lambda: obs.all_hosts(lambda _h, _s, r: (r.epoch.era, r.epoch.revision) >= epoch)


async def leader_within(obs: Observer, timeout: float) -> str:
    async def found() -> bool:
        return leader_of(await obs.cluster_status()) != ""

    await obs.until(found, timeout, "a leader")
    return leader_of(await obs.cluster_status())


@pytest.fixture(scope="session")
def machine_load() -> Iterator[None]:
    """The machine's load over the fault rows of the session (it is shared): printed, and filed
    with the results."""
    load = MachineLoad()
    yield
    summary = load.finish()
    print(f"\n[fault] machine load over the tier: {summary}")
    out = os.environ.get("FAILOVER_FAULT_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"machine_load": summary}) + "\n")


@pytest.fixture(scope="module")
def topology() -> Topology:
    return Topology()


@pytest.fixture(scope="module")
def shared(topology: Topology) -> Iterator[SharedCluster]:
    holder = SharedCluster(topology)
    yield holder
    holder.discard(keep=bool(os.environ.get("FAILOVER_FAULT_KEEP")))


@pytest.fixture
async def fs(
    shared: SharedCluster, request: pytest.FixtureRequest, machine_load: None
) -> AsyncIterator[FaultSystem]:
    """A ready cluster (shared by the module's rows unless the row is marked ``own_cluster``),
    with a fresh checker, observer and strategies for this row."""
    own = request.node.get_closest_marker("own_cluster")
    holder = SharedCluster(Topology(**own.kwargs)) if own else shared
    cluster, reused = holder.get()
    try:
        # also on a fresh cluster: under load the coordinators may have moved the group to
        # the backup while the sidecars were still logging on
        await restore(cluster, timeout=45 if reused else 60)
    except Exception as exc:  # noqa: BLE001 - any failure to restore: start afresh
        if not reused:
            holder.discard(keep=True)  # stop it now, logs kept (not at the session's end)
            raise
        print(f"[fault] restore failed ({exc!s:.300}); starting a fresh cluster")
        holder.discard(keep=True)
        cluster, _ = holder.get()
        await restore(cluster, timeout=60)
    holder.rows += 1
    topology = cluster.topo
    checker = Checker(hold_down_s=topology.hold_down_ms / 1000, grace_s=0.5, outcome_bound_s=5.0)
    obs = Observer(cluster, checker)
    system = FaultSystem(cluster, obs, checker)
    failed = True
    try:
        obs.start()
        await obs.wait_ready(60)
        for h in topology.hosts:
            s = Strategy(h, cluster.sockets[h], checker, GROUP)
            s.start()
            system.strategies[h] = s
        yield system
        failed = bool(getattr(request.node, "rep_call", None) and request.node.rep_call.failed)
    finally:
        for s in system.strategies.values():
            await s.stop(drain_s=0)
        await obs.stop()
        if failed:
            # CI keeps the report, not the log files: the coordinators' own account goes in it.
            print(cluster.log_lines(_REPORT_LINES, prefix="c"))
        if failed or own or os.environ.get("FAILOVER_FAULT_FRESH"):
            holder.discard(keep=failed or bool(os.environ.get("FAILOVER_FAULT_KEEP")))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "own_cluster(**topology): this fault row gets its own cluster with these Topology fields",
    )
