"""A replica's stop runs to its end however often it is cancelled (real etcd).

Servers and the test harness cancel a replica again every half second until it ends
(a cancel can be lost on Python 3.11). A later cancel landing in the stop path used to
cut it short: the etcd channels were never closed, outlived the test's event loop, and
were finalized by the garbage collector during a later test (CI: "Fatal Python error:
Segmentation fault ... Garbage-collecting" inside grpc's cygrpc).
"""

from __future__ import annotations

import asyncio

import pytest

from failover.aio import cancel_until_done
from tests.harness import ReplicaSet

pytestmark = pytest.mark.cluster


async def test_cancels_during_the_stop_still_close_every_etcd_channel(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    try:
        r = await rs.start(0)
        await rs.wait_leader()
        store = r.store
        assert store._members is not None  # type: ignore[attr-defined]
        channels = [c._channel for c in store._members.clients]  # type: ignore[attr-defined]
        assert all(ch is not None for ch in channels)
        task = rs.tasks[0]
        assert task is not None
        real_close = r.hub.close

        async def slow_close() -> None:
            # A stop step that takes a while, as server.stop's grace does with calls in flight.
            await asyncio.sleep(0.2)
            await real_close()

        r.hub.close = slow_close  # type: ignore[method-assign]
        # Cancelled again every 10 ms: every step of the stop path gets a cancel.
        assert await cancel_until_done(task, every_s=0.01, limit_s=20), "the replica did not stop"
        rs.tasks[0] = None
        assert store._members is None, "the etcd client was never closed"  # type: ignore[attr-defined]
        assert r.peers._channels == {}  # type: ignore[attr-defined]
        assert all(ch._channel.closed() for ch in channels), "an etcd channel is still open"
    finally:
        await rs.stop_all()
