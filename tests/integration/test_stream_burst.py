"""A replica takes a burst of sidecar streams up to its own limit, none refused by gRPC core.

gRPC core queues a call that has arrived but that the application has not yet picked up,
and by default starts refusing such calls at random past 1,000 queued (all past 3,000),
as ``CANCELLED`` before the handler ever runs. A replica that just became the only one
reachable takes every sidecar's reconnect at once; the replica's own limit
(``stream.max_streams``, answered as ``RESOURCE_EXHAUSTED``) must be what sheds, not that
queue (the fan-out bench could not open 5,000 streams on one replica before).
"""

from __future__ import annotations

import pytest

from failover.bench.fanout import StreamFleet
from tests.harness import ReplicaSet, wait_for

pytestmark = pytest.mark.cluster
G = "cme-orders"
BURST = 4000  # above gRPC core's default hard limit of 3,000 queued calls


async def test_a_burst_of_streams_below_the_replicas_limit_is_served_in_full(etcd_cluster, prefix) -> None:
    # The replica runs in this test's event loop, beside the burst's 4,000 streams: its
    # own shedding on loop lag (tested elsewhere) would refuse some first.
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, stream={"shed_loop_lag_ms": 0})
    await rs.start_all()
    fleet = StreamFleet([rs.address(0)], BURST, channels_per_replica=4)
    try:
        r = await rs.wait_leader()
        await wait_for(lambda: G in r.view.routes, 10, "initial decision")
        # Every stream is opened at once; open() fails on the first stream error.
        await fleet.open(timeout=120)
        assert fleet.ready == BURST
        assert not fleet.errors
    finally:
        await fleet.close()
        await rs.stop_all()
