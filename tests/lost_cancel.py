"""A task that loses cancels, as Python 3.11's ``wait_for`` (and gRPC's aio calls) can."""

from __future__ import annotations

import asyncio


class LosesCancels:
    """``run`` waits forever and swallows its first ``lost`` cancels; ``seen`` counts them all."""

    def __init__(self, lost: int = 1) -> None:
        self.lost = lost
        self.seen = 0

    async def run(self) -> None:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.seen += 1
                if self.seen > self.lost:
                    raise
