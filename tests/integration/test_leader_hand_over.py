"""A leader that stops gracefully hands the election key to a connected follower.

Real etcd, real gRPC. The hand-over is one fenced transaction that puts the election key
on the successor's lease: no delete, no campaign, and the old term's token no longer
fences anything. With no connected successor, the stopping leader revokes its lease and
the followers campaign, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from coordinator import election as election_module
from coordinator.commit import Leadership, fence
from coordinator.replica import SERVICES, Replica
from coordinator.store.etcd_store import EtcdStore
from coordinator.store.types import EventKind, Put, WatchBatch
from coordinator.view import Candidate
from failover import rpc
from tests.harness import ReplicaSet, switch, wait_for

pytestmark = [pytest.mark.cluster]
G = "cme-orders"


@contextlib.asynccontextmanager
async def _stopping_the_leader(
    endpoints: list[str], prefix: str, n: int, setup: Callable[[ReplicaSet, Replica], Awaitable[None]]
) -> AsyncIterator[tuple[ReplicaSet, Replica, Leadership, tuple[EventKind, int, int, str]]]:
    """n replicas; ``setup`` the leader, stop it; yields the set, the stopped leader, its last
    term and the election key's first change after its campaign: (kind, mod revision,
    lease, value)."""
    rs = ReplicaSet(endpoints, prefix, n=n)
    await rs.start_all()
    events: list[WatchBatch] = []
    watcher: asyncio.Task[None] | None = None
    try:
        leader = await rs.wait_leader()
        term = leader.election.leadership
        assert term is not None
        await setup(rs, leader)
        # From the revision after the key's last write (its campaign), through our own client.
        watcher = asyncio.create_task(_watch(endpoints, leader.keys.leader, term.token + 1, events))
        await rs.stop(rs.replicas.index(leader))
        await wait_for(lambda: any(b.events for b in events), 10, "a change of the election key")
        ev = next(e for b in events for e in b.events)
        value = "" if ev.kind is EventKind.DELETE else ev.kv.value.decode()
        yield rs, leader, term, (ev.kind, ev.kv.mod_revision, ev.kv.lease, value)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        await rs.stop_all()


async def _watch(endpoints: list[str], key: str, start: int, out: list[WatchBatch]) -> None:
    store = EtcdStore(endpoints, rpc_timeout_s=2.0)
    try:
        async with store.watch(key, start) as w:
            async for batch in w:
                out.append(batch)
    finally:
        await store.close()


async def _stopping(follower: Replica) -> None:
    """As a replica that began to stop: it says so when asked to prepare (and, for a leader
    of an earlier version asking its health check instead, NOT_SERVING)."""
    follower.handing_over = True
    await rpc.mark_serving(follower.health_service, SERVICES, False)


async def _followers_as_successors(rs: ReplicaSet, leader: Replica) -> list[Replica]:
    followers = [r for r in rs.running() if r is not leader]
    n = len(followers)
    await wait_for(lambda: len(leader.election.successors()) == n, 10, f"{n} followers as successors")
    return followers


async def test_a_stopping_leader_hands_the_key_to_a_connected_follower_in_one_write(
    etcd_cluster, prefix
) -> None:
    async def connected(rs: ReplicaSet, leader: Replica) -> None:
        await _followers_as_successors(rs, leader)

    async with _stopping_the_leader(etcd_cluster.endpoints, prefix, 3, connected) as (rs, old, term, first):
        kind, token, lease, holder = first
        assert kind is EventKind.PUT, "the key was deleted: no hand-over"
        successor = next(r for r in rs.running() if r.cfg.replica_id in holder)
        await wait_for(lambda: successor.election.is_leader, 10, "the successor's term")
        new = successor.election.leadership
        assert new is not None and new.token == token and new.lease.id == lease
        # The old term is fenced out from the hand-over's revision on.
        keys = old.keys
        refused = await successor.store.txn([fence(keys, term)], [Put(keys.prefix + "probe", b"x")])
        assert not refused.succeeded
        resp = await switch(rs.address(rs.replicas.index(successor)), G, "backup", force=True)
        assert resp.decision.leader_id == successor.cfg.replica_id


async def test_a_stopping_leader_decides_until_it_hands_over(etcd_cluster, prefix, monkeypatch) -> None:
    """A Switch that reaches the leader while it picks its successor is committed in its
    own term: it has no leadership gap to wait out, and the key is handed over after
    that commit (the successor's term starts later, its view holds the decision)."""
    monkeypatch.setattr(election_module, "ANSWER_S", 10.0)  # the window below is ours to end
    asked, release = asyncio.Event(), asyncio.Event()
    outcome: list[object] = []
    tasks: list[asyncio.Future[None]] = []

    async def switch_while_choosing(rs: ReplicaSet, leader: Replica) -> None:
        await _followers_as_successors(rs, leader)
        real = leader.election._answers
        assert real is not None

        async def held(cand: Candidate) -> bool:
            asked.set()
            await release.wait()
            return await real(cand)

        leader.election._answers = held
        address = rs.address(rs.replicas.index(leader))

        async def switch_then_release() -> None:
            await asked.wait()
            call = asyncio.ensure_future(switch(address, G, "backup", force=True))
            try:
                outcome.append(await asyncio.wait_for(asyncio.shield(call), 5))
            except TimeoutError:
                outcome.append("no answer while the leader chose its successor")
            finally:
                release.set()
                with contextlib.suppress(Exception):
                    await call

        tasks.append(asyncio.ensure_future(switch_then_release()))

    async with _stopping_the_leader(etcd_cluster.endpoints, prefix, 3, switch_while_choosing) as (
        rs,
        old,
        term,
        first,
    ):
        kind, token, _lease, holder = first
        (resp,) = outcome
        assert not isinstance(resp, str), resp
        assert resp.decision.leader_id == old.cfg.replica_id
        assert resp.decision.fencing_token == term.token
        assert kind is EventKind.PUT, "the key was deleted: no hand-over"
        assert token > resp.decision.epoch.revision, "handed over before its commit"
        successor = next(r for r in rs.running() if r.cfg.replica_id in holder)
        # Our own watcher may see the hand-over before the successor's view does: its term
        # starts when its view shows the key on its lease, and from then on holds the commit.
        await wait_for(lambda: successor.election.is_leader, 10, "the successor's term")
        route = successor.view.routes.get(G)
        assert route is not None and route.epoch.revision >= resp.decision.epoch.revision


async def test_the_key_goes_to_the_follower_that_says_it_serves(etcd_cluster, prefix) -> None:
    """A follower that does not say it serves (a stopping one says so, a paused one does not
    answer) keeps a connected channel, but the key goes to the other follower."""
    not_serving: list[str] = []

    async def one_not_serving(rs: ReplicaSet, leader: Replica) -> None:
        follower = (await _followers_as_successors(rs, leader))[0]
        await _stopping(follower)
        not_serving.append(follower.cfg.replica_id)

    async with _stopping_the_leader(etcd_cluster.endpoints, prefix, 3, one_not_serving) as (
        rs,
        old,
        _t,
        first,
    ):
        kind, _token, _lease, holder = first
        assert kind is EventKind.PUT, "the key was deleted: no hand-over"
        other = next(r.cfg.replica_id for r in rs.running() if r.cfg.replica_id not in not_serving)
        assert f'"{other}"' in holder, holder


async def test_with_no_follower_that_serves_the_key_is_revoked_and_a_follower_campaigns(
    etcd_cluster, prefix
) -> None:
    async def none_serving(rs: ReplicaSet, leader: Replica) -> None:
        (follower,) = await _followers_as_successors(rs, leader)
        await _stopping(follower)

    async with _stopping_the_leader(etcd_cluster.endpoints, prefix, 2, none_serving) as (rs, old, _t, first):
        assert first[0] is EventKind.DELETE
        follower = await rs.wait_leader(not_id=old.cfg.replica_id)
        assert follower.election.leadership is not None


async def test_a_candidate_without_prepare_to_lead_is_asked_its_health_check(etcd_cluster, prefix) -> None:
    """A replica of an earlier version (no Peer.PrepareToLead: UNIMPLEMENTED) is still a
    successor when its gRPC health check says SERVING, and not when it says NOT_SERVING."""
    old_version = rpc.make_server()
    health = rpc.add_health_and_reflection(old_version, SERVICES)
    port = old_version.add_insecure_port("127.0.0.1:0")
    await old_version.start()
    await rpc.mark_serving(health, SERVICES, True)
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    try:
        await rs.start_all()
        leader = await rs.wait_leader()
        cand = Candidate(replica_id="c9", address=f"127.0.0.1:{port}", lease=1, mod_revision=1)
        assert await leader._serves(cand)
        await rpc.mark_serving(health, SERVICES, False)
        assert not await leader._serves(cand)
    finally:
        await rs.stop_all()
        await old_version.stop(None)
