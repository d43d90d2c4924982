"""A lease outlives a late event loop, but not a wedged one (issue 12, overload).

Seen under overload (1,000 sidecar streams on three replicas): every replica's loop ran
0.5-1.1 s late and every replica lost its etcd lease, while etcd was fine: the renewals,
each needing the busy loop several times, never reached it in time. The keepalive now
runs on a thread of its own; the loop only has to show it is alive within
``loop_stall_limit_s``. Real etcd; the loop here is the test's own, blocked by
``time.sleep`` (the GIL is released, as it is for much of a busy replica's work).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import pytest
from etcd3aio import Etcd3Client

from coordinator.store.etcd_store import EtcdStore
from coordinator.store.types import LeaseTiming
from tests.harness import ReplicaSet, wait_for

pytestmark = pytest.mark.cluster

TTL_S = 2


async def _remaining_ttl(endpoints: list[str], lease_id: int) -> int:
    """etcd's own view of the lease (-1: gone)."""
    async with Etcd3Client(endpoints[:1]) as c:
        resp = await c.lease.time_to_live(lease_id)  # type: ignore[union-attr]
        return int(resp.TTL)


def _spin(seconds: float) -> None:
    """Busy on the CPU, holding the GIL but for the interpreter's switch interval."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def _late_loop(lag_s: float, for_s: float, slices: int = 100, busy: Any = time.sleep) -> None:
    """Keep ``slices`` callbacks of ``lag_s / slices`` each always ready: every loop
    iteration then takes ``lag_s``, and every hop of any task (a timer's wake-up, a
    queued request, a reply) waits that long, as under a flood of stream work."""
    end = time.monotonic() + for_s
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def work() -> None:
        if time.monotonic() >= end:
            done.set()
            return
        busy(lag_s / slices)
        loop.call_soon(work)

    for _ in range(slices):
        loop.call_soon(work)
    await done.wait()


def _wedge(seconds: float) -> None:
    """The event loop does not run at all (called from a coroutine, on purpose)."""
    time.sleep(seconds)


@pytest.mark.parametrize("busy", [time.sleep, _spin], ids=["sleeping", "spinning"])
async def test_a_lease_outlives_a_loop_running_a_second_late(etcd_cluster, prefix, busy) -> None:
    """Every loop iteration takes 0.9 s, for three TTLs: a renewal made on the loop needs
    several iterations (wake-up, request, reply), more than the local deadline allows,
    and the old in-loop keeper lost the lease. ``spinning``: the loop's work holds the
    GIL, which the keeper's thread still gets every switch interval."""
    s = EtcdStore(etcd_cluster.endpoints)
    try:
        lease = await s.grant(TTL_S)
        async with s.keep_alive(lease) as keeper:
            await s.put(prefix + "owned", b"x", lease=lease.id)
            await _late_loop(0.9, 3 * TTL_S, busy=busy)
            assert not keeper.lost, "the lease was given up while the loop was only late"
            assert await _remaining_ttl(etcd_cluster.endpoints, lease.id) > 0
            kv, _ = await s.get(prefix + "owned")
            assert kv is not None
        await s.revoke(lease.id)
    finally:
        await s.close()


async def test_a_wedged_loop_loses_its_lease(etcd_cluster, prefix) -> None:
    """A loop that does not run for longer than the stall limit: the keeper stops renewing
    and declares the lease lost, so a wedged replica cannot lead forever."""
    s = EtcdStore(etcd_cluster.endpoints, lease_timing=LeaseTiming(loop_stall_limit_ms=1000))
    try:
        lease = await s.grant(TTL_S)
        async with s.keep_alive(lease) as keeper:
            _wedge(1.0 + TTL_S + 0.5)  # past the stall limit and the TTL
            assert keeper.lost, "a wedged loop kept its lease"
            async with asyncio.timeout(2):
                await keeper.wait_lost()
        assert await _remaining_ttl(etcd_cluster.endpoints, lease.id) <= 0
    finally:
        await s.close()


async def test_a_leader_whose_loop_is_wedged_ends_its_term(etcd_cluster, prefix) -> None:
    """The leader's own loop does not run past the stall limit: when it runs again its
    term is over (it stops writing), and it leads again only with a new lease and token."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, election={"loop_stall_limit_ms": 1000})
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        first = leader.election.leadership
        assert first is not None
        _wedge(1.0 + TTL_S + 0.5)
        await wait_for(lambda: leader.election.leadership is not first, 5, "the wedged leader to stop")
        again = await rs.wait_leader(timeout=15)
        new = again.election.leadership
        assert new is not None and new.token > first.token and new.lease.id != first.lease.id
    finally:
        await rs.stop_all()


def _keeper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lease-keepalive-")]


async def test_the_keepalive_thread_and_its_channels_end_on_exit(etcd_cluster) -> None:
    s = EtcdStore(etcd_cluster.endpoints)
    try:
        lease = await s.grant(TTL_S)
        async with s.keep_alive(lease) as keeper:
            assert len(_keeper_threads()) == 1
            thread = keeper._thread
            assert thread is not None
        assert not thread.is_alive()
        assert thread.channels_closed
        await s.revoke(lease.id)
    finally:
        await s.close()


async def test_the_keepalive_thread_ends_when_its_owner_is_cancelled_repeatedly(etcd_cluster) -> None:
    s = EtcdStore(etcd_cluster.endpoints)
    started = asyncio.Event()
    holder: list[object] = []

    async def owner() -> None:
        lease = await s.grant(TTL_S)
        async with s.keep_alive(lease) as keeper:
            holder.append(keeper._thread)
            started.set()
            await asyncio.Event().wait()

    try:
        task = asyncio.create_task(owner())
        async with asyncio.timeout(5):
            await started.wait()
        for _ in range(5):
            task.cancel()
            await asyncio.sleep(0)
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(5):
                await task
        assert task.cancelled()
        thread = holder[0]
        await asyncio.to_thread(thread.join, 3)  # type: ignore[attr-defined]
        assert not thread.is_alive()  # type: ignore[attr-defined]
        assert thread.channels_closed  # type: ignore[attr-defined]
    finally:
        await s.close()
