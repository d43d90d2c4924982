"""Writes the sidecar's state file off the event loop, coalescing bursts of changes.

Each ``schedule()`` marks the state dirty; one writer task saves the newest
snapshot until nothing is dirty, so a burst of decisions costs one or two writes
and the file always ends with the latest state. A write error is logged, never
raised: the sidecar keeps routing without its file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from failover_sidecar import state_file

log = logging.getLogger("failover_sidecar.agent")


class StateSaver:
    def __init__(self, path: str, host_id: str, snapshot: Callable[[], state_file.SavedState]) -> None:
        self._path = path
        self._host_id = host_id
        self._snapshot = snapshot
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    def schedule(self) -> None:
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="save state")

    async def flush(self) -> None:
        """Wait until the writes scheduled so far are done (for stop)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while self._pending:
            self._pending = False
            snap = self._snapshot()
            try:
                await asyncio.to_thread(state_file.save, self._path, self._host_id, snap)
            except OSError as exc:
                log.error("cannot write state file %s: %s", self._path, exc)
