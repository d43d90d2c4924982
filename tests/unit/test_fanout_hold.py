"""The stream holder's arithmetic: a stream's silence less the time the holder's own loop
was blocked during it (what the overload row bounds), and its summary of refusals."""

from __future__ import annotations

from failover.bench.fanout import StreamFleet
from failover.bench.fanout_hold import OwnLateness, summary

MS = 1_000_000


def test_blocked_time_counts_only_its_overlap_with_the_silence() -> None:
    own = OwnLateness()
    own.blocked = [(100 * MS, 600 * MS), (900 * MS, 1000 * MS), (3000 * MS, 4000 * MS)]
    # silence from 400 to 2400 ms: 200 ms of the first block and all 100 ms of the second
    assert own.within(400 * MS, 2400 * MS) == 300 * MS


async def test_unexplained_silence_and_summary() -> None:
    fleet = StreamFleet(["127.0.0.1:1"], 3, 1, track_gaps=True)
    fleet.max_gap_ns = [2000 * MS, 500 * MS, 0]
    fleet.max_gap_end_ns = [3000 * MS, 3000 * MS, 0]
    own = OwnLateness()
    own.blocked = [(1500 * MS, 2700 * MS)]
    own.worst_ns = 1200 * MS
    # stream 0 silent 1000-3000 ms, 1200 ms of it the holder's own; stream 1 2500-3000: 200 ms
    assert own.unexplained_ms(fleet) == [800.0, 300.0, 0.0]
    fleet.errors = {2: "UNAVAILABLE: replica c1 is overloaded (...): try another replica"}
    fleet.ready = 2
    out = summary(fleet, full=True, own=own)
    assert out["errors"] == {"UNAVAILABLE": 1}
    assert "overloaded" in out["error_details"]["UNAVAILABLE"]
    assert out["errored"] == [2]
    assert out["max_gap_unexplained_ms"] == [800.0, 300.0, 0.0]
    assert out["own_loop_worst_late_ms"] == 1200.0
