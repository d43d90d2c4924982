"""A replica whose own event loop is late does not call itself stale (issue 12, overload).

Seen from outside: during a fan-out to 1,000 streams on a loaded machine, replicas said
they were stale in the middle of it, and real sidecars would have left them for another
replica, adding load. Here the replica's loop (it runs in the test's loop) is kept busy
for 0.7 s while each of its freshness reads is on its way, for about 3 s, against a real
etcd that answers promptly all along.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from tests.harness import ReplicaSet, switch, wait_for
from tests.syncclient import SyncClient

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

G = "cme-orders"
BUSY_S = 0.7  # longer than the probe's own bound (0.5 s): its timeout fires before the reply is read
BUSY_FOR_S = 3.0  # twice stale_after_ms (1.5 s), well under 3 x it


async def test_a_replica_busy_with_its_own_work_is_not_stale(own_etcd, prefix, monkeypatch) -> None:
    rs = ReplicaSet(own_etcd.endpoints, prefix, n=1)
    try:
        await rs.start_all()
        r = await rs.wait_leader()
        await wait_for(lambda: not r.freshness.state.stale, 10, "a fresh replica")
        real_read = r.store.current_revision

        async def read_while_busy() -> int:
            """The real read of etcd; while its answer is on the way, the loop is busy."""
            read = asyncio.ensure_future(real_read())
            asyncio.get_running_loop().call_soon(time.sleep, BUSY_S)
            return await read

        monkeypatch.setattr(r.store, "current_revision", read_while_busy)
        reasons: list[str] = []
        until = time.monotonic() + BUSY_FOR_S
        while time.monotonic() < until:
            await asyncio.sleep(0.02)
            if r.freshness.state.stale:
                reasons.append(r.freshness.state.reason)
        monkeypatch.setattr(r.store, "current_revision", real_read)
        assert not reasons, reasons[:3]
        assert r.freshness.uncounted >= 2  # the late probes were seen and not held against etcd
        assert r.loop_lag.max_lag_s >= BUSY_S / 2
        await wait_for(lambda: r.freshness.state.last_ok_monotonic > until, 5, "a good probe afterwards")
        assert not r.freshness.state.stale
    finally:
        await rs.stop_all()


async def test_etcd_gone_still_makes_a_lagging_replica_stale(own_etcd, prefix) -> None:
    """The benefit of the doubt is bounded: with etcd really gone, lateness does not hide it."""
    rs = ReplicaSet(own_etcd.endpoints, prefix, n=1)
    try:
        await rs.start_all()
        r = await rs.wait_leader()
        await wait_for(lambda: not r.freshness.state.stale, 10, "a fresh replica")
        for i in range(len(own_etcd.members)):
            await asyncio.to_thread(own_etcd.stop_member, i)
        started = time.monotonic()
        while not r.freshness.state.stale and time.monotonic() - started < 15:
            time.sleep(0.2)  # noqa: ASYNC251 - a loop that is late now and then
            await asyncio.sleep(0.05)
        assert r.freshness.state.stale, "etcd has been gone for 15 s"
    finally:
        await rs.stop_all()


async def test_a_late_replica_sheds_new_streams_and_keeps_serving_old_ones(own_etcd, prefix) -> None:
    rs = ReplicaSet(own_etcd.endpoints, prefix, n=1, stream={"shed_loop_lag_ms": 150})
    old = SyncClient("h-old", [G])
    new = SyncClient("h-new", [G])
    try:
        await rs.start_all()
        await rs.wait_leader()
        r = rs.running()[0]
        await wait_for(lambda: G in r.view.routes, 10, "the initial decision")
        await old.connect(rs.address(0))
        await old.wait(lambda: old.snapshots, 5, "snapshot")
        time.sleep(0.3)  # noqa: ASYNC251 - the loop is late: a fan-out on a starved core
        await asyncio.sleep(0)
        await new.connect(rs.address(0))
        await new.wait(lambda: new.error is not None, 5, "the refusal")
        assert new.error is not None and new.error.code() == grpc.StatusCode.UNAVAILABLE
        assert "overloaded" in new.error.details() and "ms late" in new.error.details()
        assert r.hub.shed_streams == 1
        done = await switch(rs.address(0), G, "backup")
        want = done.decision.epoch.revision
        await old.wait(lambda: old.held.get(G, (0, 0))[1] == want, 5, "the old stream still served")
        # A second without lag: new streams are welcome again.
        await wait_for(lambda: r.loop_lag.worst_since(time.monotonic() - 1.0) < 0.15, 5, "a punctual loop")
        again = SyncClient("h-new", [G])
        try:
            await again.connect(rs.address(0))
            await again.wait(lambda: again.snapshots, 5, "snapshot after the lag")
        finally:
            await again.close()
    finally:
        await old.close()
        await new.close()
        await rs.stop_all()
