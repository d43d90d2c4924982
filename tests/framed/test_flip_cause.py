"""A flip away from a dead path names that path's failure, whatever brought the route back.

Found from outside: with both lines flapping, the route on the backup (the decision's
first), the backup reset, and nothing healthy, the route stayed; when the primary came
back 7 ms later the route moved `backup -> primary (local)` with an empty `cause`,
though docs/api.md says a local flip's cause is "the failure cause of from_path, or
recovered".
"""

from __future__ import annotations

import pytest

from failover.v1 import types_pb2 as pb
from failover.venue.faults import FaultKind
from tests.sidecar_integration.harness import GROUP

from .conftest import FramedRig, poll


@pytest.mark.parametrize(
    "rig", [{"data_plane": {"reconnect_min_ms": 20, "reconnect_max_ms": 50}}], indirect=True
)
async def test_a_flip_off_a_dead_path_that_the_other_path_coming_up_caused_names_the_failure(
    rig: FramedRig,
) -> None:
    agent = rig.app.agent
    agent.on_decision(
        pb.Decision(group=GROUP, paths=["backup", "primary"], epoch=pb.Epoch(era=0, revision=2), reason="op"),
        [],
    )
    await poll(lambda: agent.routes[GROUP].effective == "backup", "the route on backup")
    await rig.venue.inject_fault("primary", None, FaultKind.RESET)
    await poll(lambda: agent.routes[GROUP].health("primary") is False, "primary down")
    await rig.venue.inject_fault("backup", None, FaultKind.RESET)
    await poll(lambda: agent.routes[GROUP].health("backup") is False, "backup down")
    assert agent.routes[GROUP].effective == "backup"  # nothing healthy: the decision's first
    await rig.venue.inject_fault("primary", None, FaultKind.RECOVER)
    await poll(lambda: agent.routes[GROUP].effective == "primary", "the route on primary")
    flip = agent.flip_log.entries[-1]
    assert (flip.from_path, flip.to_path, flip.trigger) == ("backup", "primary", "local"), flip
    assert flip.cause in ("reset", "refused"), flip  # its reset, or its reconnect refused since
