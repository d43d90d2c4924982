"""Operator calls go ahead of the fan-out on a replica's one event loop.

A decision or heartbeat pushed to thousands of streams is thousands of small writes
on the loop that also answers operators; a Switch arriving meanwhile would wait for
every one of them at each of its steps (handler, commit transaction, reply). While an
operator call is in progress here, the fan-out wakes no further sessions: writes
already started finish, acks are still read, and the rest waits for the reply. The
hold is bounded twice, so that operator traffic cannot stall a push: an episode (from
the first call until none is in progress) holds the fan-out at most ``max_hold_s``, and
one push (``SyncHub._wake_in_batches``) gives way at most ``max_hold_s`` in all, however
many short calls follow each other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from failover.aio import wait_any

# A commit on an idle replica takes a few ms (docs/benchmarks.md); a hold this long
# covers a slow one without letting operator traffic starve the push for long.
MAX_HOLD_S = 0.1


class Urgent:
    def __init__(self, max_hold_s: float = MAX_HOLD_S) -> None:
        self._max_hold_s = max_hold_s
        self._calls = 0
        self._since = 0.0  # monotonic start of the current episode
        self._idle = asyncio.Event()
        self._idle.set()
        self.held_s = 0.0  # total time the fan-out waited (for metrics and tests)

    @property
    def busy(self) -> bool:
        return self._calls > 0

    @contextmanager
    def call(self) -> Iterator[None]:
        """Around an operator call that must not wait behind the fan-out."""
        if self._calls == 0:
            self._since = time.monotonic()
            self._idle.clear()
        self._calls += 1
        try:
            yield
        finally:
            self._calls -= 1
            if self._calls == 0:
                self._idle.set()

    @property
    def max_hold_s(self) -> float:
        return self._max_hold_s

    async def give_way(self, budget_s: float) -> float:
        """Until no operator call is in progress, at most the episode's remaining hold and
        ``budget_s`` (what the push has left); returns the time waited."""
        if not self._calls:
            return 0.0
        remaining = min(self._since + self._max_hold_s - time.monotonic(), budget_s)
        if remaining <= 0:
            return 0.0
        started = time.monotonic()
        await wait_any(self._idle.wait(), timeout=remaining)
        waited = time.monotonic() - started
        self.held_s += waited
        return waited
