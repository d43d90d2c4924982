"""A replica that hands the election key over names the successor in its own view at once."""

from __future__ import annotations

import asyncio

from coordinator.keys import Keys
from coordinator.view import ClusterView, LeaderKey


async def test_the_successor_is_named_at_once_and_wakes_who_waits_on_the_view() -> None:
    view = ClusterView(Keys("/p/"))
    view.leader = LeaderKey("c1", "127.0.0.1:1", token=10, lease=1)
    woken = asyncio.ensure_future(view.changed.wait())
    view.handed_over(LeaderKey("c2", "127.0.0.1:2", token=12, lease=2))
    assert view.leader == LeaderKey("c2", "127.0.0.1:2", token=12, lease=2)
    await asyncio.wait_for(woken, 1)


def test_a_newer_key_the_watch_already_brought_is_kept() -> None:
    view = ClusterView(Keys("/p/"))
    newer = LeaderKey("c3", "127.0.0.1:3", token=15, lease=3)
    view.leader = newer
    view.handed_over(LeaderKey("c2", "127.0.0.1:2", token=12, lease=2))
    assert view.leader == newer
