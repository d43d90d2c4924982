"""``restart -> replica ready`` times the replica, not the benchmark's own channel.

A channel that saw its replica die retries on gRPC's reconnect backoff (100 ms growing
to 1 s): polled on that channel, a restarted replica looked ready up to a backoff step
after it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

import grpc
import pytest

from coordinator.etcd_reach import count_answering
from failover.bench.common import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

# Serving -> a leader and a decision is a few tens of ms here; a missed backoff step is
# 0.4-1 s. Generous, so only the mechanism fails it.
READY_AFTER_SERVING_S = 0.35


async def _serving(address: str, timeout: float) -> float:
    """The monotonic time at which ``address`` first accepts a TCP connection (polled every 2 ms)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await count_answering([address], timeout_s=0.05):
            return time.monotonic()
        await asyncio.sleep(0.002)
    raise AssertionError(f"{address} did not accept connections within {timeout}s")


async def test_a_restarted_replica_is_ready_soon_after_it_serves() -> None:
    c = Cluster("restart-ready", replicas=1, etcd_members=1)
    c.start()
    try:
        await c.wait_ready(timeout=60)
        p = c.procs[0]
        assert p.proc is not None
        p.proc.send_signal(signal.SIGKILL)
        p.reap()
        # The benchmark's own calls meet the dead replica, as they do after a SIGKILL: the
        # cached channel's backoff grows towards its 1 s cap.
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await c.status(p.address, timeout=0.2)
            await asyncio.sleep(0.05)
        p.start()
        serving = await _serving(p.address, timeout=30)
        await c.wait_ready([p], timeout=30, fresh=True)
        late = time.monotonic() - serving
        assert late < READY_AFTER_SERVING_S, f"ready {late * 1000:.0f} ms after the replica served"
    finally:
        await c.aclose()
        c.stop()
