"""failover.aio: helpers that start tasks must leave none behind, finished or not."""

from __future__ import annotations

import asyncio

import pytest

from failover.aio import cancel_and_wait, cancel_until_done, finish, run_until_failure, wait_any
from tests.lost_cancel import LosesCancels


async def test_wait_any_returns_only_after_every_task_it_started_has_finished() -> None:
    cleaned: list[str] = []

    async def slow_to_cancel(name: str) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # cleanup that takes a step of the loop
            cleaned.append(name)
            raise

    assert not await wait_any(slow_to_cancel("a"), slow_to_cancel("b"), timeout=0.01)
    assert sorted(cleaned) == ["a", "b"]
    assert await wait_any(asyncio.sleep(0), slow_to_cancel("c"))
    assert "c" in cleaned


async def test_cancel_and_wait_lets_the_tasks_finish_before_passing_on_the_callers_cancel() -> None:
    finished = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.02)
            finished.set()

    child = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cancel_and_wait([child]))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert finished.is_set() and child.done()


async def test_cancel_and_wait_ends_a_task_that_loses_its_first_cancel() -> None:
    """Every owner that stops its tasks with ``cancel_and_wait`` (a path session's loop, the
    mirror's watch consumer, a lease keeper, the leader's gather) waited forever for a task
    whose one cancel was lost (Python 3.11's ``wait_for``, gRPC's aio calls)."""
    lost = LosesCancels()
    child = asyncio.create_task(lost.run())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait([child]))
    await asyncio.wait([stopper], timeout=2)
    ended, seen = stopper.done(), lost.seen
    if not ended:  # a hang must fail the test, not stall the suite
        await cancel_until_done(child, every_s=0.05, limit_s=1)
        await stopper
    assert ended, f"cancel_and_wait still waiting 2 s later (the task saw {seen} cancel)"
    assert child.cancelled() and lost.seen == 2


async def test_finish_runs_the_task_to_its_end_through_a_cancel_of_the_caller() -> None:
    ended = asyncio.Event()

    async def shutdown() -> None:
        await asyncio.sleep(0.02)
        ended.set()

    waiter = asyncio.create_task(finish(asyncio.create_task(shutdown())))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert ended.is_set()


async def test_cancel_until_done_cancels_again_a_task_that_swallowed_one_cancel() -> None:
    """A task that loses one cancel (as a 3.11 TaskGroup can) still ends, and is not waited
    on forever."""

    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # the first cancel is lost

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await cancel_until_done(task, every_s=0.05, limit_s=5)
    assert task.cancelled() and swallowed == 1


async def test_cancel_until_done_gives_up_at_its_limit() -> None:

    done = asyncio.Event()

    async def immortal() -> None:
        while not done.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass

    task = asyncio.create_task(immortal())
    await asyncio.sleep(0)
    assert not await cancel_until_done(task, every_s=0.05, limit_s=0.3)
    done.set()
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.done()


async def test_run_until_failure_raises_the_first_failure_and_ends_every_other_task() -> None:
    ended: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    async def boom() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):  # the error itself, not an ExceptionGroup
        await asyncio.wait_for(run_until_failure({"a": forever("a"), "b": boom()}), 5)
    assert ended == ["a"]


async def test_run_until_failure_cancels_again_a_child_that_lost_a_cancel_meanwhile() -> None:
    child = LosesCancels(lost=2)
    outer = asyncio.create_task(run_until_failure({"deaf": child.run()}, every_s=0.02))
    await asyncio.sleep(0)
    # The caller cancels once and then again (as `serve` does) while the child still runs.
    assert await cancel_until_done(outer, every_s=0.01, limit_s=5.0)
    assert outer.cancelled() and child.seen == 3
