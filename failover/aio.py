"""Small asyncio helpers used across processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], *, every_s: float = 0.5) -> None:
    """Cancel ``tasks`` and return once every one has finished; their errors are consumed.

    A task still running ``every_s`` after its cancel is cancelled again: one cancel can
    be lost (Python 3.11's ``wait_for`` completing in the same loop step, gRPC's aio
    calls), and its owner would then wait forever; a cleanup shorter than ``every_s`` is
    never interrupted. A cancel of the caller meanwhile is passed on only after they have
    finished, so no task outlives the code that owns it.
    """
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    pending = {t for t in tasks if not t.done()}
    for t in pending:
        t.cancel()
    cancelled_at = loop.time()
    interrupted = False
    while pending:
        try:
            await asyncio.wait(pending, timeout=max(0.0, cancelled_at + every_s - loop.time()))
        except asyncio.CancelledError:
            interrupted = True  # the tasks' own cleanup goes on: no cancel of theirs for this
        pending = {t for t in pending if not t.done()}
        if pending and loop.time() >= cancelled_at + every_s:
            for t in pending:
                t.cancel()
            cancelled_at = loop.time()
    for t in tasks:
        retrieve(t)  # never logged as "exception was never retrieved"
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


async def shielded_wait(task: asyncio.Future[T], timeout: float) -> T:
    """Wait up to ``timeout`` for ``task``, which a cancel of the caller does not cancel
    (a lease revoke must finish while we are being stopped); on timeout it is cancelled.

    ``asyncio.shield(asyncio.wait_for(task, t))`` wraps the wait in a task of its own that
    nobody reads once the caller was cancelled: a failure then is logged as "Task
    exception was never retrieved". Here both tasks are always read.
    """
    task.add_done_callback(retrieve)
    bounded = asyncio.ensure_future(asyncio.wait_for(task, timeout))
    bounded.add_done_callback(retrieve)
    return await asyncio.shield(bounded)


async def cancel_until_done(
    task: asyncio.Future[Any], *, every_s: float = 0.5, limit_s: float | None = None
) -> bool:
    """Cancel ``task`` and wait for it to end, cancelling it again every ``every_s``.

    On Python 3.11 one cancel can be lost (a TaskGroup aborting on a child's failure at the
    same moment, or ``wait_for`` completing in the same loop step), and a server that
    waits for its main task after a single cancel then never stops. True once it ended;
    False if ``limit_s`` passed first. Its outcome is read either way.
    """
    loop = asyncio.get_running_loop()
    deadline = None if limit_s is None else loop.time() + limit_s
    while not task.done():
        if deadline is not None and loop.time() >= deadline:
            return False
        task.cancel()
        wait = every_s if deadline is None else max(0.0, min(every_s, deadline - loop.time()))
        await asyncio.wait([task], timeout=wait)
    retrieve(task)
    return True


async def run_until_failure(coros: Mapping[str, Coroutine[Any, Any, Any]], *, every_s: float = 0.1) -> None:
    """Run each coroutine as a named task until all end, one fails (its error is raised)
    or the caller is cancelled; then every task still running is cancelled until it ends.

    An ``asyncio.TaskGroup`` cancels its children once: a child that loses that cancel
    (Python 3.11's ``wait_for``, gRPC's aio calls) keeps the group, and the process that
    awaits it, running after SIGTERM. Here each is cancelled again every ``every_s``
    (``cancel_and_wait``), also while the caller is cancelled again meanwhile.
    """
    tasks = [asyncio.create_task(c, name=name) for name, c in coros.items()]
    done: set[asyncio.Task[Any]] = set()
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        await cancel_and_wait(tasks, every_s=every_s)
    for t in tasks:
        if t in done and not t.cancelled() and (exc := t.exception()) is not None:
            raise exc


def task_stacks(limit: int = 200) -> str:
    """Every task of the running loop and the await it is suspended at, innermost last
    (``file:line function > ...``): where a stop that does not end is waiting.

    ``Task.get_stack`` shows only a task's outer coroutine; this follows its awaits.
    """
    lines = []
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name())[:limit]:
        chain: list[str] = []
        obj: Any = task.get_coro()
        while obj is not None:
            frame = (
                getattr(obj, "cr_frame", None)
                or getattr(obj, "gi_frame", None)
                or getattr(obj, "ag_frame", None)
            )
            if frame is None:  # a future's iterator, or a coroutine not started
                break
            chain.append(
                f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} {frame.f_code.co_name}"
            )
            obj = (
                getattr(obj, "cr_await", None)
                or getattr(obj, "gi_yieldfrom", None)
                or getattr(obj, "ag_await", None)
            )
        lines.append(f"  {task.get_name()}: {' > '.join(chain) or repr(task)[:160]}")
    return "\n".join(lines)
