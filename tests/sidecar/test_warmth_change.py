"""A path's warmth changed by a new definition (`failover group put`) applies at once, as
an endpoint change does, in both directions."""

from __future__ import annotations

import asyncio
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


async def test_lowering_the_active_paths_warmth_keeps_its_session_and_reports_no_failure(
    tmp_path: Path, venue: Venue
) -> None:
    """Before, the session was replaced at once: the route flipped to the backup, and the
    retired session's logout reached the leader as the path's "down" (`primary down on 1
    of 1 reporting hosts: moving to backup`) though nothing failed. The path in use keeps
    its session; the lower warmth applies when that session next starts."""
    agent = make_agent(tmp_path, venue)
    reported: list[pb.PathHealth] = []
    agent.link.report = lambda rep: reported.extend(rep.paths)  # type: ignore[method-assign]
    await agent.start()
    try:
        await poll_until(lambda: all(s.can_send for s in agent.sessions.values()))
        decision = pb.Decision(group=GROUP, paths=["primary", "backup"], epoch=pb.Epoch(revision=1))
        agent.on_decision(decision, [])
        old = agent.sessions[(GROUP, "primary")]
        reported.clear()
        agent.on_definition(_with_warmth(agent, "primary", pb.WARMTH_CONNECTED))
        await asyncio.sleep(0.2)  # noqa: ASYNC110 - watching: nothing may change
        assert agent.sessions[(GROUP, "primary")] is old and old.can_send
        assert old.configured_warmth is Warmth.CONNECTED
        assert agent.routes[GROUP].effective == "primary"
        assert not [r for r in reported if r.path == "primary" and r.state == pb.PATH_STATE_DOWN], reported
        agent.on_definition(_with_warmth(agent, "primary", pb.WARMTH_LOGGED_ON))  # back: nothing to do
        assert agent.sessions[(GROUP, "primary")] is old
    finally:
        await agent.stop()


async def test_a_cold_path_is_reported_unknown_not_down(tmp_path: Path, venue: Venue) -> None:
    agent = make_agent(tmp_path, venue, overrides={GROUP: {"warmth": {"backup": "cold"}}})
    await agent.start()
    try:
        await poll_until(lambda: agent.sessions[(GROUP, "primary")].can_send)
        states = {ph.path: ph.state for ph in agent.full_health().paths}
        assert states == {"primary": pb.PATH_STATE_UP, "backup": pb.PATH_STATE_UNSPECIFIED}
    finally:
        await agent.stop()
