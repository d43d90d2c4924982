"""A path that slows down while it stays up reports its new round trip: the leader's
``slow_threshold_ms`` and `failover sidecars` read the RTT from the path's reports, which
came on state changes only, so a slower line kept its RTT from when it came up."""

from __future__ import annotations

from pathlib import Path

from failover_sidecar.status import PathState, PathStatus

from failover.venue.faults import FaultKind
from failover.venue.server import Venue

from .conftest import poll_until
from .test_agent_tasks import GROUP, make_agent


async def test_a_path_that_slows_while_up_reports_its_new_round_trip(tmp_path: Path, venue: Venue) -> None:
    agent = make_agent(tmp_path, venue)
    reports: list[PathStatus] = []
    real = agent._report

    def spy(g: str, st: PathStatus, span: object = None) -> None:
        if st.path == "backup":
            reports.append(st)
        real(g, st, span)  # type: ignore[arg-type]

    agent._report = spy  # type: ignore[method-assign]
    await agent.start()
    try:
        await poll_until(lambda: all(s.can_send for s in agent.sessions.values()))
        await venue.inject_fault("backup", None, FaultKind.SLOW, delay_ms=20)
        await poll_until(
            lambda: any(r.state is PathState.UP and (r.rtt_p99_us or 0) > 15_000 for r in reports), timeout=10
        )
        assert agent.routes[GROUP].health("backup") is True  # still up: only its round trip moved
        assert not any(r.state is PathState.DOWN for r in reports), reports  # no reconnect in between
    finally:
        await agent.stop()
