"""Writes the sidecar's state file off the event loop, coalescing bursts of changes.

Each ``schedule()`` marks the state dirty; one writer task saves the newest
snapshot until nothing is dirty, so a burst of decisions costs one or two writes
and the file always ends with the latest state. A write error is logged, never
raised: the sidecar keeps routing without its file. A failed write is tried again
with a backoff, not only at the next decision: during a control-plane outage no
decision comes, and a restart would route on whatever older state the file holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from failover_sidecar import state_file

log = logging.getLogger("failover_sidecar.agent")

RETRY_FIRST_S = 0.5  # then doubling, up to RETRY_MAX_S
RETRY_MAX_S = 8.0


class StateSaver:
    def __init__(self, path: str, host_id: str, snapshot: Callable[[], state_file.SavedState]) -> None:
        self._path = path
        self._host_id = host_id
        self._snapshot = snapshot
        self._pending = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failing = ""  # why the last write failed; "" once the file holds the latest state

    def schedule(self) -> None:
        self._pending = True
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="save state")

    async def flush(self) -> None:
        """Wait until the writes scheduled so far are done (for stop): a write failing
        meanwhile is tried once more at once, then given up (logged)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        delay = RETRY_FIRST_S
        while self._pending:
            self._pending = False
            self._wake.clear()
            snap = self._snapshot()
            try:
                await asyncio.to_thread(state_file.save, self._path, self._host_id, snap)
            except OSError as exc:
                self._pending = True  # the file is behind: try again
                self.failing = str(exc)
                if self._stopping:
                    log.error("cannot write state file %s: %s; stopping without it", self._path, exc)
                    return
                log.error("cannot write state file %s: %s; trying again in %.1f s", self._path, exc, delay)
                with contextlib.suppress(TimeoutError):  # a stop or a new decision tries at once
                    await asyncio.wait_for(self._wake.wait(), delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if self.failing:
                log.warning("state file %s written again (it had failed: %s)", self._path, self.failing)
                self.failing = ""
            delay = RETRY_FIRST_S
