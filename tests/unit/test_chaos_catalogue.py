"""`failover chaos`'s fault catalogue: which faults may overlap, and a step that fails.

Pure: the catalogue is built on a stand-in cluster and no fault is run. What matters is
that a fault that needs a process's control service is never drawn while that process
is paused (a paused venue answers no fault control: the run stopped on a
DEADLINE_EXCEEDED with no context), and that a step that fails says which one it was.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import grpc
import pytest

from failover.chaos.run import Chaos, Fault, StepFailed, _step


def _catalogue(seed: int) -> list[Fault]:
    topo = SimpleNamespace(replicas=("c1", "c2", "c3"), hosts=("h1", "h2"))
    cluster = SimpleNamespace(topo=topo, etcd=SimpleNamespace(members=[0, 1, 2]))
    return Chaos(cluster, SimpleNamespace(), random.Random(seed)).catalogue()  # type: ignore[arg-type]


def _uses_venue_control(f: Fault) -> bool:
    return f.kind.startswith("path ")  # reset, stall, slow: the venue's own fault control


@pytest.mark.parametrize("seed", range(20))
def test_a_paused_venue_never_overlaps_a_fault_made_through_its_control(seed: int) -> None:
    faults = _catalogue(seed)
    (paused,) = [f for f in faults if f.kind == "venue SIGSTOP"]
    controlled = [f for f in faults if _uses_venue_control(f)]
    assert controlled
    for f in controlled:
        assert paused.holds & f.holds, f.kind


@pytest.mark.parametrize("seed", range(20))
def test_a_broken_line_may_overlap_the_venue_paused_or_faulted(seed: int) -> None:
    """The lines are a proxy outside the venue: they and the venue are separate resources."""
    faults = _catalogue(seed)
    lines = [f for f in faults if f.kind.startswith("line ")]
    assert {f.kind.split(" (")[0] for f in lines} == {
        "line cut",
        "line blackholed",
        "line replies dropped",
        "line orders dropped",
        "line slowed",
    }
    venue = [f for f in faults if f.kind == "venue SIGSTOP" or _uses_venue_control(f)]
    for line in lines:
        for v in venue:
            assert not line.holds & v.holds, (line.kind, v.kind)


class _Refused(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "late")


async def test_a_step_that_fails_names_the_step_and_the_status() -> None:
    async def fails() -> None:
        raise _Refused()

    with pytest.raises(
        StepFailed, match=r"^injecting path reset \(primary\) failed: DEADLINE_EXCEEDED: late$"
    ):
        await _step("injecting path reset (primary)", fails)
