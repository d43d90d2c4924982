"""Operator calls go ahead of the fan-out: while one is in progress the hub wakes no
further sessions, and the hold is bounded so operator traffic cannot stall a push."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from coordinator.config import CoordinatorConfig
from coordinator.fanout import EncodedDecision
from coordinator.health_forwarder import HealthForwarder
from coordinator.keys import Keys
from coordinator.peers import PeerChannels
from coordinator.sync_service import WAKE_BATCH, Session, SyncHub
from coordinator.urgent import Urgent
from coordinator.view import ClusterView
from failover.model.spec import Epoch

SESSIONS = WAKE_BATCH * 4


def _hub(urgent: Urgent) -> tuple[SyncHub, ClusterView, list[Session]]:
    view = ClusterView(Keys("/t/"))
    hub = SyncHub(
        CoordinatorConfig(), view, cast(Any, None), HealthForwarder("r1", view, PeerChannels(), bool)
    )
    hub.urgent = urgent
    hub.cache.decisions["g"] = EncodedDecision(Epoch(0, 5), b"", b"", ("a",))
    sessions = [
        Session(sid=i, host_id=f"h{i}", site="default", groups=("g",), acked={}) for i in range(SESSIONS)
    ]
    for s in sessions:
        hub.sessions[s.sid] = s
    return hub, view, sessions


async def _iterations(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_no_session_is_woken_while_an_operator_call_is_in_progress() -> None:
    urgent = Urgent(max_hold_s=30.0)
    hub, view, sessions = _hub(urgent)
    with urgent.call():
        hub._on_view(view, {"g"})
        await _iterations(SESSIONS * 2)  # far more iterations than the fan-out needs
        assert not any(s.wake.is_set() for s in sessions)
    waits = [s.wake.wait() for s in sessions]
    await asyncio.wait_for(asyncio.gather(*waits), 5.0)


async def test_a_call_that_arrives_mid_fanout_stops_the_next_batches() -> None:
    urgent = Urgent(max_hold_s=30.0)
    hub, view, sessions = _hub(urgent)
    hub._on_view(view, {"g"})
    await sessions[0].wake.wait()  # the first batch is out
    with urgent.call():
        woken = sum(s.wake.is_set() for s in sessions)
        await _iterations(SESSIONS * 2)
        assert sum(s.wake.is_set() for s in sessions) == woken < SESSIONS
    await asyncio.wait_for(asyncio.gather(*(s.wake.wait() for s in sessions)), 5.0)


async def test_the_hold_is_bounded_when_calls_keep_coming() -> None:
    urgent = Urgent(max_hold_s=0.05)
    hub, view, sessions = _hub(urgent)
    with urgent.call():  # never ends before the push does
        hub._on_view(view, {"g"})
        await asyncio.wait_for(asyncio.gather(*(s.wake.wait() for s in sessions)), 5.0)
        assert urgent.busy
    assert urgent.held_s > 0


async def test_nested_calls_hold_until_the_last_one_ends() -> None:
    urgent = Urgent(max_hold_s=30.0)
    hub, view, sessions = _hub(urgent)
    with urgent.call():
        with urgent.call():
            hub._on_view(view, {"g"})
            await _iterations(4)
        await _iterations(SESSIONS * 2)
        assert not any(s.wake.is_set() for s in sessions)
    await asyncio.wait_for(asyncio.gather(*(s.wake.wait() for s in sessions)), 5.0)


async def test_one_push_gives_way_at_most_its_budget_however_many_calls_follow() -> None:
    urgent = Urgent(max_hold_s=0.05)
    hub, view, _ = _hub(urgent)
    many = [
        Session(sid=i, host_id=f"h{i}", site="default", groups=("g",), acked={})
        for i in range(SESSIONS, WAKE_BATCH * 40)
    ]
    for s in many:
        hub.sessions[s.sid] = s
    stop = asyncio.Event()

    async def operator_traffic() -> None:  # short calls back to back: a new episode each time
        while not stop.is_set():
            with urgent.call():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0)

    traffic = asyncio.create_task(operator_traffic())
    try:
        await asyncio.sleep(0)
        hub._on_view(view, {"g"})
        await asyncio.wait_for(asyncio.gather(*(s.wake.wait() for s in hub.sessions.values())), 5.0)
    finally:
        stop.set()
        await traffic
    # 40 batches behind 10 ms calls would wait about 0.4 s without the push's budget.
    assert 0 < urgent.held_s < 0.25, urgent.held_s
