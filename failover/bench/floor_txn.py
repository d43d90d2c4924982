"""An etcd transaction shaped like a commit, straight to etcd: the floor a commit is read against.

Five compares (one create, four mod revisions), two puts of about a decision record's
size, two reads on failure; under a prefix outside every coordinator's, so no watch
sees it. Used by ``control-plane`` (after each Switch) and by the operator probe of
``fanout --operator-during-fanout`` (at the moment the during-fan-out Switch leaves).
"""

from __future__ import annotations

import time

from coordinator.store.port import Store
from coordinator.store.types import Compare, Get, Put
from failover.bench.report import BenchFailure

FLOOR_PREFIX = "/failover-bench-floor/"  # outside every coordinator's prefix: no watch sees it
FLOOR_VALUE = b"x" * 400  # about a decision record's size


class FloorTxn:
    """Times one commit-shaped transaction per call; the keys it compares are made once."""

    def __init__(self, store: Store, prefix: str = FLOOR_PREFIX) -> None:
        self._store = store
        self._prefix = prefix
        self._compares: list[Compare] | None = None

    async def once(self) -> int:
        """One transaction, timed (ns); its compares hold."""
        p = self._prefix
        if self._compares is None:
            revs = [await self._store.put(f"{p}in{i}", b"1") for i in range(5)]
            self._compares = [Compare.create(f"{p}in0", revs[0])] + [
                Compare.mod(f"{p}in{i}", revs[i]) for i in range(1, 5)
            ]
        puts = [Put(f"{p}route", FLOOR_VALUE), Put(f"{p}history", FLOOR_VALUE)]
        reads = [Get(f"{p}in0"), Get(f"{p}route")]
        t0 = time.monotonic_ns()
        result = await self._store.txn(self._compares, puts, reads)
        dt = time.monotonic_ns() - t0
        if not result.succeeded:
            raise BenchFailure("the bench's own etcd transaction failed its compares")
        return dt
