"""Graceful stop of the leader: what happens between the SIGTERM and the next commit.

Real etcd, real gRPC. The stopping leader gives the role up as its first step and
writes nothing more: one revoke of its lease (no second one competing with the
followers' campaign), no request started after its stop began (it is handed to the
successor), and a switch commits through another replica well within a bound that
only a broken mechanism (a TTL wait, a backoff, a poll) would exceed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from failover.v1 import admin_pb2 as apb
from tests.harness import ReplicaSet, admin, switch, wait_for

pytestmark = [pytest.mark.cluster]
G = "cme-orders"
HOLD_REVOKE_S = 0.3
ATTEMPT_S = 0.25
BOUND_S = 1.0  # generous: the hand-over is a few etcd round trips; a lease TTL is 2 s here


async def test_a_graceful_stop_hands_over_within_a_bound(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=3)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        idx = rs.replicas.index(leader)
        other = next(i for i in range(3) if i != idx)
        request = apb.SwitchRequest(group=G, path="primary", reason="t", operator="t", force=True)
        async with admin(rs.address(other)) as stub:
            await switch(rs.address(other), G, "backup", force=True)
            started = time.monotonic()
            stop = asyncio.create_task(rs.stop(idx))
            async with asyncio.timeout(10):
                while True:
                    # Short attempts, retried at once, as a client of a failing-over service
                    # does: in this one-process harness a call made while another server of
                    # the same process shuts down was seen, rarely, to reach no handler.
                    try:
                        resp = await stub.Switch(request, timeout=ATTEMPT_S)
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                            raise
                        continue
                    if resp.decision.leader_id != leader.cfg.replica_id:
                        break
        took = time.monotonic() - started
        assert list(resp.decision.paths)[0] == "primary"
        assert took < BOUND_S, f"graceful stop -> a switch committed by another replica took {took:.3f}s"
        async with asyncio.timeout(10):
            await stop
    finally:
        await rs.stop_all()


async def test_a_stopping_leader_revokes_its_lease_once(etcd_cluster, prefix) -> None:
    """The resign revokes the lease; the term's unwinding does not revoke it again (a second
    etcd write at the moment the followers campaign)."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        idx = rs.replicas.index(leader)
        lease = leader.election.leadership.lease.id  # type: ignore[union-attr]
        revoked: list[int] = []
        real_revoke = leader.store.revoke

        async def counting(lease_id: int) -> None:
            revoked.append(lease_id)
            await real_revoke(lease_id)

        leader.store.revoke = counting  # type: ignore[method-assign]
        await rs.stop(idx)
        assert revoked.count(lease) == 1, f"lease {lease:x} revoked {revoked.count(lease)} times"
        await rs.wait_leader(not_id=leader.cfg.replica_id)
    finally:
        await rs.stop_all()


async def test_a_stopping_leader_starts_no_request_after_its_stop_began(etcd_cluster, prefix) -> None:
    """While its revoke is on its way (held here for 0.3 s), a switch sent to the stopping
    leader is not decided there (its lease is still valid, so a commit would succeed and race
    the revoke): it is passed to the successor, which commits it."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        # The seeded decision is committed just after the election: on a slow machine it
        # could start after the commit spy below is in place, and be counted as a late one.
        await wait_for(lambda: G in leader.view.routes, 10, "the seeded decision")
        idx = rs.replicas.index(leader)
        real_revoke = leader.store.revoke
        revoking = asyncio.Event()

        async def held(lease_id: int) -> Any:
            revoking.set()
            await asyncio.sleep(HOLD_REVOKE_S)  # the scenario: a slow revoke, not a synchronisation
            return await real_revoke(lease_id)

        committer = leader.leader._committer
        real_commit = committer.commit
        started_here: list[str] = []

        async def commit(*args: Any, **kwargs: Any) -> Any:
            started_here.append(str(args[1]))
            return await real_commit(*args, **kwargs)

        leader.store.revoke = held  # type: ignore[method-assign]
        committer.commit = commit  # type: ignore[method-assign]
        stop = asyncio.create_task(rs.stop(idx))
        async with asyncio.timeout(10):
            await revoking.wait()
        async with asyncio.timeout(10):
            resp = await switch(rs.address(idx), G, "backup", force=True)
        assert list(resp.decision.paths)[0] == "backup"
        assert started_here == [], f"the stopping leader started commits after its stop began: {started_here}"
        assert resp.decision.leader_id != leader.cfg.replica_id, "the stopping leader decided it"
        async with asyncio.timeout(10):
            await stop
    finally:
        await rs.stop_all()
