"""The agent owns every task it starts: none is left running once ``stop`` returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig

from failover.model.spec import GroupSpec, PathSpec
from failover.v1 import types_pb2 as pb
from failover.venue.faults import FaultKind
from failover.venue.server import Venue

from .conftest import poll_until

GROUP = "cme-orders"


def sidecar_tasks() -> list[asyncio.Task[object]]:
    """Unfinished tasks running sidecar code (agent, path sessions)."""
    out = []
    for t in asyncio.all_tasks():
        qualname = getattr(t.get_coro(), "__qualname__", "")
        if not t.done() and qualname.split(".")[0] in ("Agent", "PathSession"):
            out.append(t)
    return out


def make_agent(tmp_path: Path, venue: Venue, paths: dict[str, str] | None = None, **extra: object) -> Agent:
    """``paths``: path name -> gateway name (primary and backup to their own by default)."""
    gws = venue.gateway_addresses
    paths = paths or {"primary": "primary", "backup": "backup"}
    spec = GroupSpec(
        name=GROUP, paths=[PathSpec(name=p, endpoints={"default": gws[gw]}) for p, gw in paths.items()]
    )
    cfg = SidecarConfig(
        host_id="h1",
        groups=[GROUP],
        coordinators=["127.0.0.1:1"],
        state_file=str(tmp_path / "h1.state.json"),
        bootstrap=[spec],
        **extra,  # type: ignore[arg-type]
    )
    return Agent(cfg)


async def test_stop_waits_for_sessions_retired_by_a_new_definition(tmp_path: Path, venue: Venue) -> None:
    agent = make_agent(tmp_path, venue)
    await agent.start()
    await poll_until(lambda: all(s.can_send for s in agent.sessions.values()))
    # primary moves to another endpoint: its session is retired and replaced. The old gateway
    # stalls, so the retired session's logout waits (bounded) for an answer that never comes.
    await venue.inject_fault("primary", None, FaultKind.STALL)
    gdef = pb.GroupDefinition()
    gdef.CopyFrom(agent.definitions[GROUP])
    gdef.paths[0].endpoint = gdef.paths[1].endpoint
    agent.on_definition(gdef)
    await agent.stop()
    assert sidecar_tasks() == []


async def test_stop_is_idempotent_and_ends_warm_ups(tmp_path: Path, venue: Venue) -> None:
    agent = make_agent(tmp_path, venue, overrides={GROUP: {"warmth": {"backup": "connected"}}})
    await agent.start()
    await poll_until(lambda: all(s.is_up for s in agent.sessions.values()))
    # backup becomes the route: it logs on (a warm-up task), but its gateway no longer answers.
    await venue.inject_fault("backup", None, FaultKind.STALL)
    agent.on_decision(pb.Decision(group=GROUP, paths=["backup", "primary"], epoch=pb.Epoch(revision=1)), [])
    assert agent.routes[GROUP].effective == "backup"
    await asyncio.gather(agent.stop(), agent.stop())
    assert sidecar_tasks() == []
    await agent.stop()
