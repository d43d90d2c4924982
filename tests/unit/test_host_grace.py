"""The leader's health table forgets a host whose streams ended once host_grace_s passes."""

from __future__ import annotations

import asyncio

from coordinator.config import HealthSection
from coordinator.keys import Keys
from coordinator.leader_health import LeaderHealth
from coordinator.peers import PeerChannels
from coordinator.view import ClusterView
from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb
from tests.unit.test_prepared_health import G, _own_state


async def test_a_host_gone_is_forgotten_after_its_grace_with_no_other_change() -> None:
    """The leader's table forgets a host whose stream ended once host_grace_s passes, also
    when nothing else happens (the forgetting ran only when some report woke the policy)."""
    passes: list[int] = []
    health = LeaderHealth(
        replica_id="c2",
        settings=HealthSection(host_grace_s=0.05),
        view=ClusterView(Keys("/t/")),
        peers=PeerChannels(),
        local_state=_own_state,
        wake=lambda: passes.append(len(health.propose())),
        outage_since=lambda: 0.0,
    )
    health.ready = True
    host = apb.HostHealth(host_id="h1", full=True, gone=True, state_seq=2)
    host.paths.append(pb.PathHealth(group=G, path="backup", state=pb.PATH_STATE_UP))
    health.accept(apb.HealthForward(replica_id="c2", hosts=[host]))
    assert "h1" in health.table.hosts
    timer = asyncio.create_task(health.run())
    try:
        async with asyncio.timeout(5):
            while "h1" in health.table.hosts:  # noqa: ASYNC110 - the timer's own pass forgets it
                await asyncio.sleep(0.01)
    finally:
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)
