"""A cancel during a stop path is never swallowed: the task that owns the work ends.

A 3.11 ``TaskGroup`` cancels each child once when its parent is cancelled, however often
the parent is cancelled again: a child that swallows that one cancel keeps its replica
running forever (seen: a replica stop that never ended, with etcd stopped). Fakes stand
in for etcd: the policy here is cancellation, not etcd I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from coordinator.keys import Keys
from coordinator.members import register_forever
from coordinator.store.errors import StoreUnavailable
from coordinator.store.etcd_store import EtcdLeaseKeeper
from coordinator.store.types import Lease, LeaseTiming


class _LostKeeper:
    """A keeper whose lease is lost at once (no renewal answered: etcd is gone)."""

    lost = True

    async def wait_lost(self) -> None:
        return None


class _EtcdGoneStore:
    """Grants and puts answer; a revoke hangs (etcd stopped after the grant)."""

    def __init__(self) -> None:
        self.revoking = asyncio.Event()
        self.grants = 0

    async def grant(self, ttl_s: int) -> Lease:
        self.grants += 1
        if self.grants > 1:
            raise StoreUnavailable("grant: etcd is gone")
        return Lease(id=7, ttl_s=ttl_s, requested_at=0.0)

    @contextlib.asynccontextmanager
    async def keep_alive(self, lease: Lease) -> AsyncIterator[_LostKeeper]:
        yield _LostKeeper()

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        return 1

    async def revoke(self, lease_id: int) -> None:
        self.revoking.set()
        await asyncio.Event().wait()


async def test_register_forever_ends_when_cancelled_while_revoking_a_lost_lease() -> None:
    store = _EtcdGoneStore()
    task = asyncio.create_task(register_forever(store, Keys("/p/"), "c1", "127.0.0.1:1", 2))  # type: ignore[arg-type]
    async with asyncio.timeout(2):
        await store.revoking.wait()
    task.cancel()  # the only cancel a TaskGroup child gets
    done, _ = await asyncio.wait([task], timeout=3)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        pytest.fail("register_forever swallowed its cancel and went on campaigning for a member lease")
    assert task.cancelled()


async def test_lease_keeper_exit_passes_on_a_cancel_of_its_owner() -> None:
    """Leaving ``keep_alive`` waits for the keepalive task to end; a cancel of the owner
    meanwhile must not be consumed as if it were that task's own cancellation."""
    keeper = EtcdLeaseKeeper(None, Lease(id=1, ttl_s=2, requested_at=0.0), LeaseTiming())  # type: ignore[arg-type]
    stopping = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopping.set()
            await asyncio.shield(asyncio.sleep(0.1))

    keeper._task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    after_exit: list[str] = []

    async def owner() -> None:
        await keeper.__aexit__(None, None, None)
        after_exit.append("went on")  # a campaign loop would campaign again here
        await asyncio.sleep(1)

    task = asyncio.create_task(owner())
    async with asyncio.timeout(2):
        await stopping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(2):
            await task
    assert not after_exit
    assert keeper._task.done()


async def test_mirror_wait_revision_passes_on_a_cancel_that_meets_the_revision() -> None:
    """The freshness probe waits here in a loop that ends only when cancelled. On 3.11
    ``asyncio.wait_for`` returns the result instead of raising when the awaited event is
    set in the same loop step as the cancel arrives: the probe then probed forever."""
    from coordinator.store.mirror import Mirror

    mirror = Mirror(None, "/p/", lambda changed, rev, full: None)  # type: ignore[arg-type]
    task = asyncio.create_task(mirror.wait_revision(5, 10.0))
    await asyncio.sleep(0)  # waiting for the revision
    mirror.progress = 5
    mirror._advanced.set()  # the watch applied it ...
    task.cancel()  # ... in the same step as the stop
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_closed_etcd_store_opens_no_new_channel() -> None:
    """A call still in flight when a replica closes its store (a revoke left running by a
    shielded wait, a handler in its grace) must not open fresh channels that nobody
    closes: they would outlive the event loop and be finalized by the GC in another."""
    from coordinator.store.errors import StoreError
    from coordinator.store.etcd_store import EtcdStore

    store = EtcdStore(["127.0.0.1:1"], rpc_timeout_s=0.05, rpc_attempts=1)
    await store.close()
    try:
        with pytest.raises(StoreError):
            await store.get("/k")
        assert store._members is None, "a closed store connected again"
    finally:
        if store._members is not None:
            await store._members.close()
