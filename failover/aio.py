"""Small asyncio helpers used across processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def wait_any(*coros: Awaitable[Any], timeout: float | None = None) -> bool:
    """Wait until the first coroutine finishes (True) or the timeout passes (False).

    Every task it started is cancelled on the way out, also when the caller is
    cancelled, so nothing is left pending.
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for t in tasks:
            t.cancel()
