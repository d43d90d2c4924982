"""A decision pass with many commits to make gives way to operator calls between them.

A pass can hold hundreds of commits: a cluster's first leader seeding every group, an
era bump re-committing every route, one line dying under hundreds of groups. Each is
an etcd round trip; an operator call that arrived meanwhile must not wait for all of
them (1,000 groups: seconds). The pass stops after the commit in flight, the call is
answered, and the next pass goes on with the groups still to do.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from coordinator.commit import Committed, Leadership
from coordinator.core.reconcile import Proposal
from coordinator.keys import Keys
from coordinator.leader import LeaderWork
from coordinator.operator_requests import OperatorRequest
from coordinator.store.types import KV, Lease
from coordinator.view import ClusterView
from failover.model.spec import GroupSpec, PathSpec, TriggerSpec
from tests.unit.test_reply_before_pass import InstantCommitter

KEYS = Keys("/t/")
GROUPS = [f"g{i:03d}" for i in range(60)]


def _spec(name: str) -> GroupSpec:
    paths = [PathSpec(name=n, endpoints={"default": "127.0.0.1:9"}) for n in ("primary", "backup")]
    return GroupSpec(name=name, paths=paths)


class WatchedCommitter(InstantCommitter):
    """Commits after a round trip (one timer turn) and puts the route in the view, as the
    watch would; records every commit in order."""

    def __init__(self, view: ClusterView) -> None:
        super().__init__()
        self.view = view
        self.commits: list[tuple[str, str]] = []  # (group, trigger kind)
        self._committed = asyncio.Condition()

    def count(self, kind: str) -> int:
        return sum(1 for _, k in self.commits if k == kind)

    async def until(self, kind: str, n: int) -> None:
        async with self._committed:
            await self._committed.wait_for(lambda: self.count(kind) >= n)

    async def commit(  # type: ignore[override]
        self,
        leadership: Leadership,
        group: str,
        paths: list[str],
        reason: str,
        trigger: TriggerSpec,
        *rest: Any,
    ) -> Committed:
        await asyncio.sleep(0.001)
        done = await super().commit(leadership, group, paths, reason, trigger, *rest)
        key = KEYS.route(group)
        value = done.record.model_dump_json().encode()
        self.view.apply({key: KV(key, value, 1, self.revision)}, {key}, self.revision)
        self.commits.append((group, trigger.kind))
        async with self._committed:
            self._committed.notify_all()
        return done


def _view() -> ClusterView:
    view = ClusterView(KEYS)
    data = {KEYS.group(g): KV(KEYS.group(g), _spec(g).model_dump_json().encode(), 5, 5) for g in GROUPS}
    view.apply(data, set(data), 10)
    return view


async def _term(work: LeaderWork) -> asyncio.Task[None]:
    leadership = Leadership("c1", "127.0.0.1:1", 9, Lease(id=1, ttl_s=2, requested_at=0.0))
    return asyncio.create_task(work.run(leadership))


@contextlib.asynccontextmanager
async def _seeding() -> AsyncIterator[tuple[LeaderWork, WatchedCommitter]]:
    """A term whose first pass seeds every group, once the first seed is committed
    (bounded at 10 s); the term is cancelled at the end."""
    view = _view()
    committer = WatchedCommitter(view)
    work = LeaderWork(view, committer, history_retention=10)  # type: ignore[arg-type]
    term = await _term(work)
    try:
        async with asyncio.timeout(10):
            await committer.until("seed", 1)  # the first leader seeds every group, one by one
            yield work, committer
    finally:
        term.cancel()
        await asyncio.gather(term, return_exceptions=True)


async def test_an_operator_call_is_answered_before_a_long_sweep_ends() -> None:
    async with _seeding() as (work, committer):
        switch = OperatorRequest(GROUPS[0], "test", "op", force=True, path="backup")
        await work.submit(switch)
        seeded_at_reply = committer.count("seed")
        await committer.until("seed", len(GROUPS))  # the sweep goes on after the reply
    assert seeded_at_reply < len(GROUPS) / 2, f"the call waited for {seeded_at_reply} seed commits"
    kinds = [kind for group, kind in committer.commits if group == GROUPS[0]]
    assert kinds[:2] == ["seed", "operator"], kinds
    assert len(committer.commits) == len(GROUPS) + 1  # nothing committed twice


async def test_health_proposals_give_way_too() -> None:
    """One line dying under every group: the operator call does not wait for all failovers."""
    view = _view()
    committer = WatchedCommitter(view)
    ran = asyncio.Event()

    def policy(v: ClusterView) -> list[Proposal]:
        ran.set()
        return [
            Proposal(g, ["backup", "primary"], "primary down", "health")
            for g, r in v.routes.items()
            if r.record.paths[0] == "primary"
        ]

    work = LeaderWork(view, committer, history_retention=10, health_policy=policy)  # type: ignore[arg-type]
    term = await _term(work)
    try:
        async with asyncio.timeout(10):
            await committer.until("health", 1)
            switch = OperatorRequest(GROUPS[-1], "test", "op", force=True, path="primary")
            await work.submit(switch)
            moved_at_reply = committer.count("health")
            await committer.until("health", len(GROUPS))  # every group moves in the end
    finally:
        term.cancel()
        await asyncio.gather(term, return_exceptions=True)
    assert ran.is_set()
    assert moved_at_reply < len(GROUPS) / 2, f"the call waited for {moved_at_reply} health commits"


async def test_the_sweep_goes_on_while_calls_keep_coming() -> None:
    """Calls sent back to back (each as soon as the last is answered) still let every pass
    make one commit of the sweep: a busy operator cannot stall the seeding."""
    calls = 20
    async with _seeding() as (work, committer):
        before = committer.count("seed")
        for i in range(calls):
            path = "backup" if i % 2 == 0 else "primary"
            await work.submit(OperatorRequest(GROUPS[0], "test", "op", force=True, path=path))
        during = committer.count("seed") - before
    assert during >= calls - 1, f"{during} seed commits while {calls} calls were answered"


async def test_a_graceful_stop_waits_for_the_commit_in_flight_only() -> None:
    """A leader stopping during a sweep stands down after the commit in flight: its
    successor is not kept waiting for the rest of the sweep (it does it in its own term)."""
    async with _seeding() as (work, committer):
        work.stand_down()
        await work.settle(5.0)
        settled_at = committer.count("seed")
        await asyncio.sleep(0.02)  # twenty round trips of this committer: nothing more
    assert settled_at <= 2, f"the stop waited for {settled_at} seed commits"
    assert committer.count("seed") == settled_at, "a commit started after the stand-down"
