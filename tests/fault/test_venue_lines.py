"""The lines between the hosts and the venue, broken from outside both.

Every sidecar reaches each gateway through a proxy (``Topology.proxy_lines``), and the
primary's line is cut (reset, new connects reset), blackholed (bytes held, sockets
open), dropped one way (the orders reach the venue and the replies are lost, or the
orders are lost and the venue's heartbeats still arrive) or slowed. The venue never
hears of it: its own fault control is not used. Every order keeps exactly one outcome
and the venue never books one twice (the checker's invariants); a dead line moves every
host to the backup on its own, and a slow one moves nobody.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from failover.faults.harness import Topology
from failover.faults.proxy import Mode
from tests.fault.conftest import FaultSystem
from tests.fault.helpers import all_back_on_first_path, all_on, first_ack_everywhere

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]

SLOW_MS = 5.0  # added to every chunk each way: 10-20 ms round trips, far under the tier's 150 ms floor


@pytest.fixture(scope="module")
def topology() -> Topology:
    return Topology(proxy_lines=True)


def _break(fs: FaultSystem, mode: Mode, delay_ms: float = 0.0) -> None:
    """Break (or, PASS without delay, heal) the primary's line, declared to the checker."""
    fs.checker.data_plane_fault(time.monotonic(), active=mode is not Mode.PASS or delay_ms > 0)
    fs.cluster.break_line("primary", mode, delay_ms)


@pytest.mark.parametrize(
    ("mode", "name", "settled"),
    [
        (Mode.CUT, "cut", {"ACKED", "UNKNOWN_TO_VENUE"}),
        # Bytes read before the stall reached the venue (their replies did not): either.
        (Mode.STALL, "blackholed", {"ACKED", "UNKNOWN_TO_VENUE"}),
        (Mode.DROP_DOWN, "replies dropped", {"ACKED"}),  # the venue booked every one
        (Mode.DROP_UP, "orders dropped", {"UNKNOWN_TO_VENUE"}),  # the venue never had them
    ],
)
async def test_primary_line_dies(fs: FaultSystem, mode: Mode, name: str, settled: set[str]) -> None:
    """Every host flips to the backup on its own and is acked there; healed, back to the primary,
    and every order left IN_DOUBT is settled by asking the venue (never lost, never booked twice)."""
    t0 = time.monotonic()
    _break(fs, mode)
    flipped = await all_on(fs, "backup", 10, f"primary line {name}: every host on backup")
    first_ack = await first_ack_everywhere(
        fs, t0, "backup", 10, f"primary line {name}: an ack on backup on every host"
    )
    fs.bound(f"primary line {name}: every host on backup", flipped, 5 * 0.3)
    fs.bound(f"primary line {name}: first ack on backup on every host", first_ack, 5 * 0.4)
    _break(fs, Mode.PASS)
    back = await all_back_on_first_path(
        fs,
        what=f"primary line {name} healed: every host back on the decision's first path with both paths up",
    )
    fs.bound(f"primary line {name}: healed, recovered to the decision's first path", back, 5 * 2.0)
    for h, s in fs.strategies.items():
        resolved = await s.resolve_in_doubt()
        print(f"[fault] primary line {name}: {h} in doubt, then resolved: {dict(Counter(resolved.values()))}")
        assert set(resolved.values()) <= settled, (h, resolved)
    await fs.finish_clean()


async def test_primary_line_slowed_is_not_dead(fs: FaultSystem) -> None:
    """A line slowed by a few ms each way is slow, not dead: nobody flips, every order is acked."""
    t0 = time.monotonic()
    _break(fs, Mode.PASS, SLOW_MS)
    while time.monotonic() - t0 < 3:  # noqa: ASYNC110 - the fault is a duration
        await fs.obs.poll_once()
        assert fs.obs.all_hosts(lambda _h, _s, r: r.effective_path == "primary"), fs.obs.describe()
    counts = {h: s.counts(t0) for h, s in fs.strategies.items()}
    _break(fs, Mode.PASS, 0.0)
    for h, c in counts.items():
        assert c.get("ACKED", 0) > 0 and set(c) <= {"ACKED", "pending"}, (h, c)
    await fs.finish_clean()
