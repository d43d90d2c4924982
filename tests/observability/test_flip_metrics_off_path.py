"""A flip's instruments are queued after the route change is announced, not before it.

``failover bench flip`` times a flip up to the moment the route listeners hear of it;
whatever the metrics do must come after that moment (and the first ack's is queued
after the ack was delivered). A real agent, fed decisions directly.
"""

from __future__ import annotations

from pathlib import Path

from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig
from failover_sidecar.metrics import SidecarMetrics
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from failover.model.convert import group_pb
from failover.model.spec import GroupSpec, PathSpec
from failover.telemetry import metrics as telemetry
from failover.v1 import types_pb2 as pb

G = "g"


async def test_flip_metrics_are_queued_after_the_route_listeners_ran(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    tel = telemetry.build("failover-sidecar", "h1", readers=[reader])
    sm = SidecarMetrics(tel.meter)
    cfg = SidecarConfig(
        host_id="h1", groups=[G], coordinators=["127.0.0.1:9"], state_file=str(tmp_path / "s.json")
    )
    agent = Agent(cfg, metrics=sm)
    pending_at_announce: list[int] = []
    agent.route_listeners.append(lambda g: pending_at_announce.append(len(sm._pending)))
    try:
        # Endpoints nobody listens on: the paths never come up, routes follow the decisions.
        spec = GroupSpec(
            name=G, paths=[PathSpec(name=p, endpoints={"default": "127.0.0.1:9"}) for p in ("a", "b")]
        )
        agent.on_definition(group_pb(spec, 1, "default"))
        pending_at_announce.clear()
        agent.on_decision(pb.Decision(group=G, paths=["a", "b"], epoch=pb.Epoch(revision=1)), [])
        agent.on_decision(pb.Decision(group=G, paths=["b", "a"], epoch=pb.Epoch(revision=2)), [])
        assert [f.to_path for f in agent.flip_log.entries] == ["a", "b"]
        assert pending_at_announce and pending_at_announce[0] == 0, pending_at_announce
        # Each flip's measurements were queued once its announcement was done.
        assert pending_at_announce[-1] == pending_at_announce[0] + 2  # the first flip's: count + flip
        assert len(sm._pending) == 4
    finally:
        await agent.stop()
        tel.shutdown()
