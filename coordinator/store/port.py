"""The store interface the coordinator depends on (etcd v3 semantics).

Revisions are etcd's: one global counter, bumped by every write. A key that
does not exist compares as create/mod revision 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from coordinator.store.types import KV, Compare, Lease, Op, TxnResult, WatchBatch


class WatchStream(Protocol):
    """An open watch. Iterating raises Compacted or StoreError when it ends."""

    def __aiter__(self) -> AsyncIterator[WatchBatch]: ...

    def request_progress(self) -> None:
        """Ask for an empty batch carrying the current revision (once synced)."""

    async def started(self) -> int:
        """Until the store has registered the watch; the store's revision then.

        Call before iterating. A watch from the store's current revision is in step
        at once; one from a revision the store has passed may first catch up on a
        timer of the store's (etcd: every 100 ms) before it sends anything.
        """

    def cancel(self) -> None:
        """End the stream; iteration then raises StoreError."""


class LeaseKeeper(Protocol):
    """Keeps one lease alive over one long-lived stream.

    ``lost`` is set when the store says the lease is gone (TTL <= 0, not found,
    revoked); a broken stream alone does not set it: the stream is reopened.
    """

    @property
    def lost(self) -> bool: ...

    async def wait_lost(self) -> None: ...


class Store(Protocol):
    async def get(self, key: str) -> tuple[KV | None, int]:
        """Linearizable read of one key, with the store revision."""

    async def get_prefix(self, prefix: str) -> tuple[list[KV], int]:
        """Linearizable read of every key under prefix, with the store revision."""

    async def put(self, key: str, value: bytes, lease: int = 0) -> int: ...

    async def delete(self, key: str, prefix: bool = False) -> int: ...

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        """One atomic transaction, never retried (StoreTimeout: outcome unknown)."""

    async def grant(self, ttl_s: int) -> Lease: ...

    async def revoke(self, lease_id: int) -> None: ...

    def keep_alive(self, lease: Lease) -> AbstractAsyncContextManager[LeaseKeeper]: ...

    def watch(self, prefix: str, start_revision: int) -> AbstractAsyncContextManager[WatchStream]:
        """Watch every key under prefix from start_revision (inclusive; 0: from now)."""

    async def current_revision(self) -> int:
        """Revision from a fresh linearizable read (needs an etcd leader)."""

    async def prefer_etcd_leader(self) -> None:
        """Route later calls to the store's own leader where that saves a hop (best effort)."""

    async def alarms(self) -> list[str]: ...

    async def members_answering(self, timeout_s: float) -> int:
        """How many of the store's members answer a status request within ``timeout_s``
        (asked at once; answered without consensus, so a member cut off from its peers
        still counts, a paused or dead one does not)."""

    async def compact(self, revision: int) -> None: ...

    async def close(self) -> None: ...
