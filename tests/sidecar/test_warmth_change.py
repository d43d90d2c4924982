"""A path's warmth changed by a new definition (`failover group put`) applies at once, as
an endpoint change does, in both directions."""

from __future__ import annotations

from pathlib import Path

from failover_sidecar.status import Warmth

from failover.v1 import types_pb2 as pb
from failover.venue.server import Venue

from .conftest import poll_until
from .test_agent_tasks import GROUP, make_agent


def _with_warmth(agent, path: str, warmth: int) -> pb.GroupDefinition:  # type: ignore[no-untyped-def]
    gdef = pb.GroupDefinition()
    gdef.CopyFrom(agent.definitions[GROUP])
    for p in gdef.paths:
        if p.name == path:
            p.warmth = warmth
    return gdef


async def test_a_cold_path_made_logged_on_logs_on_and_back(tmp_path: Path, venue: Venue) -> None:
    agent = make_agent(tmp_path, venue, overrides={})
    await agent.start()
    try:
        await poll_until(lambda: all(s.can_send for s in agent.sessions.values()))
        agent.on_definition(_with_warmth(agent, "backup", pb.WARMTH_COLD))
        await poll_until(lambda: agent.sessions[(GROUP, "backup")].warmth is Warmth.COLD)
        await poll_until(lambda: not agent.sessions[(GROUP, "backup")].is_up)
        agent.on_definition(_with_warmth(agent, "backup", pb.WARMTH_LOGGED_ON))
        await poll_until(lambda: agent.sessions[(GROUP, "backup")].can_send)
        assert agent.sessions[(GROUP, "backup")].warmth is Warmth.LOGGED_ON
        assert agent.sessions[(GROUP, "primary")].can_send  # the other path untouched
    finally:
        await agent.stop()
