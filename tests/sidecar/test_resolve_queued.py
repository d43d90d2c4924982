"""ResolveInDoubt never calls a message this sidecar still holds "unknown to the venue".

Found from outside: a strategy's connection replaced while its orders waited in the
sidecar's queue (behind orders owed on the path the route left) got them IN_DOUBT in the
library, asked ResolveInDoubt at once, and was told UNKNOWN_TO_VENUE ("never received:
safe to send again under a new id") for 21-48 of them; 0.2 s later the sidecar wrote them
and the venue booked them. A strategy that resent them would have been booked twice. The
answer took "not written by this process" for "written by an earlier process": true after
a restart, not for a message still queued here. A venue and a sidecar agent with its order
path in this process, real sockets.
"""

from __future__ import annotations

import time
from pathlib import Path

from failover_sidecar.agent import now_ms

from failover.bench.flip.rig import GROUP, STRATEGY, FlipRig
from failover.v1 import sidecar_pb2 as spb


async def test_a_message_still_queued_here_is_still_in_doubt_not_unknown(tmp_path: Path) -> None:
    rig = await FlipRig.create(50, tmp_path)
    try:
        await rig.until(lambda: rig.effective == "primary" and rig.both_up(), "both paths up")
        queued = 77_000
        # In the ledger, not written (what waits behind a drain, or for a path): every path
        # of the group is logged on and the venue has never heard of it.
        rig.orders.ledger.submit((STRATEGY, str(queued)), GROUP, now_ms())
        entry = rig.orders.ledger.get((STRATEGY, str(queued)))
        assert entry is not None and not entry.written and not entry.resolved
        t0 = time.monotonic()
        (a,) = await rig.orders.resolve(STRATEGY, GROUP, [queued], timeout_s=2.0)
        assert a.state == spb.RESOLVE_STATE_STILL_IN_DOUBT, (spb.ResolveState.Name(a.state), a.detail)
        assert "queued" in a.detail, a.detail
        assert time.monotonic() - t0 < 1.0  # answered from the ledger, no venue round trip needed
    finally:
        await rig.stop()


async def test_a_resend_the_venue_refused_as_a_duplicate_is_resolved_by_the_venue_not_the_refusal(
    tmp_path: Path,
) -> None:
    """Found from outside: after a sidecar restart (it forgets the ids it relayed) a strategy
    sent the same ids again; the venue refused them ("duplicate clordid": it has the first
    copies, acked) and ResolveInDoubt then answered REJECTED from that refusal while the venue
    held the orders live. The refusal is this copy's outcome, not the order's fate: the venue
    is asked."""
    from failover_sidecar.ledger import Ledger

    rig = await FlipRig.create(50, tmp_path)
    try:
        await rig.until(lambda: rig.effective == "primary" and rig.both_up(), "both paths up")
        rig.submit()  # id 1
        await rig.until(lambda: rig.outcomes.get(spb.OUTCOME_KIND_ACKED, 0) == 1, "the first copy acked")
        rig.orders.ledger = Ledger()  # what a restarted sidecar remembers of its relayed ids
        rig._ids = iter([1])  # the strategy sends id 1 again
        rig.submit()
        await rig.until(lambda: rig.outcomes.get(spb.OUTCOME_KIND_REJECTED, 0) == 1, "the copy refused")
        (a,) = await rig.orders.resolve(STRATEGY, GROUP, [1], timeout_s=2.0)
        assert a.state == spb.RESOLVE_STATE_ACKED, (spb.ResolveState.Name(a.state), a.detail)
        assert a.detail.startswith("venue:"), a.detail
    finally:
        await rig.stop()


async def test_many_ids_are_asked_of_the_venue_at_once_not_one_round_trip_each(tmp_path: Path) -> None:
    """Found from outside (4 of 4): ResolveInDoubt asked the venue one id at a time, so 1,000
    ids after a restart took 1,000 round trips (100 ids: 10.2 s on a 100 ms line) and the
    library's 10 s deadline ran out on a line of 10-20 ms. The queries now overlap (bounded
    in flight); the answers keep the request's order."""
    from failover.venue.faults import FaultKind

    rig = await FlipRig.create(50, tmp_path)
    try:
        await rig.until(lambda: rig.effective == "primary" and rig.both_up(), "both paths up")
        await rig.venue.inject_fault("primary", None, FaultKind.SLOW, delay_ms=30)
        await rig.venue.inject_fault("backup", None, FaultKind.SLOW, delay_ms=30)
        ids = list(range(500_000, 500_300))  # never relayed by this process: the venue is asked
        t0 = time.monotonic()
        answers = await rig.orders.resolve(STRATEGY, GROUP, ids, timeout_s=2.0)
        took = time.monotonic() - t0
        assert [a.client_msg_id for a in answers] == ids
        assert {a.state for a in answers} == {spb.RESOLVE_STATE_UNKNOWN_TO_VENUE}, {a.detail for a in answers}
        # One 30 ms round trip each would be 9 s; a broken mechanism only (overlapped: ~0.2 s).
        assert took < 3.0, f"{took:.1f} s for {len(ids)} ids"
    finally:
        await rig.stop()
