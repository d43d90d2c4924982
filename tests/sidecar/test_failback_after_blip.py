"""A path in use that goes down and comes back at once: the host waits out the hold-down
on the next path, then returns by itself (its own timer, no other event needed).

The chaos soak once flagged this as "uses backup while primary, above it, healthy for 10 s":
the observer never saw the primary down between two polls. This test drives a real
agent against the venue simulator through the same sequence and shows what its status
says meanwhile: primary UP (a new session: its health ``seq`` moved), backup in use,
"in hold-down", until the hold-down ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from failover_sidecar.agent import Agent

from failover.v1 import sidecar_pb2 as spb
from failover.v1 import types_pb2 as pb
from failover.venue.faults import FaultKind
from failover.venue.server import Venue

from .test_agent_tasks import GROUP, make_agent

BOUND_S = 10.0  # generous: catches a hold-down that never ends, not a slow one


async def route_until(agent: Agent, pred: Callable[[spb.Route], bool], what: str) -> spb.Route:
    """Await a route change (or a path state: both call the route listeners) satisfying ``pred``."""
    changed = asyncio.Event()
    agent.route_listeners.append(lambda _g: changed.set())
    try:
        async with asyncio.timeout(BOUND_S):
            while not pred(r := agent.route(GROUP)):
                changed.clear()
                await changed.wait()
        return r
    except TimeoutError:
        raise AssertionError(f"no {what} within {BOUND_S}s: {agent.route(GROUP)}") from None
    finally:
        agent.route_listeners.pop()


def health(r: spb.Route, path: str) -> pb.PathHealth:
    return next(h for h in r.health if h.path == path)


@pytest.mark.parametrize("fault", [FaultKind.RESET, FaultKind.STALL])
async def test_primary_blip_holds_down_on_backup_then_fails_back_alone(
    tmp_path: Path, venue: Venue, fault: FaultKind
) -> None:
    agent = make_agent(tmp_path, venue)
    await agent.start()
    try:
        agent.on_decision(
            pb.Decision(group=GROUP, paths=["primary", "backup"], epoch=pb.Epoch(era=1, revision=5)), []
        )
        hold_ms = agent.routes[GROUP].hold_down_ms
        assert hold_ms > 0

        def on_primary_all_up(r: spb.Route) -> bool:
            return r.effective_path == "primary" and all(h.state == pb.PATH_STATE_UP for h in r.health)

        before = await route_until(agent, on_primary_all_up, "start on primary, both paths up")
        seq0 = health(before, "primary").seq

        await venue.inject_fault("primary", None, fault)
        await route_until(agent, lambda r: r.effective_path == "backup", "move to backup")
        await venue.inject_fault("primary", None, FaultKind.RECOVER)

        # Primary logged on again: what a poll sees now is primary UP, above the path in use.
        held = await route_until(
            agent, lambda r: health(r, "primary").state == pb.PATH_STATE_UP, "primary up again"
        )
        assert held.effective_path == "backup" and list(held.decision_paths)[0] == "primary", held
        assert "in hold-down" in held.reason, held
        assert health(held, "primary").seq > seq0 + 1, "a down-up shows in the health seq"
        flips_before = len(agent.flips)

        # Nothing else happens: the hold-down's own timer brings the host back.
        back = await route_until(
            agent, lambda r: r.effective_path == "primary", "failback after the hold-down"
        )
        assert back.decision_paths[0] == "primary" and health(back, "primary").state == pb.PATH_STATE_UP
        last = agent.flips[-1]
        assert len(agent.flips) == flips_before + 1, list(agent.flips)
        assert (last.from_path, last.to_path, last.trigger, last.cause) == (
            "backup",
            "primary",
            "local",
            "recovered",
        ), last
    finally:
        await agent.stop()
