"""What a sidecar parses from a coordinator, fuzzed (issue 15, item 4).

Definitions and decisions with arbitrary names, path lists, epochs, enum values
and endpoints reach a running Agent as the stream would hand them over. The
agent must take each without raising, stay within a bounded time, and keep
only the groups its config lists. Endpoints are loopback or malformed only (the
agent dials what it is given).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from failover_sidecar import state_file
from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from failover.model.spec import GroupSpec, PathSpec
from failover.v1 import types_pb2 as pb

G = "cme-orders"
ENDPOINTS = ["127.0.0.1:1", "", "bad", "127.0.0.1:99999", "[::1", ":", "127.0.0.1:-1"]

_names = st.sampled_from([G, "other", "", "primary", "backup", "x" * 100, "Bad Name", "p\x00"])
_paths = st.builds(
    pb.Path,
    name=_names,
    transport=st.sampled_from(["sim", "", "quic"]),
    endpoint=st.sampled_from(ENDPOINTS),
    warmth=st.integers(-2, 9),
    endpoints=st.dictionaries(st.sampled_from(["default", "ny", ""]), st.sampled_from(ENDPOINTS), max_size=2),
)
_defs = st.builds(
    pb.GroupDefinition,
    name=_names,
    paths=st.lists(_paths, max_size=4),
    policy=st.builds(
        pb.GroupPolicy,
        local_failover=st.booleans(),
        failback_hold_down_ms=st.integers(0, 2**32 - 1),
    ),
    mod_revision=st.integers(-(2**63), 2**63 - 1),
)
_decisions = st.builds(
    pb.Decision,
    group=_names,
    paths=st.lists(_names, max_size=4),
    epoch=st.builds(pb.Epoch, era=st.integers(0, 2**64 - 1), revision=st.integers(-(2**63), 2**63 - 1)),
    reason=st.text(max_size=30),
)
_events = st.lists(st.one_of(_defs, _decisions), max_size=8)


def _agent(tmp: Path) -> Agent:
    spec = GroupSpec(name=G, paths=[PathSpec(name="primary", endpoints={"default": "127.0.0.1:1"})])
    cfg = SidecarConfig(
        host_id="h1",
        groups=[G],
        coordinators=["127.0.0.1:1"],
        state_file=str(tmp / "s.json"),
        bootstrap=[spec],
    )
    return Agent(cfg)


async def _run(tmp: Path, events: list[pb.GroupDefinition | pb.Decision]) -> Agent:
    agent = _agent(tmp)
    await agent.start()
    try:
        for ev in events:
            if isinstance(ev, pb.GroupDefinition):
                agent.on_definition(ev)
            else:
                agent.on_decision(ev, [])
            await asyncio.sleep(0)
    finally:
        await asyncio.wait_for(agent.stop(), 10)
    return agent


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_events)
# Found by this test: a definition whose endpoint port is out of range raised ValueError
# out of on_definition (the stream's reader), instead of that path being skipped.
@example(
    [pb.GroupDefinition(name=G, paths=[pb.Path(name="primary", transport="sim", endpoint="127.0.0.1:99999")])]
)
# Found by this test when run unseeded: a decision listing a path twice raised ValueError
# out of on_decision (the stream's reader) after the agent had already stored it.
@example([pb.Decision(group=G, paths=["other", "", ""], epoch=pb.Epoch(era=1, revision=1))])
# Found by this test when run unseeded: a definition listing a path twice was taken and
# saved, and the next start refused the sidecar's own state file (exit 2).
@example([pb.GroupDefinition(name=G, paths=[pb.Path(name="b", endpoint=""), pb.Path(name="b", endpoint="")])])
# Found by this test once the state file refused epochs no replica accepts: a decision at a
# negative revision was applied and saved, and the next start refused the state file.
@example([pb.Decision(group=G, paths=["primary"], epoch=pb.Epoch(era=0, revision=-5))])
def test_agent_takes_any_definition_or_decision(
    tmp_path: Path, events: list[pb.GroupDefinition | pb.Decision]
) -> None:
    start = time.monotonic()
    agent = asyncio.run(_run(tmp_path, events))
    assert set(agent.decisions) <= {G} and set(agent.definitions) <= {G}
    for d in agent.decisions.values():  # only what could be applied is held
        assert len(set(d.paths)) == len(d.paths), d
    state_file.load(tmp_path / "s.json")  # what it saved, a restart reads back
    assert time.monotonic() - start < 15


def test_a_decision_listing_a_path_twice_is_refused_and_the_route_kept(tmp_path: Path) -> None:
    good = pb.Decision(group=G, paths=["primary"], epoch=pb.Epoch(era=1, revision=5))
    bad = pb.Decision(group=G, paths=["backup", "backup"], epoch=pb.Epoch(era=1, revision=9))
    held: list[tuple[int, int]] = []

    async def run() -> Agent:
        agent = _agent(tmp_path)
        await agent.start()
        try:
            held.append(agent.on_decision(good, []))
            held.append(agent.on_decision(bad, []))  # acked as the epoch still held
        finally:
            await asyncio.wait_for(agent.stop(), 10)
        return agent

    agent = asyncio.run(run())
    assert held == [(1, 5), (1, 5)]
    assert agent.decisions[G] == good
    assert agent.routes[G].paths == ("primary",)


def test_a_definition_listing_a_path_twice_is_refused_and_the_last_one_kept(tmp_path: Path) -> None:
    good = pb.GroupDefinition(name=G, paths=[pb.Path(name="primary", endpoint="127.0.0.1:3")])
    bad = pb.GroupDefinition(
        name=G,
        paths=[
            pb.Path(name="primary", endpoint="127.0.0.1:1"),
            pb.Path(name="primary", endpoint="127.0.0.1:2"),
        ],
    )

    async def run() -> Agent:
        agent = _agent(tmp_path)
        await agent.start()
        try:
            agent.on_definition(good)
            agent.on_definition(bad)
            assert agent.definitions[G] == good
        finally:
            await asyncio.wait_for(agent.stop(), 10)
        return agent

    asyncio.run(run())
    assert state_file.load(tmp_path / "s.json").definitions[G] == good  # the next start reads it
