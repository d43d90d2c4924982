"""Path faults at the venue (the simulator's own fault control): reset, stall, slow,
both paths down, and the backup failing during the failover."""

from __future__ import annotations

import asyncio
import time

import pytest

from failover.faults.observe import route_of
from failover.v1 import venue_pb2
from tests.fault.conftest import FaultSystem
from tests.fault.helpers import all_back_on_first_path, all_on, first_ack_everywhere

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]

RECONNECT_MAX_S = 2.0  # the sidecar's default path reconnect backoff ceiling

RESET, STALL, SLOW, RECOVER = (
    venue_pb2.FAULT_KIND_RESET,
    venue_pb2.FAULT_KIND_STALL,
    venue_pb2.FAULT_KIND_SLOW,
    venue_pb2.FAULT_KIND_RECOVER,
)


async def _fault(fs: FaultSystem, gateway: str, kind: venue_pb2.FaultKind, delay_ms: int = 0) -> None:
    fs.checker.data_plane_fault(time.monotonic(), active=kind != RECOVER)
    await fs.obs.venue_fault(gateway, kind, delay_ms=delay_ms)


@pytest.mark.parametrize(("kind", "name"), [(RESET, "reset"), (STALL, "stall")])
async def test_primary_fails(fs: FaultSystem, kind: venue_pb2.FaultKind, name: str) -> None:
    """Every host flips to the backup on its own and orders are acked there."""
    t0 = time.monotonic()
    await _fault(fs, "primary", kind)
    flipped = await all_on(fs, "backup", 10, "every host on backup")
    first_ack = await first_ack_everywhere(fs, t0, "backup", 10)
    fs.bound(f"primary {name}: every host on backup", flipped, 5 * 0.3)
    fs.bound(f"primary {name}: first ack on backup on every host", first_ack, 5 * 0.4)
    await _fault(fs, "primary", RECOVER)
    back = await all_back_on_first_path(fs)
    fs.bound(f"primary {name}: recovered to the decision's first path", back, 5 * 2.0)
    await fs.finish_clean()


@pytest.mark.xfail(
    strict=False,
    reason=(
        "on an overloaded machine (load average 15-25 on 2 cores) the venue simulator's delayed "
        "replies (timer-driven) arrive 140+ ms late: 'nothing received for 160 ms' passes the "
        "heartbeat silence limit (3 x 50 ms) and the slow path is a stalled one to any detector; "
        "passes at lower load"
    ),
)
async def test_primary_slow_no_flip(fs: FaultSystem) -> None:
    """A slow primary (20 ms added to every reply, ~100x loopback RTT) is slow, not dead: nobody flips.

    The step stays below the sidecar's probe timeout floor (the tier's topology: 150 ms)
    with room for a loaded machine: a step past the floor is read as a stall, by design."""
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


async def _first_ack_on_first_path(fs: FaultSystem, t0: float, timeout: float) -> float:
    """Every host back on its decision's first path with both paths up, and an ack there after ``t0``.

    The decision's first path, not a fixed one: while a path was down the leader may have
    moved the group (primary down on every reporting host: backup first), which is right."""

    def on_first(h: str) -> float | None:
        r = fs.obs.route(h)
        if r is None or not r.decision_paths or not all(x.state == 1 for x in r.health):
            return None
        if r.effective_path != r.decision_paths[0]:
            return None
        return fs.strategies[h].first_ack_after(t0, r.decision_paths[0])

    await fs.obs.until(
        lambda: all(on_first(h) is not None for h in fs.strategies),
        timeout,
        "an ack on the decision's first path on every host",
    )
    return max(on_first(h) or 0.0 for h in fs.strategies) - t0


async def test_both_paths_down_no_path_at_once(fs: FaultSystem) -> None:
    """Nothing healthy: every order gets NO_PATH within the sidecar's bound, nothing waits forever."""
    # Both in the same instant: one after the other, the leader may first move the group.
    await asyncio.gather(_fault(fs, "primary", RESET), _fault(fs, "backup", RESET))
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
    await asyncio.gather(_fault(fs, "primary", RECOVER), _fault(fs, "backup", RECOVER))
    t1 = time.monotonic()
    back = await _first_ack_on_first_path(fs, t1, 20)
    # a path down for 1.5 s retries its logon at the reconnect ceiling (2 s), then the
    # primary waits out the failback hold-down (1 s) if the backup came back first
    fs.bound("both paths down: recover to an ack on every host", back, 5 * (RECONNECT_MAX_S + 1.0))
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
    back = await first_ack_everywhere(fs, t1, "primary", 20)
    await _fault(fs, "backup", RECOVER)
    fs.bound("backup fails during failover: primary back to an ack on every host", back, 5 * RECONNECT_MAX_S)
    counts = {h: s.counts(t0) for h, s in fs.strategies.items()}
    print(f"[fault] backup fails during failover: outcomes {counts}")
    await fs.finish_clean()


async def _session_fault(fs: FaultSystem, gateway: str, kind: venue_pb2.FaultKind, host: str) -> None:
    fs.checker.data_plane_fault(time.monotonic(), active=kind != RECOVER)
    await fs.obs.venue_fault(gateway, kind, session=host)


def _health(fs: FaultSystem, host: str, path: str) -> int:
    r = fs.obs.route(host)
    return next((x.state for x in r.health if x.path == path), 0) if r is not None else 0


async def test_logon_refused_on_backup(fs: FaultSystem) -> None:
    """The backup refuses logons: it is never counted warm, nobody routes there, the primary carries
    every order; once logons are accepted again the backup is warm within the bound."""
    hosts = fs.cluster.topo.hosts
    await _fault(fs, "backup", venue_pb2.FAULT_KIND_LOGON_REFUSED)
    for h in hosts:  # drop the live backup sessions, then let them try to log on again
        await _session_fault(fs, "backup", RESET, h)
    for h in hosts:
        await _session_fault(fs, "backup", RECOVER, h)
    t0 = time.monotonic()
    await fs.obs.until(
        lambda: all(_health(fs, h, "backup") not in (0, 1) for h in hosts), 10, "backup down on every host"
    )
    while time.monotonic() - t0 < 2:  # noqa: ASYNC110 - the refusal is a duration
        await fs.obs.poll_once()
        assert fs.obs.all_hosts(lambda _h, _s, r: r.effective_path == "primary"), fs.obs.describe()
        assert all(_health(fs, h, "backup") != 1 for h in hosts), (
            f"backup UP though logons are refused: {fs.obs.describe()}"
        )
    counts = {h: s.counts(t0) for h, s in fs.strategies.items()}
    t1 = time.monotonic()
    await _fault(fs, "backup", RECOVER)
    warm = await fs.obs.until(
        lambda: all(_health(fs, h, "backup") == 1 for h in hosts), 15, "backup warm again on every host"
    )
    for h, c in counts.items():
        assert c.get("ACKED", 0) > 0 and set(c) <= {"ACKED", "pending"}, (h, c)
    fs.bound("logon refused on backup: recover to backup warm on every host", warm, 5 * 1.0)
    assert time.monotonic() - t1 >= warm
    await fs.finish_clean()


async def test_one_session_dropped_other_stays(fs: FaultSystem) -> None:
    """The venue drops h1's primary session only: h1 flips to the backup, h2 stays on the primary."""
    h1, h2 = fs.cluster.topo.hosts[:2]
    t0 = time.monotonic()
    await _session_fault(fs, "primary", RESET, h1)
    flipped = await fs.obs.until(
        lambda: (r := fs.obs.route(h1)) is not None and r.effective_path == "backup", 10, f"{h1} on backup"
    )
    await fs.obs.until(
        lambda: fs.strategies[h1].first_ack_after(t0, "backup") is not None, 10, f"an ack on backup via {h1}"
    )
    while time.monotonic() - t0 < 2:  # noqa: ASYNC110 - the fault is a duration
        await fs.obs.poll_once()
        r2 = fs.obs.route(h2)
        assert r2 is not None and r2.effective_path == "primary" and _health(fs, h2, "primary") == 1, (
            f"{h2} left the primary though only {h1}'s session dropped: {fs.obs.describe()}"
        )
    c2 = fs.strategies[h2].counts(t0)
    assert set(c2) <= {"ACKED", "pending"}, c2
    await _session_fault(fs, "primary", RECOVER, h1)
    back = await fs.obs.until(lambda: _health(fs, h1, "primary") == 1, 10, f"{h1}'s primary session back up")
    fs.bound("one session dropped: that host on backup", flipped, 5 * 0.3)
    fs.bound("one session dropped: recover to its primary session up", back, 5 * 1.0)
    await fs.finish_clean()


@pytest.mark.parametrize(("down_s", "up_s"), [(0.15, 0.15), (0.4, 1.6)], ids=["fast", "slow"])
async def test_primary_flapping(fs: FaultSystem, down_s: float, up_s: float) -> None:
    """The primary resets and recovers over and over: hosts fail over at once, but never fail back
    before the primary has been healthy for the hold-down; every order gets one outcome."""
    hold = fs.cluster.topo.hold_down_ms / 1000
    t0 = time.monotonic()
    cycles = 0
    while time.monotonic() - t0 < 6:
        await _fault(fs, "primary", RESET)
        await asyncio.sleep(down_s)
        await _fault(fs, "primary", RECOVER)
        await asyncio.sleep(up_s)
        cycles += 1
    t_end = time.monotonic()
    failbacks: dict[str, list[float]] = {}
    for h, samples in fs.obs.samples.items():
        prev = ""
        for s in samples:
            if s.t < t0 or s.t > t_end:
                continue
            r = route_of(s.status)
            eff = r.effective_path if r is not None else ""
            if eff == "primary" and prev == "backup":
                failbacks.setdefault(h, []).append(s.t)
            prev = eff or prev
    gaps = [b - a for ts in failbacks.values() for a, b in zip(ts, ts[1:], strict=False)]
    per_host = {h: len(v) for h, v in failbacks.items()}
    print(f"[fault] primary flapping {down_s}/{up_s}s: {cycles} cycles, failbacks {per_host}")
    if up_s < hold:
        assert not failbacks, f"failed back to a primary up for {up_s}s < hold-down {hold}s: {failbacks}"
    # 0.2 s: the observer samples every 50 ms on a loaded machine
    assert all(g >= hold - 0.2 for g in gaps), f"failbacks closer than the hold-down: {gaps}"
    back = await all_back_on_first_path(fs)
    fs.bound(f"primary flapping {down_s}/{up_s}s: settled on the decision's first path", back, 5 * (hold + 1))
    await fs.finish_clean()
