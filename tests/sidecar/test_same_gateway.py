"""Two paths of one group that reach the same venue gateway (two lines to one gateway, or
one address given twice) each keep their own session: neither logon replaces the other."""

from __future__ import annotations

import asyncio
from pathlib import Path

from failover.venue.server import Venue

from .conftest import poll_until
from .test_agent_tasks import make_agent


async def test_two_paths_to_one_gateway_both_stay_logged_on(tmp_path: Path, venue: Venue) -> None:
    agent = make_agent(tmp_path, venue, paths={"a": "primary", "b": "primary"})
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
