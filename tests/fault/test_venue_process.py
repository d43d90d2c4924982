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


def _pause(fs: FaultSystem) -> None:
    fs.cluster.pause("venue")


def _resume(fs: FaultSystem) -> None:
    fs.cluster.resume("venue")


def _kill(fs: FaultSystem) -> None:
    fs.cluster.kill("venue")


def _restart(fs: FaultSystem) -> None:
    fs.cluster.restart("venue")
    fs.cluster.wait_venue()


# (what the row calls the fault, its end, how to cause it, how to end it)
ROWS = {
    "paused": ("venue SIGSTOP", "venue SIGCONT", _pause, _resume),
    "killed_and_restarted": ("venue SIGKILL", "venue restarted", _kill, _restart),
}


@pytest.mark.parametrize("row", list(ROWS))
async def test_venue_process(fs: FaultSystem, row: str) -> None:
    fault, healed, cause, heal = ROWS[row]
    fs.checker.data_plane_fault(time.monotonic(), active=True)
    cause(fs)
    try:
        down = await _all_down(fs, fault)
    finally:
        heal(fs)
    t1 = time.monotonic()
    fs.checker.data_plane_fault(t1, active=False)
    back = await _all_back(fs, t1, healed)
    fs.bound(f"{fault}: both paths down on every host", down, 5 * 0.5)
    fs.bound(
        f"{healed}: every host back on its first path with an ack", back, 5 * (RECONNECT_MAX_S + HOLD_DOWN_S)
    )
    await fs.finish_clean()
