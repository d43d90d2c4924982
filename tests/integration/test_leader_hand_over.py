"""A leader that stops gracefully hands the election key to a connected follower.

Real etcd, real gRPC. The hand-over is one fenced transaction that puts the election key
on the successor's lease: no delete, no campaign, and the old term's token no longer
fences anything. With no connected successor, the stopping leader revokes its lease and
the followers campaign, as before.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from coordinator.commit import fence
from coordinator.keys import Keys
from coordinator.store.etcd_store import EtcdStore
from coordinator.store.types import EventKind, Put, WatchBatch
from tests.harness import ReplicaSet, switch, wait_for

pytestmark = [pytest.mark.cluster]
G = "cme-orders"


async def _election_events(endpoints: list[str], keys: Keys, start: int, out: list[WatchBatch]) -> None:
    """The election key's changes from ``start`` on, through a client of the test's own."""
    store = EtcdStore(endpoints, rpc_timeout_s=2.0)
    try:
        async with store.watch(keys.leader, start) as w:
            async for batch in w:
                out.append(batch)
    finally:
        await store.close()


async def _first_event(events: list[WatchBatch], timeout: float = 10.0) -> tuple[EventKind, int, int, str]:
    """(kind, mod revision, lease, holder id) of the first change of the election key."""
    await wait_for(lambda: any(b.events for b in events), timeout, "a change of the election key")
    ev = next(e for b in events for e in b.events)
    holder = "" if ev.kind is EventKind.DELETE else ev.kv.value.decode()
    return ev.kind, ev.kv.mod_revision, ev.kv.lease, holder


async def test_a_stopping_leader_hands_the_key_to_a_connected_follower_in_one_write(
    etcd_cluster, prefix
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=3)
    await rs.start_all()
    events: list[WatchBatch] = []
    watcher: asyncio.Task[None] | None = None
    try:
        leader = await rs.wait_leader()
        idx = rs.replicas.index(leader)
        old = leader.election.leadership
        assert old is not None
        await wait_for(lambda: len(leader.election.successors()) == 2, 10, "both followers as successors")
        keys = leader.keys
        start = old.token + 1  # the key's last write was its campaign
        watcher = asyncio.create_task(_election_events(etcd_cluster.endpoints, keys, start, events))
        await rs.stop(idx)
        kind, token, lease, holder = await _first_event(events)
        assert kind is EventKind.PUT, "the key was deleted: no hand-over"
        successor = next(r for r in rs.running() if r.cfg.replica_id in holder)
        await wait_for(lambda: successor.election.is_leader, 10, "the successor's term")
        term = successor.election.leadership
        assert term is not None and term.token == token and term.lease.id == lease
        # The old term is fenced out from the hand-over's revision on.
        refused = await successor.store.txn([fence(keys, old)], [Put(keys.prefix + "probe", b"x")])
        assert not refused.succeeded
        resp = await switch(rs.address(rs.replicas.index(successor)), G, "backup", force=True)
        assert resp.decision.leader_id == successor.cfg.replica_id
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        await rs.stop_all()


async def test_with_no_connected_successor_the_key_is_revoked_and_a_follower_campaigns(
    etcd_cluster, prefix
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    events: list[WatchBatch] = []
    watcher: asyncio.Task[None] | None = None
    try:
        leader = await rs.wait_leader()
        idx = rs.replicas.index(leader)
        leader.election._successor_ok = lambda _c: False  # e.g. its peer channel is down
        keys = leader.keys
        term = leader.election.leadership
        assert term is not None
        start = term.token + 1  # the key's last write was its campaign
        watcher = asyncio.create_task(_election_events(etcd_cluster.endpoints, keys, start, events))
        await rs.stop(idx)
        kind, _token, _lease, _holder = await _first_event(events)
        assert kind is EventKind.DELETE
        follower = await rs.wait_leader(not_id=leader.cfg.replica_id)
        assert follower.election.leadership is not None
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        await rs.stop_all()
