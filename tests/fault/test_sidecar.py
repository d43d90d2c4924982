"""Sidecar faults: SIGKILL and restart while its control plane is unreachable."""

from __future__ import annotations

import time

import pytest

from failover.faults.proxy import Mode
from tests.fault.conftest import FaultSystem

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]


async def test_sidecar_restart_during_control_plane_outage(fs: FaultSystem) -> None:
    """Cut from every replica, killed and restarted: it routes on its state file with warm paths."""
    host = fs.cluster.topo.hosts[0]
    fs.cluster.cut_sidecar_from(host, mode=Mode.CUT)
    await fs.obs.until(
        lambda: fs.obs.last[host].status.control_plane_connected is False,
        10,
        f"{host} cut from every replica",
    )
    before = fs.obs.route(host)
    assert before is not None
    fs.cluster.kill(host)
    t0 = time.monotonic()
    fs.cluster.start_sidecar(host)

    def routing() -> bool:
        s = fs.obs.last.get(host)
        if s is None or s.t < t0:
            return False
        r = next((x for x in s.status.routes if x.group == before.group), None)
        return (
            r is not None
            and not s.status.control_plane_connected
            and r.effective_path == "primary"
            and (r.epoch.era, r.epoch.revision) == (before.epoch.era, before.epoch.revision)
            and len(r.health) == 2
            and all(x.state == 1 for x in r.health)
        )

    await fs.obs.until(routing, 30, f"{host} routing on its stored decision with both paths up")
    warm = time.monotonic() - t0
    await fs.obs.until(
        lambda: fs.strategies[host].first_ack_after(t0, "primary") is not None, 15, f"an ack through {host}"
    )
    first_ack = (fs.strategies[host].first_ack_after(t0, "primary") or 0.0) - t0
    fs.bound(
        "sidecar SIGKILL in a control-plane outage: restart to warm paths on the stored route", warm, 5 * 3.0
    )
    fs.bound("sidecar SIGKILL in a control-plane outage: restart to the first ack", first_ack, 5 * 3.0)
    fs.cluster.heal_sidecar(host)
    await fs.obs.until(
        lambda: fs.obs.last[host].status.control_plane_connected, 15, f"{host} back on a replica"
    )
    await fs.finish_clean()


async def test_sidecar_paused_past_stream_timeout(fs: FaultSystem) -> None:
    """A sidecar SIGSTOPped for 3 s (stream dead after 1 s), a decision made meanwhile, then SIGCONT:
    it resumes, reconnects and applies the decision; no split routing, every order one outcome."""
    host = fs.cluster.topo.hosts[0]
    pause_s = 3 * fs.cluster.topo.stream_dead_after_ms / 1000
    fs.cluster.pause(host)
    t0 = time.monotonic()
    try:
        d = await fs.obs.switch("backup", "while a sidecar is paused")
        epoch = (d.epoch.era, d.epoch.revision)
        while time.monotonic() - t0 < pause_s:  # noqa: ASYNC110 - the pause is a duration
            await fs.obs.poll_once()
    finally:
        fs.cluster.resume(host)
    t1 = time.monotonic()

    def applied() -> bool:
        s = fs.obs.last.get(host)
        r = fs.obs.route(host)
        return (
            s is not None
            and s.t > t1
            and s.status.control_plane_connected
            and r is not None
            and (r.epoch.era, r.epoch.revision) >= epoch
            and r.effective_path == "backup"
        )

    took = await fs.obs.until(applied, 20, f"{host} resumed on the decision made while it was paused")
    await fs.obs.until(
        lambda: fs.strategies[host].first_ack_after(t1, "backup") is not None, 15, f"an ack via {host}"
    )
    first_ack = (fs.strategies[host].first_ack_after(t1, "backup") or 0.0) - t1
    fs.bound("sidecar SIGSTOP 3 s: SIGCONT to the new decision applied", took, 5 * 1.5)
    fs.bound("sidecar SIGSTOP 3 s: SIGCONT to the first ack on the new path", first_ack, 5 * 1.5)
    await fs.finish_clean()
