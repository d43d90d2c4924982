"""A failback the sidecar makes on its own (a hold-down ended: "recovered") is counted in
the flip metric, as every other flip is; it was listed and logged but not counted."""

from __future__ import annotations

from pathlib import Path

from failover.v1 import types_pb2 as pb
from failover.venue.faults import FaultKind
from failover.venue.server import Venue

from .conftest import poll_until
from .test_agent_tasks import GROUP, make_agent


class _Flips:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def flipped(self, group: str, trigger: str, cause: str | None, detect_us: int, flip_us: int) -> None:
        self.seen.append((trigger, cause))


async def test_a_local_failback_after_its_hold_down_is_counted(tmp_path: Path, venue: Venue) -> None:
    agent = make_agent(tmp_path, venue)
    flips = _Flips()
    agent.flip_log.metrics = flips  # type: ignore[assignment]
    await agent.start()
    try:
        await poll_until(lambda: all(s.can_send for s in agent.sessions.values()))
        decision = pb.Decision(group=GROUP, paths=["primary", "backup"], epoch=pb.Epoch(revision=1))
        agent.on_decision(decision, [])
        agent.routes[GROUP].hold_down_ms = 50
        await venue.inject_fault("primary", None, FaultKind.RESET)
        await poll_until(lambda: agent.routes[GROUP].effective == "backup")
        await venue.inject_fault("primary", None, FaultKind.RECOVER)
        await poll_until(lambda: agent.routes[GROUP].effective == "primary", timeout=10)
        assert ("local", "recovered") in flips.seen, flips.seen
    finally:
        await agent.stop()
