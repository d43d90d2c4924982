"""The venue simulator's process paused and killed: both lines of every host go at once.

A venue (or the host's network to it) that freezes is a silent failure of every path
together; one that dies and comes back is a reset of every path, then a fresh venue
with no sessions. Each host must give every order one outcome at once (NO_PATH while
nothing is up, IN_DOUBT for what was in flight), keep its route, and be back on the
decision's first path with both lines logged on once the venue is.
"""

from __future__ import annotations

import time

import pytest

from tests.fault.conftest import FaultSystem

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]

RECONNECT_MAX_S = 2.0  # the sidecar's default path reconnect backoff ceiling
HOLD_DOWN_S = 1.0  # the failback hold-down of the fault topology's group


async def _all_down(fs: FaultSystem, what: str) -> float:
    return await fs.obs.until(
        lambda: fs.obs.all_hosts(lambda _h, _s, r: all(x.state != 1 for x in r.health)),
        10,
        f"both paths down on every host ({what})",
    )


async def _all_back(fs: FaultSystem, t0: float, what: str) -> float:
    def back() -> bool:
        return fs.obs.all_hosts(
            lambda h, _s, r: (
                len(r.health) == 2
                and all(x.state == 1 for x in r.health)
                and r.effective_path == r.decision_paths[0]
                and fs.strategies[h].first_ack_after(t0, r.decision_paths[0]) is not None
            )
        )

    return await fs.obs.until(back, 30, f"every host back on its first path with an ack ({what})")


async def test_venue_paused_past_the_silence_limit(fs: FaultSystem) -> None:
    fs.checker.data_plane_fault(time.monotonic(), active=True)
    fs.cluster.pause("venue")
    try:
        down = await _all_down(fs, "venue SIGSTOP")
    finally:
        fs.cluster.resume("venue")
    t1 = time.monotonic()
    fs.checker.data_plane_fault(t1, active=False)
    back = await _all_back(fs, t1, "venue SIGCONT")
    fs.bound("venue SIGSTOP: both paths down on every host", down, 5 * 0.5)
    fs.bound(
        "venue SIGCONT: every host back on its first path with an ack",
        back,
        5 * (RECONNECT_MAX_S + HOLD_DOWN_S),
    )
    await fs.finish_clean()


async def test_venue_killed_and_restarted(fs: FaultSystem) -> None:
    fs.checker.data_plane_fault(time.monotonic(), active=True)
    fs.cluster.kill("venue")
    down = await _all_down(fs, "venue SIGKILL")
    fs.cluster.restart("venue")
    fs.cluster.wait_venue()
    t1 = time.monotonic()
    fs.checker.data_plane_fault(t1, active=False)
    back = await _all_back(fs, t1, "venue restarted")
    fs.bound("venue SIGKILL: both paths down on every host", down, 5 * 0.5)
    fs.bound(
        "venue restarted: every host back on its first path with an ack",
        back,
        5 * (RECONNECT_MAX_S + HOLD_DOWN_S),
    )
    await fs.finish_clean()
