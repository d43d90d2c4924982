"""Stopping the sidecar is not a path failure: no flip, no route change on the way out.

Before, ``failover sidecar`` on SIGTERM logged out of each path in turn, and each
deliberate logout reached the route as a dead path: ``g1: primary -> backup (local)``,
then ``backup -> primary (local)`` (logged after "sidecar stopped"), counted as flips
in the metrics and pushed to every strategy watching the route.
"""

from __future__ import annotations

from pathlib import Path

from failover.v1 import types_pb2 as pb
from failover.venue.server import Venue

from .conftest import poll_until
from .test_agent_tasks import GROUP, make_agent


async def test_stop_flips_nothing_and_tells_no_watcher(tmp_path: Path, venue: Venue) -> None:
    agent = make_agent(tmp_path, venue)
    await agent.start()
    agent.on_decision(
        pb.Decision(group=GROUP, paths=["primary", "backup"], epoch=pb.Epoch(era=0, revision=1), reason="t"),
        [],
    )
    await poll_until(lambda: all(s.can_send for s in agent.sessions.values()))
    assert agent.routes[GROUP].effective == "primary"
    flips_before = len(agent.flips)
    seen: list[str] = []
    agent.route_listeners.append(seen.append)
    await agent.stop()
    assert len(agent.flips) == flips_before, [
        f"{f.from_path}->{f.to_path}" for f in list(agent.flips)[flips_before:]
    ]
    assert seen == [], "a watcher was told of a route change by the stop"
    assert agent.routes[GROUP].effective == "primary"
