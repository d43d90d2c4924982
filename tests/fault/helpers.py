"""Waits shared by the fault rows."""

from __future__ import annotations

import time

from failover.faults.observe import leader_of
from failover.faults.proxy import Mode
from tests.fault.conftest import FaultSystem


async def leader(fs: FaultSystem, exclude: set[str] | None = None, timeout: float = 30) -> str:
    async def found() -> bool:
        return leader_of(await fs.obs.cluster_status(exclude)) not in ("", *(exclude or ()))

    await fs.obs.until(found, timeout, "a leader")
    return leader_of(await fs.obs.cluster_status(exclude))


async def all_apply(fs: FaultSystem, path: str, epoch: tuple[int, int], timeout: float, what: str) -> None:
    await fs.obs.until(
        lambda: fs.obs.all_hosts(
            lambda _h, _s, r: (r.epoch.era, r.epoch.revision) >= epoch and r.effective_path == path
        ),
        timeout,
        what,
    )


async def all_on(fs: FaultSystem, path: str, timeout: float, what: str) -> float:
    return await fs.obs.until(
        lambda: fs.obs.all_hosts(lambda _h, _s, r: r.effective_path == path), timeout, what
    )


async def all_back_on_first_path(
    fs: FaultSystem,
    timeout: float = 20,
    what: str = "every host back on the decision's first path with both paths up",
) -> float:
    """Until every host has both paths up and routes on its decision's first path."""
    return await fs.obs.until(
        lambda: fs.obs.all_hosts(
            lambda _h, _s, r: all(x.state == 1 for x in r.health) and r.effective_path == r.decision_paths[0]
        ),
        timeout,
        what,
    )


async def first_ack_everywhere(
    fs: FaultSystem, t0: float, path: str, timeout: float, what: str = ""
) -> float:
    """Until every strategy has an ack on ``path`` for an order sent after ``t0``; the latest, from ``t0``."""

    def acked() -> bool:
        return all(s.first_ack_after(t0, path) is not None for s in fs.strategies.values())

    await fs.obs.until(acked, timeout, what or f"an ack on {path} on every host")
    return max(s.first_ack_after(t0, path) or 0.0 for s in fs.strategies.values()) - t0


async def pin_host_to(fs: FaultSystem, host: str, rid: str) -> None:
    """Make ``host`` stream from ``rid`` (cut it from the others until it moves, then heal)."""
    others = [r for r in fs.cluster.topo.replicas if r != rid]
    fs.cluster.cut_sidecar_from(host, others)
    await fs.obs.until(lambda: fs.obs.replica_of(host) == rid, 15, f"{host} to stream from {rid}")
    fs.cluster.cut_sidecar_from(host, others, Mode.PASS)


async def switch_applied(fs: FaultSystem, path: str, timeout: float) -> float:
    """An operator switch to ``path``, until every host applied it; returns the seconds it took."""
    t0 = time.monotonic()
    d = await fs.obs.switch(path, "fault row")
    await all_apply(fs, path, (d.epoch.era, d.epoch.revision), timeout, f"every host on {path}")
    return time.monotonic() - t0
