"""The fence itself: superseded leaders and stale inputs change nothing."""

from __future__ import annotations

import asyncio

import pytest

from coordinator.commit import Committer, Inputs, Leadership, NotLeader, StaleInputs
from coordinator.store.errors import StoreTimeout
from coordinator.store.types import Compare, Delete, Lease, Put
from failover.model.spec import DecisionRecord, TriggerSpec
from tests.harness import ReplicaSet, kv_snapshot, switch, wait_for

pytestmark = pytest.mark.cluster


async def test_superseded_token_and_stale_inputs_are_rejected(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        assert leader.leader.leadership is not None
        real = leader.leader.leadership
        store, view = leader.store, leader.view
        committer = Committer(store, leader.keys, view)
        before = await kv_snapshot(store, prefix)

        # A deposed leader: same lease, an older token. The transaction itself refuses.
        old = Leadership("ghost", "127.0.0.1:1", real.token - 1, Lease(real.lease.id, 2))
        with pytest.raises(NotLeader):
            await committer.commit(
                old, "cme-orders", ["backup", "primary"], "x", TriggerSpec(), Inputs.of(view, "cme-orders")
            )
        # The real leader deciding on a stale view of the route.
        stale = Inputs.of(view, "cme-orders")
        stale = Inputs(
            stale.era, stale.era_rev, stale.group_rev, stale.control_rev, stale.route_rev - 1, stale.prev
        )
        with pytest.raises(StaleInputs):
            await committer.commit(real, "cme-orders", ["backup", "primary"], "x", TriggerSpec(), stale)
        # ... or of the group definition.
        fresh = Inputs.of(view, "cme-orders")
        stale = Inputs(
            fresh.era, fresh.era_rev, fresh.group_rev + 1, fresh.control_rev, fresh.route_rev, fresh.prev
        )
        with pytest.raises(StaleInputs):
            await committer.commit(real, "cme-orders", ["backup", "primary"], "x", TriggerSpec(), stale)
        assert await kv_snapshot(store, prefix) == before
    finally:
        await rs.stop_all()


class _CountingStore:
    """The replica's store, recording every call made through it (names only)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def wrapped(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return wrapped


async def test_commit_is_one_round_trip_and_the_txn_alone_fences(etcd_cluster, prefix) -> None:
    """A commit is exactly one etcd transaction: the fence is in it, not in a read before it.

    Then the cases the removed pre-commit read used to catch, each refused by the
    transaction alone with nothing written: a term whose key was deleted (resigned, no
    leader yet), and a term whose key was re-created by the next term.
    """
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        real = leader.leader.leadership
        assert real is not None
        store, view, keys = leader.store, leader.view, leader.keys
        counting = _CountingStore(store)
        committer = Committer(counting, keys, view)  # type: ignore[arg-type]
        order = ["backup", "primary"]
        if view.routes["cme-orders"].record.paths == order:
            order.reverse()
        await committer.commit(real, "cme-orders", order, "x", TriggerSpec(), Inputs.of(view, "cme-orders"))
        assert counting.calls == ["txn"], f"a commit made {counting.calls}"

        # The key deleted (as a resign's revoke does): no leader at all.
        await wait_for(lambda: view.routes["cme-orders"].record.paths == order, 10, "the switch in view")
        before = await kv_snapshot(store, prefix)
        lease = await store.grant(5)
        try:
            await store.txn([], [Delete(keys.leader)])
            with pytest.raises(NotLeader):
                await committer.commit(
                    real, "cme-orders", order[::-1], "x", TriggerSpec(), Inputs.of(view, "cme-orders")
                )
            # Re-created by the next term (ours, or the replica's own new campaign): a new token.
            await store.txn([Compare.absent(keys.leader)], [Put(keys.leader, b"{}", lease.id)])
            with pytest.raises(NotLeader):
                await committer.commit(
                    real, "cme-orders", order[::-1], "x", TriggerSpec(), Inputs.of(view, "cme-orders")
                )
            after = await kv_snapshot(store, prefix)
            assert {k: v for k, v in after.items() if "election" not in k} == {
                k: v for k, v in before.items() if "election" not in k
            }
        finally:
            await store.revoke(lease.id)
    finally:
        await rs.stop_all()


async def test_history_prune_does_not_hold_up_the_reply(etcd_cluster, prefix) -> None:
    """An operator's reply comes right after the commit; pruning history runs after it.

    The prune is held (an event the test sets): the reply must arrive meanwhile, with the
    prune begun and not finished; released, the prune finishes (unless the term ended
    meanwhile, which cancels it: this loaded box sometimes loses a lease).
    """
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    release = asyncio.Event()
    started: list[str] = []
    finished: list[str] = []
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        term = leader.leader.leadership
        committer = leader.leader._committer
        real_prune = committer.prune_history

        async def held_prune(leadership, group, keep):
            started.append(group)
            await release.wait()
            n = await real_prune(leadership, group, keep)
            finished.append(group)
            return n

        committer.prune_history = held_prune  # type: ignore[method-assign]
        path = "primary" if leader.view.routes["cme-orders"].record.paths[0] == "backup" else "backup"
        async with asyncio.timeout(5):
            resp = await switch(rs.address(0), "cme-orders", path)
        assert list(resp.decision.paths)[0] == path
        await wait_for(lambda: "cme-orders" in started, 5, "the prune to begin")
        assert finished == [], "the reply waited for the prune"
        release.set()
        await wait_for(
            lambda: "cme-orders" in finished or leader.leader.leadership is not term, 5, "the prune to finish"
        )
    finally:
        release.set()
        await rs.stop_all()


class _AnswerLostStore:
    """The replica's store, but the first transaction's answer is lost: a ``StoreTimeout``
    reaches the caller although etcd applied it (``applied``), or before it was ever sent."""

    def __init__(self, inner, *, applied: bool) -> None:
        self._inner = inner
        self._applied = applied
        self.txns = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def txn(self, *args, **kwargs):
        self.txns += 1
        if self.txns == 1:
            if self._applied:
                await self._inner.txn(*args, **kwargs)
            raise StoreTimeout("txn: timed out")
        return await self._inner.txn(*args, **kwargs)


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "not-sent"])
async def test_a_commit_whose_answer_was_lost_is_resolved_by_sending_it_again(
    etcd_cluster, prefix, applied: bool
) -> None:
    """A transaction that timed out may still have applied: the leader sends the same fenced
    transaction once more. Its compares make the pair apply at most once, and the answer
    tells which: committed (by either), or a definite refusal. The decision is written
    once, and the caller gets the epoch it was written at, not "outcome unknown"."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        real = leader.leader.leadership
        assert real is not None
        store, view, keys = leader.store, leader.view, leader.keys
        order = ["backup", "primary"]
        if view.routes["cme-orders"].record.paths == order:
            order.reverse()
        lossy = _AnswerLostStore(store, applied=applied)
        committer = Committer(lossy, keys, view)  # type: ignore[arg-type]
        history_before = len([k for k in (await kv_snapshot(store, prefix)) if "/history/" in k])
        done = await committer.commit(
            real, "cme-orders", order, "answer lost", TriggerSpec(), Inputs.of(view, "cme-orders")
        )
        assert lossy.txns == 2
        route, _ = await store.get(keys.route("cme-orders"))
        assert route is not None and route.mod_revision == done.epoch.revision
        assert DecisionRecord.model_validate_json(route.value) == done.record
        history_after = len([k for k in (await kv_snapshot(store, prefix)) if "/history/" in k])
        assert history_after == history_before + 1, "written once"
    finally:
        await rs.stop_all()
