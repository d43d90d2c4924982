"""Path faults at the venue (the simulator's own fault control): reset, stall, slow,
both paths down, and the backup failing during the failover."""

from __future__ import annotations

import asyncio
import time

import pytest

from failover.v1 import venue_pb2
from tests.fault.conftest import FaultSystem
from tests.fault.helpers import all_on

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]

RESET, STALL, SLOW, RECOVER = (
    venue_pb2.FAULT_KIND_RESET,
    venue_pb2.FAULT_KIND_STALL,
    venue_pb2.FAULT_KIND_SLOW,
    venue_pb2.FAULT_KIND_RECOVER,
)


async def _fault(fs: FaultSystem, gateway: str, kind: venue_pb2.FaultKind, delay_ms: int = 0) -> None:
    fs.checker.data_plane_fault(time.monotonic(), active=kind != RECOVER)
    await fs.obs.venue_fault(gateway, kind, delay_ms=delay_ms)


async def _first_ack_everywhere(fs: FaultSystem, t0: float, path: str, timeout: float) -> float:
    def acked() -> bool:
        return all(s.first_ack_after(t0, path) is not None for s in fs.strategies.values())

    await fs.obs.until(acked, timeout, f"an ack on {path} on every host")
    return max(s.first_ack_after(t0, path) or 0.0 for s in fs.strategies.values()) - t0


@pytest.mark.parametrize(("kind", "name"), [(RESET, "reset"), (STALL, "stall")])
async def test_primary_fails(fs: FaultSystem, kind: venue_pb2.FaultKind, name: str) -> None:
    """Every host flips to the backup on its own and orders are acked there."""
    t0 = time.monotonic()
    await _fault(fs, "primary", kind)
    flipped = await all_on(fs, "backup", 10, "every host on backup")
    first_ack = await _first_ack_everywhere(fs, t0, "backup", 10)
    fs.bound(f"primary {name}: every host on backup", flipped, 5 * 0.3)
    fs.bound(f"primary {name}: first ack on backup on every host", first_ack, 5 * 0.4)
    await _fault(fs, "primary", RECOVER)
    back = await fs.obs.until(
        lambda: fs.obs.all_hosts(
            lambda _h, _s, r: all(x.state == 1 for x in r.health) and r.effective_path == r.decision_paths[0]
        ),
        20,
        "every host back on the decision's first path with both paths up",
    )
    fs.bound(f"primary {name}: recovered to the decision's first path", back, 5 * 2.0)
    await fs.finish_clean()


@pytest.mark.xfail(
    strict=False,
    reason=(
        "a sudden step to +20 ms per reply trips the sidecar's order_timeout (4x the RTT median, "
        "floor 5 ms): an order unanswered for ~20 ms and no probe echo within 5 ms marks the path "
        "'silent' and the host flips, though the path is only slow"
    ),
)
async def test_primary_slow_no_flip(fs: FaultSystem) -> None:
    """A slow primary (20 ms added each way, ~100x loopback RTT) is slow, not dead: nobody flips."""
    t0 = time.monotonic()
    await _fault(fs, "primary", SLOW, delay_ms=20)
    while time.monotonic() - t0 < 3:  # noqa: ASYNC110 - the fault is a duration
        await fs.obs.poll_once()
        assert fs.obs.all_hosts(lambda _h, _s, r: r.effective_path == "primary"), fs.obs.describe()
    counts = {h: s.counts(t0) for h, s in fs.strategies.items()}
    await _fault(fs, "primary", RECOVER)
    for h, c in counts.items():
        assert c.get("ACKED", 0) > 0 and set(c) <= {"ACKED", "pending"}, (h, c)
    await fs.finish_clean()


async def test_both_paths_down_no_path_at_once(fs: FaultSystem) -> None:
    """Nothing healthy: every order gets NO_PATH within the sidecar's bound, nothing waits forever."""
    await _fault(fs, "primary", RESET)
    await _fault(fs, "backup", RESET)
    await fs.obs.until(
        lambda: fs.obs.all_hosts(lambda _h, _s, r: all(x.state != 1 for x in r.health)),
        10,
        "both paths down on every host",
    )
    t0 = time.monotonic()
    await asyncio.sleep(1.5)
    recs = [r for s in fs.strategies.values() for r in s.records.values() if r.t_sent >= t0 and r.kind]
    late = [r for s in fs.strategies.values() for r in s.records.values() if r.t_sent >= t0 and not r.kind]
    assert recs and all(r.kind == "NO_PATH" for r in recs), {r.kind for r in recs}
    worst = max(r.t_outcome - r.t_sent for r in recs)
    assert all(time.monotonic() - r.t_sent < 1.0 for r in late), "an order waits for longer than its bound"
    wait_s = fs.cluster.topo.no_path_wait_ms / 1000
    fs.bound("both paths down: slowest NO_PATH outcome", worst, 5 * (wait_s + 0.05))
    await _fault(fs, "primary", RECOVER)
    await _fault(fs, "backup", RECOVER)
    t1 = time.monotonic()
    back = await _first_ack_everywhere(fs, t1, "primary", 20)
    fs.bound("both paths down: recover to an ack on every host", back, 5 * 1.0)
    await fs.finish_clean()


async def test_backup_fails_during_failover(fs: FaultSystem) -> None:
    """The primary resets and the backup follows 50 ms later: every order gets one outcome at once,
    and routing resumes on whichever path comes back first."""
    t0 = time.monotonic()
    await _fault(fs, "primary", RESET)
    await asyncio.sleep(0.05)
    await _fault(fs, "backup", RESET)
    await asyncio.sleep(1.0)
    await _fault(fs, "primary", RECOVER)
    t1 = time.monotonic()
    back = await _first_ack_everywhere(fs, t1, "primary", 20)
    await _fault(fs, "backup", RECOVER)
    fs.bound("backup fails during failover: primary back to an ack on every host", back, 5 * 1.0)
    counts = {h: s.counts(t0) for h, s in fs.strategies.items()}
    print(f"[fault] backup fails during failover: outcomes {counts}")
    await fs.finish_clean()
