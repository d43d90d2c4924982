"""ResolveInDoubt asks the venue over any live path of the group, also while it is halted.

A halt (a decision with no paths) stops trading, not the paths: they stay logged on.
It is when an operator halts a group, mid-incident, that strategies most need to learn
what became of their in-doubt orders; on the code before, the sidecar asked only over
the effective path, which a halt leaves empty, and answered "no usable path to ask the
venue". A venue and a sidecar agent with its order path in this process, real sockets.
"""

from __future__ import annotations

from pathlib import Path

from failover.bench.flip.rig import GROUP, STRATEGY, FlipRig
from failover.v1 import sidecar_pb2 as spb
from failover.venue.faults import FaultKind


def _record_in_doubt(rig: FlipRig) -> list[int]:
    """The ids of the messages delivered IN_DOUBT, as they come."""
    in_doubt: list[int] = []
    sink = rig.orders.sinks[STRATEGY]

    def record(ev: spb.RelayEvent) -> None:
        if ev.outcome.kind == spb.OUTCOME_KIND_IN_DOUBT:
            in_doubt.append(ev.outcome.client_msg_id)
        sink(ev)

    rig.orders.sinks[STRATEGY] = record
    return in_doubt


def _assert_final(answers: list[spb.Resolution]) -> None:
    final = (spb.RESOLVE_STATE_ACKED, spb.RESOLVE_STATE_UNKNOWN_TO_VENUE)
    for a in answers:
        assert a.state in final, (a.client_msg_id, spb.ResolveState.Name(a.state), a.detail)


async def test_in_doubt_orders_are_resolved_with_the_venue_while_the_group_is_halted(tmp_path: Path) -> None:
    rig = await FlipRig.create(50, tmp_path)
    try:
        in_doubt = _record_in_doubt(rig)
        # A stall leaves the orders written to the primary in doubt: the venue never read them.
        for _ in range(3):
            await rig.one_run("stall")
            if in_doubt:
                break
        assert in_doubt, "no order was in flight when the primary stalled, in 3 runs"
        await rig.until(rig.both_up, "both paths logged on again")
        rig.decide([])  # halt
        assert rig.effective is None
        answers = await rig.orders.resolve(STRATEGY, GROUP, in_doubt, timeout_s=2.0)
        _assert_final(answers)  # the venue was asked: the line that carried them is back
    finally:
        await rig.stop()


async def test_unknown_to_the_venue_is_not_final_while_the_line_that_carried_it_is_stalled(
    tmp_path: Path,
) -> None:
    """Bytes the stalled line still holds (in the venue's socket buffer, or a proxy's) reach
    the venue once it reads again, even though the sidecar aborted its end: "unknown to the
    venue" is final only once that line carries a new session. On the code before, these
    orders were answered UNKNOWN_TO_VENUE ("never received: safe to send again under a new
    id") during the stall, and the venue booked them when the stall ended."""
    rig = await FlipRig.create(50, tmp_path)
    try:
        in_doubt = _record_in_doubt(rig)
        await rig.until(lambda: rig.effective == "primary" and rig.both_up(), "both paths up")
        # Orders the primary's gateway receives but never reads: 3 written while it is stalled.
        await rig.venue.inject_fault("primary", None, FaultKind.STALL)
        for _ in range(3):
            rig.submit()
        await rig.until(lambda: len(in_doubt) == 3, "3 orders in doubt after the stall")
        during = await rig.orders.resolve(STRATEGY, GROUP, in_doubt, timeout_s=2.0)
        for a in during:
            assert a.state == spb.RESOLVE_STATE_STILL_IN_DOUBT, (a.client_msg_id, a.state, a.detail)
        await rig.venue.inject_fault("primary", None, FaultKind.RECOVER)
        await rig.until(rig.both_up, "primary logged on again after recover")
        after = await rig.orders.resolve(STRATEGY, GROUP, in_doubt, timeout_s=2.0)
        _assert_final(after)  # and it never contradicts an earlier answer
    finally:
        await rig.stop()


async def test_after_a_restart_unknown_is_final_only_with_every_path_logged_on(tmp_path: Path) -> None:
    """A message this process never wrote (the sidecar restarted since) may have gone out on
    any path of the group: "unknown to the venue" is final only while all are logged on."""
    rig = await FlipRig.create(50, tmp_path)
    try:
        await rig.until(lambda: rig.effective == "primary" and rig.both_up(), "both paths up")
        never_written = [10_000]
        _assert_final(await rig.orders.resolve(STRATEGY, GROUP, never_written, timeout_s=2.0))
        await rig.venue.inject_fault("primary", None, FaultKind.STALL)
        await rig.until(lambda: rig.effective == "backup", "the stalled primary declared dead")
        (a,) = await rig.orders.resolve(STRATEGY, GROUP, never_written, timeout_s=2.0)
        assert a.state == spb.RESOLVE_STATE_STILL_IN_DOUBT, (spb.ResolveState.Name(a.state), a.detail)
        await rig.venue.inject_fault("primary", None, FaultKind.RECOVER)
        await rig.until(rig.both_up, "primary logged on again after recover")
        _assert_final(await rig.orders.resolve(STRATEGY, GROUP, never_written, timeout_s=2.0))
    finally:
        await rig.stop()
