"""A follower whose campaign etcd refuses for NOSPACE waits on its view while a leader holds
the key, instead of sending (and logging) a refused transaction every retry interval.

etcd checks its quota before it compares, so under the alarm the campaign's
compare-absent-then-put fails even though the key is held and the answer would have
been "not vacant". Seen in the fault tier's NOSPACE row: each follower logged
"campaign failed" about four times a second for as long as the alarm lasted. A fake
store stands in for etcd (this is the election's retry policy); the same refusal from a
real etcd is the fault row tests/fault/test_etcd.py::test_nospace_alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from coordinator.election import Election
from coordinator.keys import Keys
from coordinator.store.errors import NoSpace, StoreUnavailable
from coordinator.store.types import Lease
from coordinator.view import ClusterView, LeaderKey

OUR_LEASE = 7
RETRY_S = 0.05
WATCH_S = 1.0


class _Keeper:
    lost = False

    async def wait_lost(self) -> None:
        await asyncio.Event().wait()


class _RefusingStore:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.txns = 0

    async def txn(self, *_a: Any, **_k: Any) -> Any:
        self.txns += 1
        raise self.error


def _view_with_leader() -> ClusterView:
    view = ClusterView(Keys())
    view.leader = LeaderKey("c1", "127.0.0.1:1", token=5, lease=99)
    view.revision = 10
    return view


async def _campaign_for(store: _RefusingStore, view: ClusterView, seconds: float) -> None:
    election = Election(
        store,  # type: ignore[arg-type]
        Keys(),
        view,
        replica_id="c2",
        address="127.0.0.1:2",
        ttl_s=2,
        retry_s=RETRY_S,
    )

    async def work(_leadership: Any) -> None:
        raise AssertionError("no term can start while etcd refuses every write")

    lease = Lease(id=OUR_LEASE, ttl_s=2, requested_at=0.0)
    task = asyncio.create_task(election._campaign(lease, _Keeper(), work))  # type: ignore[arg-type]
    await asyncio.sleep(seconds)
    assert not task.done(), task
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_under_nospace_a_follower_waits_on_its_view_while_a_leader_holds_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _RefusingStore(NoSpace("etcdserver: mvcc: database space exceeded"))
    with caplog.at_level(logging.INFO, logger="coordinator.election"):
        await _campaign_for(store, _view_with_leader(), 1.5 * WATCH_S)
    # One refused transaction, then one re-check per view timeout (1 s): not one per 50 ms.
    assert store.txns <= 3, f"{store.txns} campaign transactions in {1.5 * WATCH_S} s"
    failed = [r for r in caplog.records if "campaign failed" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage() for r in failed]


async def test_under_nospace_with_no_leader_the_campaign_keeps_retrying() -> None:
    """No leader to wait for: the follower retries at its interval (someone must lead once
    the alarm is cleared)."""
    store = _RefusingStore(NoSpace("etcdserver: mvcc: database space exceeded"))
    await _campaign_for(store, ClusterView(Keys()), 0.5)
    assert store.txns >= 5, store.txns


async def test_an_unavailable_etcd_is_retried_at_the_interval_even_with_a_leader_in_view() -> None:
    """etcd not answering: the view may be stale (the leader may be dead), so no waiting on it."""
    store = _RefusingStore(StoreUnavailable("txn: connection refused"))
    await _campaign_for(store, _view_with_leader(), 0.5)
    assert store.txns >= 5, store.txns
