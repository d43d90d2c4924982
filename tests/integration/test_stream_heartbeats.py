"""Stream heartbeats: a long proof-of-life interval, and freshness news sent at once."""

from __future__ import annotations

import time

import pytest

from tests.harness import ReplicaSet, wait_for
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster
G = "cme-orders"
INTERVAL_MS = 6000


async def test_a_replica_turning_stale_tells_its_sidecars_without_waiting_for_the_heartbeat(
    etcd_cluster, prefix
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"heartbeat_interval_ms": INTERVAL_MS})
    await rs.start_all()
    c = SyncClient("h1", [G])
    try:
        r = await rs.wait_leader()
        await wait_for(lambda: G in r.view.routes, 10, "initial decision")
        await c.connect(rs.address(0))
        await c.wait(lambda: c.snapshots, 5, "snapshot")
        await c.wait(lambda: c.heartbeats, INTERVAL_MS / 1000 + 5, "a first heartbeat")
        before = len(c.heartbeats)
        assert not c.stale
        r.view.mark_restore("a test says so")  # stale for the sidecars from now on
        started = time.monotonic()
        # Generous bound, far below the interval: the next regular heartbeat is ~6 s away.
        await c.wait(lambda: c.stale, 2.0, "a stale heartbeat")
        assert time.monotonic() - started < 2.0
        assert len(c.heartbeats) == before + 1
    finally:
        await c.close()
        await rs.stop_all()


async def test_a_replica_fresh_again_asks_its_sidecars_for_their_full_health(etcd_cluster, prefix) -> None:
    """Reports from before a replica's outage do not count for the switch guard, and a
    sidecar reports on change only: back from stale, the replica asks every stream for
    its full health, or a switch is refused until some path changes state (the fault
    tier's restore row: 30 s of "no host reports the path up" after an etcd restart)."""
    rs = ReplicaSet(
        etcd_cluster.endpoints,
        prefix,
        n=1,
        stream={"heartbeat_interval_ms": INTERVAL_MS},
    )
    await rs.start_all()
    c = SyncClient("h1", [G])
    try:
        r = await rs.wait_leader()
        # Fresh, and told so: the hub samples freshness every 50 ms, and a spell it never
        # saw begin (stale at start-up, then the test's) is no change to announce.
        await wait_for(lambda: r.hub.announced_stale is False, 10, "the replica announced fresh")
        await c.connect(rs.address(0))
        await c.wait(lambda: c.snapshots, 5, "snapshot")
        assert not c.snapshots[0].freshness.stale

        async def no_probe() -> None:  # the spell below is the test's, not etcd's
            return None

        r.freshness.probe_once = no_probe  # type: ignore[method-assign]
        r.freshness._set(True, "a test says so")
        await c.wait(lambda: "stale" in c.arrivals, 2.0, "a stale heartbeat")
        r.freshness._set(False, "")

        def asked_after_stale() -> bool:
            a = c.arrivals
            return "health_request" in a[a.index("stale") :]

        try:
            await c.wait(asked_after_stale, 5.0, "a health request once fresh again")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: arrived {c.arrivals}") from None
        assert not r.freshness.state.stale
    finally:
        await c.close()
        await rs.stop_all()
