"""A logon has its own deadline: a slow logon answer is not silence on an established session."""

from __future__ import annotations

import pytest
from failover_sidecar.config import DataPlaneSection
from failover_sidecar.status import Cause, PathState

from failover.venue.faults import FaultKind
from failover.venue.server import Venue

from .conftest import MakeSession


async def test_a_logon_slower_than_the_silence_budget_still_gets_a_warm_path(
    venue: Venue, make_session: MakeSession
) -> None:
    """5 ms heartbeats (15 ms silence budget) and a venue taking 31 ms to answer the logon: the
    path logs on. (UP comes at the first heartbeat echo after the logon, which is answered at
    once: the venue is slow only until it has read the logon.)"""
    await venue.inject_fault("backup", None, FaultKind.SLOW, delay_ms=31)
    backup, rec = await make_session("backup", heartbeat_interval_ms=5, silent_after=3)
    await venue.wait_until(lambda snap: any(g.name == "backup" and g.logons >= 1 for g in snap.gateways))
    await venue.inject_fault("backup", None, FaultKind.RECOVER)  # the logon's answer is already 31 ms late
    up = await rec.next_status(PathState.UP)
    assert up.session, up
    assert rec.downs() == []


async def test_no_answer_to_a_logon_fails_after_the_logon_timeout(
    venue: Venue, make_session: MakeSession
) -> None:
    await venue.inject_fault("backup", None, FaultKind.STALL)
    _, rec = await make_session("backup", heartbeat_interval_ms=5, silent_after=3, logon_timeout_ms=200)
    down = await rec.next_status(PathState.DOWN, Cause.SILENT)
    assert "no answer to logon" in down.detail, down
    assert 200 <= int(down.detail.split(" for ")[1].split(" ms")[0]) < 2000, down.detail


def test_logon_timeout_default_is_well_above_the_silence_budget() -> None:
    dp = DataPlaneSection()
    assert dp.logon_timeout_ms >= 5 * dp.heartbeat_interval_ms * dp.silent_after_intervals
    with pytest.raises(ValueError, match="logon_timeout_ms"):
        DataPlaneSection(logon_timeout_ms=0)
