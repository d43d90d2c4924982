"""Small asyncio helpers used across processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and return once every one has finished; their errors are consumed.

    A cancel of the caller meanwhile is passed on only after they have finished,
    so no task outlives the code that owns it. A task that ignores cancellation
    keeps the caller waiting: the tasks given here must end when cancelled.
    """
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    for t in pending:
        t.cancel()
    interrupted = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            interrupted = True
    for t in tasks:
        if not t.cancelled():
            t.exception()  # retrieved: never logged as "exception was never retrieved"
    if interrupted:
        raise asyncio.CancelledError


async def finish(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to end (its error is raised); a cancel of the caller meanwhile
    does not cancel it and is passed on once it has ended: for shutdown work that must
    run to its end."""
    interrupted = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError
    task.result()


async def wait_any(*coros: Awaitable[Any], timeout: float | None = None) -> bool:
    """Wait until the first coroutine finishes (True) or the timeout passes (False).

    Every task it started has finished (cancelled) when it returns or raises,
    also when the caller is cancelled, so nothing is left pending.
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        await cancel_and_wait(tasks)


def retrieve(task: asyncio.Future[Any]) -> None:
    """A done-callback that reads a task's outcome, so a failure nobody awaits any more
    (its awaiter was cancelled) is not logged as "Task exception was never retrieved"."""
    if not task.cancelled():
        task.exception()
