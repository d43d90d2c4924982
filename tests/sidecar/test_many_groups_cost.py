"""A sidecar with many wide groups: its status and a new definition cost work in proportion
to the groups and paths, not their product. Before, each group's health scanned (and sorted)
every session of the host: 120 groups of 64 paths made `sidecar-status` take 1.5 s and stall
order flow, 480 groups more than a minute; applying a snapshot of 480 groups took seconds."""

from __future__ import annotations

import time
from pathlib import Path

from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig
from failover_sidecar.service import status

from failover.model.convert import group_pb
from failover.model.spec import GroupSpec, PathSpec

GROUPS, PATHS = 200, 64


def _agent(tmp_path: Path) -> Agent:
    names = [f"g{i:03d}" for i in range(GROUPS)]
    cfg = SidecarConfig(
        host_id="h1",
        groups=names,
        coordinators=["127.0.0.1:1"],
        state_file=str(tmp_path / "h1.state.json"),
        overrides={n: {"warmth": {f"p{j:02d}": "cold" for j in range(PATHS)}} for n in names},
    )
    return Agent(cfg)


def _spec(name: str) -> GroupSpec:
    return GroupSpec(
        name=name,
        paths=[
            PathSpec(name=f"p{j:02d}", endpoints={"default": f"127.0.0.1:{20000 + j}"}) for j in range(PATHS)
        ],
    )


async def test_status_and_definitions_of_many_wide_groups_stay_cheap(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    try:
        await _check(agent)
    finally:
        await agent.stop()


async def _check(agent: Agent) -> None:
    started = time.monotonic()
    for i in range(GROUPS):
        agent._apply_definition(group_pb(_spec(f"g{i:03d}"), 1, "default"))
    applied = time.monotonic() - started
    assert len(agent.sessions) == GROUPS * PATHS
    started = time.monotonic()
    st = status(agent, _NoOrders())  # type: ignore[arg-type]
    took = time.monotonic() - started
    assert sum(len(r.health) for r in st.routes) == GROUPS * PATHS
    # Generous bounds that catch the quadratic cost (seconds), not a timing target.
    assert applied < 2.0, f"{GROUPS} definitions took {applied:.2f} s"
    assert took < 1.0, f"status of {GROUPS} groups of {PATHS} paths took {took:.2f} s"


class _NoOrders:
    counters: dict[str, int] = {}
