"""Election, hand-over, and epochs across leader changes (in-process replicas, real etcd)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import pytest

from failover.model.spec import Epoch
from tests.harness import ReplicaSet, switch, wait_for

pytestmark = pytest.mark.cluster


def _diag(rs: ReplicaSet) -> list[str]:
    out = []
    for r in rs.running():
        m = r.mirror
        out.append(
            f"{r.cfg.replica_id}: leader={r.election.is_leader} mirror rev={m.revision} "
            f"ready={m.ready.is_set()} "
            f"connected={m.connected} restarts={m.watch_restarts} keys={sorted(m.data)} "
            f"groups={sorted(r.view.groups)} fresh={r.freshness.state} resets={r.freshness.watch_resets} "
            f"restore={r.view.restore}"
        )
    return out


async def test_one_leader_at_a_time_and_epochs_increase_across_leader_changes(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=3)
    await rs.start_all()
    overlaps: list[int] = []
    stop = asyncio.Event()

    async def watch_leaders() -> None:
        while not stop.is_set():
            n = len(rs.leaders())
            if n > 1:
                overlaps.append(n)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch_leaders())
    epochs: list[Epoch] = []
    tokens: list[int] = []
    try:
        for round_ in range(3):
            leader = await rs.wait_leader()
            tokens.append(leader.leader.leadership.token)
            idx = rs.replicas.index(leader)
            for path in ("backup", "primary"):
                resp = await switch(rs.address((idx + 1) % 3), "cme-orders", path, f"round {round_}")
                epochs.append(Epoch(resp.decision.epoch.era, resp.decision.epoch.revision))
            await rs.stop(idx)
            await rs.start(idx)
        assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs), epochs
        assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
        assert not overlaps, "two replicas believed they led at the same time"
    finally:
        stop.set()
        await watcher
        await rs.stop_all()


async def test_failed_leader_work_revokes_its_lease(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        old_token = leader.leader.leadership.token

        def boom(view):
            raise RuntimeError("injected failure in the leader's task group")

        leader.leader._health_policy = boom
        started = time.monotonic()
        leader.leader.wake()
        other = [r for r in rs.running() if r is not leader][0]
        await wait_for(lambda: other.election.is_leader, 1.5, "the follower to take over")
        took = time.monotonic() - started
        # The TTL is 2 s: a take-over this fast means the lease was revoked, not expired.
        assert took < 1.5, took
        # is_leader is set when the campaign transaction succeeds; the view sees the key a little
        # later (until then it can still show the old key: on a loaded machine it did).
        await wait_for(
            lambda: other.view.leader is not None and other.view.leader.token > old_token,
            5,
            "the follower's view to show the new key",
        )
    finally:
        await rs.stop_all()


async def test_etcd_member_killed_under_replicas_decisions_keep_committing_and_none_is_missed(
    own_etcd, prefix
) -> None:
    rs = ReplicaSet(own_etcd.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        follower = next(r for r in rs.running() if r is not leader)
        seen: list[int] = []
        follower.view.listeners.append(
            lambda v, groups: (
                seen.append(v.routes["cme-orders"].epoch.revision)
                if "cme-orders" in groups
                and "cme-orders" in v.routes
                and (not seen or v.routes["cme-orders"].epoch.revision != seen[-1])
                else None
            )
        )
        committed: list[int] = []
        errors: list[str] = []
        for member in range(3):
            own_etcd.kill(member)
            for path in ("backup", "primary"):
                for _attempt in range(50):
                    try:
                        r = await switch(
                            rs.address(rs.replicas.index(leader)), "cme-orders", path, f"m{member}"
                        )
                        committed.append(r.decision.epoch.revision)
                        break
                    except Exception as exc:
                        errors.append(repr(exc)[:300])
                        await asyncio.sleep(0.1)
            await asyncio.to_thread(own_etcd.restart, member)
        assert len(committed) == 6, (errors[-1:], _diag(rs))
        # Every write reached the follower's watch: each decision's history entry is in its
        # mirror (its view may coalesce two decisions that arrive in one watch batch).
        hist = follower.keys.history_prefix("cme-orders")

        def mirrored() -> set[int]:
            return {kv.mod_revision for k, kv in follower.mirror.data.items() if k.startswith(hist)}

        await wait_for(
            lambda: set(committed) <= mirrored(), 15, "the follower's watch to deliver every decision"
        )
        assert seen == sorted(seen) and seen[-1] == committed[-1]
    finally:
        await rs.stop_all()


async def test_a_short_etcd_stall_does_not_end_leadership(own_etcd, prefix) -> None:
    """A stall well inside the timing budget: renewals are retried, the term goes on."""
    rs = ReplicaSet(own_etcd.endpoints, prefix, n=2)
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        terms = leader.election.terms
        for i in range(len(own_etcd.members)):
            own_etcd.signal_member(i, signal.SIGSTOP)
        try:
            # The local deadline is at least TTL - margin - interval = 1.13 s after the stall began.
            await asyncio.sleep(0.4)
        finally:
            for i in range(len(own_etcd.members)):
                own_etcd.signal_member(i, signal.SIGCONT)
        r = await switch(rs.address(rs.replicas.index(leader)), "cme-orders", "backup", "after stall")
        assert r.decision.epoch.revision > 0
        assert leader.election.is_leader and leader.election.terms == terms, "the stall ended the term"
    finally:
        await rs.stop_all()


async def test_an_etcd_outage_longer_than_the_lease_ends_the_term_then_one_leader_resumes(prefix) -> None:
    from failover.etcdproc import EtcdCluster

    cluster = EtcdCluster(1)
    cluster.start()
    rs = ReplicaSet(cluster.endpoints, prefix, n=2)
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        token = leader.leader.leadership.token
        await asyncio.to_thread(cluster.stop_member, 0)
        # No renewal can be answered: the term ends at the lease's local deadline (< TTL 2 s).
        await wait_for(lambda: not rs.leaders(), 2.5, "the leader to give up its term")
        await asyncio.to_thread(cluster.restart, 0)
        await wait_for(lambda: leader.mirror.connected and not leader.freshness.state.stale, 20, "etcd back")
        # etcd refreshes leases when it comes back: if our key survived, the term goes on;
        # if the lease ran out meanwhile, a new term (higher token) starts. Never two leaders.
        r, errors = None, []
        for _attempt in range(100):
            try:
                r = await switch(
                    rs.address(rs.replicas.index(leader)), "cme-orders", "backup", "after outage"
                )
                break
            except Exception as exc:
                errors.append(repr(exc)[:200])
                await asyncio.sleep(0.1)
        assert r is not None, (errors[-1:], _diag(rs))
        assert len(rs.leaders()) == 1
        now = rs.leaders()[0]
        assert now.leader.leadership is not None and now.leader.leadership.token > token
    finally:
        try:
            await rs.stop_all()
        finally:
            cluster.stop()


async def test_history_is_bounded_by_retention(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, history_retention=3)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        for i in range(6):
            await switch(rs.address(0), "cme-orders", "backup" if i % 2 == 0 else "primary")
        # Pruning follows each commit; the view can show 3 for a moment while the last
        # commit's entry is written and not yet pruned, so the store is what is checked.
        async with asyncio.timeout(5):
            while True:
                kvs, _ = await leader.store.get_prefix(leader.keys.history_prefix("cme-orders"))
                if len(kvs) <= 3:
                    break
                await asyncio.sleep(0.05)
        assert len(kvs) == 3
        await wait_for(
            lambda: len(leader.view.history_keys.get("cme-orders", ())) == 3, 5, "history pruned to 3"
        )
    finally:
        await rs.stop_all()


async def test_history_is_pruned_to_retention_when_the_view_lags_the_commits(etcd_cluster, prefix) -> None:
    """The prune reads the history keys from the view, which learns of a commit from the
    watch, after the commit's own answer: a prune started at once missed the newest entry
    and left one over retention until the next commit (seen in a CI-like run under load).
    Here every view update arrives 150 ms late."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, history_retention=3)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "initial decision")
        view = leader.view
        apply_now = view.apply
        loop = asyncio.get_running_loop()

        def apply_late(data: Any, changed: set[str], revision: int) -> None:
            loop.call_later(0.15, apply_now, data, set(changed), revision)

        view.apply = apply_late  # type: ignore[method-assign]
        last = 0
        for i in range(6):
            resp = await switch(rs.address(0), "cme-orders", "backup" if i % 2 == 0 else "primary")
            last = resp.decision.epoch.revision
        await wait_for(lambda: view.revision >= last, 5, "the view at the last commit")
        kvs: list[Any] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                while True:
                    kvs, _ = await leader.store.get_prefix(leader.keys.history_prefix("cme-orders"))
                    if len(kvs) <= 3:
                        break
                    await asyncio.sleep(0.05)
        assert len(kvs) == 3, f"{len(kvs)} history entries left with retention 3"
    finally:
        await rs.stop_all()


async def test_a_new_term_prunes_history_left_over_retention(etcd_cluster, prefix) -> None:
    """A term that ended between a commit and its prune (or a lowered retention) leaves
    history over the bound; the next term prunes it without waiting for a new commit."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, history_retention=10)
    await rs.start_all()
    try:
        await rs.wait_leader()
        for i in range(6):
            await switch(rs.address(0), "cme-orders", "backup" if i % 2 == 0 else "primary")
    finally:
        await rs.stop_all()
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1, history_retention=3)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(
            lambda: len(leader.view.history_keys.get("cme-orders", ())) == 3, 10, "history pruned to 3"
        )
    finally:
        await rs.stop_all()
