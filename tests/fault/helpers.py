"""Waits shared by the fault rows."""

from __future__ import annotations

from failover.faults.observe import leader_of
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
