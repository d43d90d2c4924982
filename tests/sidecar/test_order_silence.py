"""Silence on a line that carries orders, and silence declared at the limit (real venue, real sockets)."""

from __future__ import annotations

import time

from failover_sidecar.status import Cause, PathState

from failover.venue.faults import FaultKind
from failover.venue.server import Venue
from failover.wire import protocol as p

from .conftest import MakeSession, poll_until


async def test_stall_with_an_order_outstanding_is_declared_long_before_the_heartbeat_limit(
    venue: Venue, make_session: MakeSession
) -> None:
    # Heartbeats every second: the heartbeat limit alone would take 3 s to see the stall.
    # The backup is up: there is somewhere to flip to (a group's last usable path is judged
    # on the heartbeat limit: test_order_stall.py).
    primary, prec = await make_session("primary", heartbeat_interval_ms=1000, silent_after=3)
    _, brec = await make_session("backup", heartbeat_interval_ms=1000, silent_after=3)
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    assert primary.send(p.new_order("h-s-1", "x"))
    await prec.next_message(p.MsgType.ACK)  # the line answers orders

    await venue.inject_fault("primary", None, FaultKind.STALL)
    t0 = time.monotonic()
    assert primary.send(p.new_order("h-s-2", "x"))  # never answered: the venue reads nothing now
    down = await prec.next_status(PathState.DOWN, timeout=2.5)
    elapsed = time.monotonic() - t0
    assert down.cause is Cause.SILENT and "order_timeout" in down.detail, down
    assert elapsed < 1.0, elapsed  # generous: the mechanism needs milliseconds, the heartbeat 3 s
    assert primary.replies.probes_sent >= 1


async def test_a_slow_ack_on_a_live_line_is_probed_not_declared(
    venue: Venue, make_session: MakeSession
) -> None:
    # A venue that answers heartbeats but is slow to ack one order keeps the line UP.
    primary, prec = await make_session("primary", heartbeat_interval_ms=1000, silent_after=3)
    await prec.next_status(PathState.UP)
    primary.expect_reply("owed-forever")  # an order the venue never acks
    await poll_until(lambda: primary.replies.probes_answered >= 1)
    assert primary.is_up and prec.downs() == []
    assert len(primary.replies) == 0  # answered probe: the line is proven, older owed replies stop counting


async def test_idle_silence_is_declared_at_the_limit_not_a_tick_later(
    venue: Venue, make_session: MakeSession
) -> None:
    interval_s = 0.4  # limit 1.2 s; the old tick check declared at the tick after it (~1.6 s)
    primary, prec = await make_session("primary", heartbeat_interval_ms=400, silent_after=3)
    _, brec = await make_session("backup")  # a live line beside it: not "every line silent at once"
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    # The last sign of life is a heartbeat echo, one round trip after a tick: the old check,
    # run only at ticks, saw the limit pass one interval late.
    await poll_until(lambda: len(primary.rtt) >= 1)
    await venue.inject_fault("primary", None, FaultKind.STALL)
    down = await prec.next_status(PathState.DOWN, timeout=4.0)
    assert down.cause is Cause.SILENT and down.detect_us is not None
    limit_us = 3 * interval_s * 1e6
    assert limit_us <= down.detect_us < limit_us + interval_s / 2 * 1e6, down.detect_us
