"""A follower whose peer channel to the leader is closed under a forwarded call still answers.

A replica replaces a peer channel that fails (`PeerChannels.warm`, after the replica at
that address stopped listening) and closes the old one, which cancels the calls still on
it. A Switch forwarded on that channel ended with the call's local cancel escaping the
handler: gRPC sends no status for it, and the operator waited for their own deadline
(seen in the control-plane benchmark as a 0.5 s wait in 1 of 8-20 graceful hand-overs).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from coordinator.replica import Replica
from tests.harness import ReplicaSet, switch, wait_for

pytestmark = pytest.mark.cluster

GROUP = "cme-orders"
HOLD_S = 0.6


def _hold_commits(leader: Replica, started: asyncio.Event) -> None:
    """The leader's commits take HOLD_S longer (without blocking the shared event loop)."""
    committer: Any = leader.leader._committer
    commit = committer.commit

    async def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        await asyncio.sleep(HOLD_S)
        return await commit(*args, **kwargs)

    committer.commit = held


async def test_a_forwarded_switch_is_answered_when_its_channel_is_closed_under_it(
    etcd_cluster, prefix
) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=3)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        i = next(k for k, r in enumerate(rs.replicas) if r is not None and r is not leader)
        follower = rs.replicas[i]
        assert follower is not None
        await wait_for(
            lambda: (
                follower.view.leader is not None and follower.view.leader.replica_id == leader.cfg.replica_id
            ),
            5,
            "the follower's view to name the leader",
        )
        lk = follower.view.leader
        assert lk is not None
        started = asyncio.Event()
        _hold_commits(leader, started)
        sent = time.monotonic()
        call = asyncio.create_task(switch(rs.address(i), GROUP, "backup"))  # deadline 10 s
        async with asyncio.timeout(5):
            await started.wait()  # the forwarded call is at the leader: in flight on the channel
        # What PeerChannels.warm does to a failed channel: a new one in its place, the old closed.
        peers = follower.peers
        old = peers._channels[lk.address]
        peers._channels[lk.address] = peers._new(lk.address)
        await old.close(None)
        async with asyncio.timeout(5):
            resp = await call
        took = time.monotonic() - sent
        assert list(resp.decision.paths)[0] == "backup"
        assert took < 3.0, f"answered after {took:.1f} s"
    finally:
        await rs.stop_all()
