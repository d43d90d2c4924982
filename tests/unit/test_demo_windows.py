"""The demo's order windows: an event's pause is read against a no-fault window, and the
first event does not count that window's orders (a pause before the fault is not the fault's)."""

from __future__ import annotations

from typing import Any

from failover.demo.observe import Sender, Sent
from failover.demo.scenario import EventResult, Script
from failover.v1 import sidecar_pb2 as spb

ACKED = spb.OUTCOME_KIND_ACKED


def _sender(acks: list[float]) -> Sender:
    s = Sender("h1", sidecar=None, group="g", interval_ms=10)  # type: ignore[arg-type]
    for i, t in enumerate(acks):
        s.sent[i] = Sent(i, t_sent=t - 0.001, outcome=ACKED, path="primary", t_outcome=t, outcomes=1)
    return s


def test_longest_ack_gap_is_taken_inside_the_window_only() -> None:
    s = _sender([0.0, 0.01, 0.3, 0.31, 0.32])
    assert round(s.longest_ack_gap(0.0, 1.0), 3) == 0.29
    assert round(s.longest_ack_gap(0.3, 1.0), 3) == 0.01
    assert s.longest_ack_gap(0.31, 0.315) == 0.0  # fewer than two acks


def test_the_first_event_counts_orders_sent_after_the_no_fault_window_only() -> None:
    # 0.5 s of steady flow every 10 ms, one 200 ms gap inside it (ending at 0.45 s), the
    # window ending at 0.5 s; then the event's own orders, still every 10 ms.
    acks = [i * 0.01 for i in range(25)] + [0.45 + i * 0.01 for i in range(106)]
    s = _sender(acks)
    script: Any = Script(None, None, {}, {"h1": s}, "g", settle_s=0.0, orders_since=0.5)  # type: ignore[arg-type]
    res = EventResult(name="t", kind="hard")
    script._orders(res, t0=0.4, t1=1.5)  # the event's window would start 0.1 s before the window's end
    assert res.pause_ms < 20, res.pause_ms
    assert res.orders["sent"] == sum(1 for t in acks if 0.5 <= t - 0.001 <= 1.5)
