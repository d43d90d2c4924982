"""A new term decides as soon as its view holds everything before its own election key."""

from __future__ import annotations

import asyncio

from coordinator.keys import Keys
from coordinator.leader import LeaderWork
from coordinator.view import ClusterView


async def test_a_new_term_does_not_wait_for_its_own_key_in_the_watch() -> None:
    """Token T is the revision of our own campaign's put: a view at T - 1 misses nothing else.

    Waiting for the watch to deliver our own key cost a watch round trip on every hand-over.
    """
    view = ClusterView(Keys("/t/"))
    work = LeaderWork(view, committer=None, history_retention=10)  # type: ignore[arg-type]
    view.apply({}, set(), 41)
    async with asyncio.timeout(1):
        await work._catch_up(42)


async def test_a_new_term_waits_for_writes_before_its_election() -> None:
    """A view two revisions behind may miss the previous term's last decision: wait for it."""
    view = ClusterView(Keys("/t/"))
    work = LeaderWork(view, committer=None, history_retention=10)  # type: ignore[arg-type]
    view.apply({}, set(), 40)
    waiting = asyncio.create_task(work._catch_up(42))
    await asyncio.sleep(0.01)
    assert not waiting.done(), "decided on a view that may miss the previous term's last write"
    view.apply({}, set(), 41)
    async with asyncio.timeout(1):
        await waiting
