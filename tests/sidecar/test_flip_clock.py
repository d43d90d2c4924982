"""A flip carries the monotonic time it happened at, on the clock of the stage timings."""

from __future__ import annotations

import time
from pathlib import Path

from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig

from failover.model.spec import GroupSpec, PathSpec
from failover.procs import free_port
from failover.v1 import types_pb2 as pb

GROUP = "cme-orders"


async def test_flip_has_a_monotonic_ns_time_beside_the_wall_clock(tmp_path: Path) -> None:
    closed = [f"127.0.0.1:{free_port()}" for _ in range(2)]  # nothing listens: paths stay down
    spec = GroupSpec(
        name=GROUP,
        paths=[
            PathSpec(name=p, endpoints={"default": a})
            for p, a in zip(("primary", "backup"), closed, strict=True)
        ],
    )
    cfg = SidecarConfig(
        host_id="h1",
        groups=[GROUP],
        coordinators=["127.0.0.1:1"],
        state_file=str(tmp_path / "s.json"),
        bootstrap=[spec],
    )
    agent = Agent(cfg)
    await agent.start()
    try:
        before_ns, before_ms = time.monotonic_ns(), int(time.time() * 1000)
        decision = pb.Decision(group=GROUP, paths=["backup", "primary"], epoch=pb.Epoch(revision=5))
        agent.on_decision(decision, [])
        after_ns, after_ms = time.monotonic_ns(), int(time.time() * 1000)
        flip = agent.flips[-1]
        assert (flip.trigger, flip.to_path) == ("decision", "backup")
        assert before_ns <= flip.at_monotonic_ns <= after_ns
        assert before_ms - 1 <= flip.at_unix_ms <= after_ms + 1
    finally:
        await agent.stop()
