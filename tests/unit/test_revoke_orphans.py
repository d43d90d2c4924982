"""A lease revoke that fails after its caller was cancelled leaves no unread task behind.

Seen with etcd gone during shutdown: "Task exception was never retrieved:
StoreUnavailable('revoke: ...')". The revoke task itself was read; the task that
``asyncio.shield(asyncio.wait_for(...))`` creates around it was not. A fake store
stands in for etcd (the policy here is task ownership, not etcd I/O); the same path
against a real etcd is tests/integration/test_store_tasks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coordinator.election import Election
from coordinator.keys import Keys
from coordinator.members import register_forever
from coordinator.store.errors import StoreUnavailable
from coordinator.store.types import Lease


class _Keeper:
    lost = False

    async def wait_lost(self) -> None:
        await asyncio.Event().wait()


class _GoneStore:
    """Grants and puts succeed; a revoke fails a moment after it was sent (etcd went away)."""

    def __init__(self) -> None:
        self.put_done = asyncio.Event()
        self.revoking = asyncio.Event()

    async def grant(self, ttl_s: int) -> Lease:
        return Lease(id=7, ttl_s=ttl_s, requested_at=0.0)

    @contextlib.asynccontextmanager
    async def keep_alive(self, lease: Lease) -> AsyncIterator[_Keeper]:
        yield _Keeper()

    async def put(self, key: str, value: bytes, lease: int | None = None) -> None:
        self.put_done.set()

    async def revoke(self, lease_id: int) -> None:
        self.revoking.set()
        await asyncio.sleep(0.05)
        raise StoreUnavailable("revoke: etcd is gone")


@contextlib.asynccontextmanager
async def _unread_failures() -> AsyncIterator[list[dict[str, Any]]]:
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: problems.append(ctx))
    try:
        yield problems
        await asyncio.sleep(0.2)  # the revoke fails meanwhile
        gc.collect()
        await asyncio.sleep(0)
        gc.collect()
    finally:
        loop.set_exception_handler(previous)


async def test_member_revoke_cancelled_twice_leaves_nothing_unread() -> None:
    store = _GoneStore()
    async with _unread_failures() as problems:
        task = asyncio.create_task(register_forever(store, Keys(), "r1", "127.0.0.1:1", 2))  # type: ignore[arg-type]
        await asyncio.wait_for(store.put_done.wait(), 5)
        task.cancel()  # shutdown: the finally block revokes
        await asyncio.wait_for(store.revoking.wait(), 5)
        task.cancel()  # shutdown again while the revoke runs
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    assert not problems, [f"{p.get('message')}: {p.get('exception')!r}" for p in problems]


async def test_election_revoke_cancelled_leaves_nothing_unread() -> None:
    store = _GoneStore()
    election = Election(store, Keys(), None, replica_id="r1", address="127.0.0.1:1", ttl_s=2)  # type: ignore[arg-type]
    async with _unread_failures() as problems:
        task = asyncio.create_task(election._revoke(Lease(id=7, ttl_s=2, requested_at=0.0)))
        await asyncio.wait_for(store.revoking.wait(), 5)
        task.cancel()  # resigning while being stopped
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    assert not problems, [f"{p.get('message')}: {p.get('exception')!r}" for p in problems]
