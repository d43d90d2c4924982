"""Fixtures of the fault tier: the real processes, the proxy, the observer and strategies.

Each test gets a fresh cluster (3 etcd members, 3 coordinator replicas, a venue,
two sidecars with one strategy each) and an observing checker that runs for the
whole test; at the end every invariant must hold. A failing test keeps its
process logs (the path is printed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from failover.chaos.strategy import Strategy
from failover.faults.harness import GROUP, FaultCluster, Topology
from failover.faults.invariants import Checker, Report
from failover.faults.observe import Observer
from failover.faults.proxy import ProxyThread


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


@pytest.fixture
def proxy() -> Iterator[ProxyThread]:
    with ProxyThread() as p:
        yield p


@pytest.fixture
def topology() -> Topology:
    return Topology()


@pytest.fixture
async def fs(
    proxy: ProxyThread, topology: Topology, request: pytest.FixtureRequest
) -> AsyncIterator[FaultSystem]:
    cluster = FaultCluster(topology, proxy)
    checker = Checker(hold_down_s=topology.hold_down_ms / 1000, grace_s=0.5, outcome_bound_s=5.0)
    obs = Observer(cluster, checker)
    system = FaultSystem(cluster, obs, checker)
    failed = True
    try:
        cluster.start()
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
        kept = failed or bool(os.environ.get("FAILOVER_FAULT_KEEP"))
        cluster.stop(keep=kept)
        if kept:
            print(f"[fault] logs kept in {Path(cluster.workdir)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
