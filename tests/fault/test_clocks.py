"""Wall-clock jumps on the leader and on a sidecar (libfaketime on those processes only).

Nothing that decides may read the wall clock: leases are etcd's, timeouts, hold-downs
and staleness are monotonic. The row jumps the leader's and one sidecar's wall clock
an hour forward, then an hour back past the real time, while a path fails over and
back and the operator switches; the leader must stay, the streams must live, and the
checker must see nothing wrong.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from failover.faults.harness import LIBFAKETIME
from failover.v1 import venue_pb2
from tests.fault.conftest import FaultSystem
from tests.fault.helpers import all_apply, all_back_on_first_path, all_on, leader

pytestmark = [
    pytest.mark.fault,
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(LIBFAKETIME), reason=f"libfaketime not installed ({LIBFAKETIME})"),
]

JUMP_S = 3600


async def _switch_applied(fs: FaultSystem, path: str, timeout: float) -> float:
    t0 = time.monotonic()
    d = await fs.obs.switch(path, "clock row")
    await all_apply(fs, path, (d.epoch.era, d.epoch.revision), timeout, f"every host on {path}")
    return time.monotonic() - t0


@pytest.mark.own_cluster(faketime=("c1", "c2", "c3", "h1"))
async def test_wall_clock_jumps(fs: FaultSystem) -> None:
    host = fs.cluster.topo.hosts[0]
    ttl = fs.cluster.topo.lease_ttl_s
    before = await leader(fs)
    t0 = time.monotonic()
    for name in (before, host):
        fs.cluster.jump_clock(name, JUMP_S)
    await asyncio.sleep(1.5)  # libfaketime re-reads the offset every second
    fs.checker.data_plane_fault(time.monotonic(), active=True)
    await fs.obs.venue_fault("primary", venue_pb2.FAULT_KIND_RESET)
    flipped = await all_on(fs, "backup", 10, "every host on backup (clocks an hour ahead)")
    fs.checker.data_plane_fault(time.monotonic(), active=False)
    await fs.obs.venue_fault("primary", venue_pb2.FAULT_KIND_RECOVER)
    back = await all_back_on_first_path(fs)  # the checker holds a failback to the hold-down
    forward = await _switch_applied(fs, "backup", 20)
    for name in (before, host):
        fs.cluster.jump_clock(name, -JUMP_S)  # two hours back in one step
    t_back = time.monotonic()
    while time.monotonic() - t_back < ttl + 1.5:  # noqa: ASYNC110 - past a lease TTL on the new clock
        await fs.obs.poll_once()
    backward = await _switch_applied(fs, "primary", 20)
    after = await leader(fs)
    lost = [
        s.t - t0 for s in fs.obs.samples.get(host, []) if s.t >= t0 and not s.status.control_plane_connected
    ]
    assert after == before, f"the leader changed from {before} to {after} on a wall-clock jump"
    assert not lost, f"{host} lost its stream after a wall-clock jump (at +{lost[0]:.2f}s)"
    fs.bound("wall clock +1 h: every host on backup", flipped, 5 * 0.3)
    fs.bound("wall clock +1 h: a decision on every host", forward, 5 * 1.0)
    fs.bound("wall clock -2 h: a decision on every host", backward, 5 * 1.0)
    fs.bound("wall clock +1 h: primary recovered to the decision's first path", back, 5 * 2.0)
    await fs.finish_clean()
