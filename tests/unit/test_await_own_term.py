"""A replica etcd has just elected waits for its own term to begin, not for a caller's margin.

Found measuring graceful hand-overs (`failover bench control-plane`, Switch attempts of
0.5 s): a Switch forwarded to the successor after etcd elected it, but before its term had
begun (it gathers the replicas' health first, a few ms), was answered "no leader elected
right now; retry": with less than the 1 s kept for explaining a missing leader left on the
caller's deadline, the successor did not wait at all. The forwarder, whose view still named
that successor, then waited 100 ms for a leader change that never came: 110-126 ms hand-overs
against 5-15 ms. A replica whose own key is the election key waits for its term for up to half of what
the caller has left (the other half still explains a term that does not begin).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from coordinator.admin_service import AdminService
from coordinator.view import LeaderKey


class _Context:
    def __init__(self, remaining: float) -> None:
        self._until = asyncio.get_running_loop().time() + remaining

    def time_remaining(self) -> float:
        return self._until - asyncio.get_running_loop().time()


def _service(me: str, view_leader: str) -> Any:
    svc: Any = object.__new__(AdminService)
    svc._id = me
    svc._leader_wait_s = 5.0
    svc._view = SimpleNamespace(leader=LeaderKey(view_leader, "127.0.0.1:1", 7, 1), changed=asyncio.Event())
    svc._leader = SimpleNamespace(leadership=None, leadership_changed=asyncio.Event())
    svc.stopping = asyncio.Event()
    return svc


async def test_elected_but_not_yet_in_its_term_it_waits_for_the_term_within_a_short_deadline() -> None:
    svc = _service("c2", "c2")
    loop = asyncio.get_running_loop()

    def term_begins() -> None:
        svc._leader.leadership = object()
        svc._leader.leadership_changed.set()

    loop.call_later(0.05, term_begins)
    t0 = loop.time()
    got = await svc._await_leader(_Context(0.5))
    assert got is None and svc._leader.leadership is not None, "returned before its own term began"
    assert loop.time() - t0 < 0.4


async def test_with_another_replica_named_it_still_keeps_the_margin_to_explain() -> None:
    """Not elected here: with less than the margin left, the answer comes at once (the caller
    must hear why there is no leader before its deadline)."""
    svc = _service("c1", "c1")
    svc._view.leader = None
    t0 = asyncio.get_running_loop().time()
    assert await svc._await_leader(_Context(0.5)) is None
    assert asyncio.get_running_loop().time() - t0 < 0.05
