"""Two paths of one group that reach the same venue gateway (two lines to one gateway, or
one address given twice) each keep their own session: neither logon replaces the other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig

from failover.model.spec import GroupSpec, PathSpec
from failover.venue.server import Venue

from .conftest import poll_until

GROUP = "cme-orders"


async def test_two_paths_to_one_gateway_both_stay_logged_on(tmp_path: Path, venue: Venue) -> None:
    gw = venue.gateway_addresses["primary"]
    spec = GroupSpec(name=GROUP, paths=[PathSpec(name=p, endpoints={"default": gw}) for p in ("a", "b")])
    cfg = SidecarConfig(
        host_id="h1",
        groups=[GROUP],
        coordinators=["127.0.0.1:1"],
        state_file=str(tmp_path / "h1.state.json"),
        bootstrap=[spec],
    )
    agent = Agent(cfg)
    await agent.start()
    try:
        await poll_until(lambda: all(s.can_send for s in agent.sessions.values()))
        sessions = dict(agent.sessions)
        # Watched for a second: before the fix each logon replaced the other's session
        # about 20 times a second, so neither stayed up for long.
        end = asyncio.get_running_loop().time() + 1.0
        while asyncio.get_running_loop().time() < end:
            assert all(s.can_send for s in sessions.values()), "a path went down"
            await asyncio.sleep(0.01)
        assert agent.sessions == sessions  # the same sessions throughout
    finally:
        await agent.stop()
