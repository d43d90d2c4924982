"""The order probe and a stall of our own side: a starved process is not a dead line (real sockets).

A sidecar starved of CPU (or a venue process sharing the box, starved with it) stops
hearing every line at once. The heartbeat limit has the loop-lag guard for that; the
order probe, which decides within tens of milliseconds, must apply the same rules:
a probe unanswered while the loop lagged, or while every line was silent, is asked
again instead of declaring the path SILENT (and its orders IN_DOUBT).
"""

from __future__ import annotations

import asyncio
import time

from failover_sidecar.liveness import SilenceGuard
from failover_sidecar.status import Cause, PathState

from failover.venue.faults import FaultKind
from failover.venue.server import Venue
from failover.wire import protocol as p

from .conftest import MakeSession, poll_until


async def test_every_line_silent_for_a_moment_keeps_the_orders(
    venue: Venue, make_session: MakeSession
) -> None:
    # Both gateways stop answering for 100 ms, as when the process serving them (or ours) is
    # starved: shorter than the heartbeat limit (150 ms), longer than probe + probe timeout.
    primary, prec = await make_session("primary", heartbeat_interval_ms=50, silent_after=3)
    backup, brec = await make_session("backup", heartbeat_interval_ms=50, silent_after=3)
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    assert primary.send(p.new_order("h-w-1", "x"))
    await prec.next_message(p.MsgType.ACK)
    await poll_until(lambda: len(primary.rtt) >= 2 and len(backup.rtt) >= 2)

    for gw in ("primary", "backup"):
        await venue.inject_fault(gw, None, FaultKind.STALL)
    assert primary.send(p.new_order("h-w-2", "x"))
    await asyncio.sleep(0.1)  # noqa: ASYNC110 - the stall is a duration
    for gw in ("primary", "backup"):
        await venue.inject_fault(gw, None, FaultKind.RECOVER)

    acked = lambda: any(m["t"] == p.MsgType.ACK and m["clordid"] == "h-w-2" for m in prec.messages)  # noqa: E731
    await poll_until(lambda: acked() or bool(prec.downs()))
    assert prec.downs() == [] and brec.downs() == [], (prec.downs(), brec.downs())
    assert acked()
    assert primary.replies.probes_sent >= 1  # the probe did go out: it was asked again, not believed


async def test_a_blocked_loop_with_a_probe_out_keeps_the_path(
    venue: Venue, make_session: MakeSession, guard: SilenceGuard
) -> None:
    # Acks take 40 ms (slow venue), so every order is probed (after a fixed 5 ms: the RTT
    # multiple is made negligible, so an RTT inflated by a loaded machine cannot push the
    # order timeout past the venue's delay); the loop then blocks for 300 ms with the probe
    # out (its timeout fixed at 150 ms, past the echo's 40 ms): the echo sits unread, which
    # says nothing about the line.
    primary, prec = await make_session(
        "primary",
        heartbeat_interval_ms=50,
        silent_after=3,
        order_timeout_rtt_multiple=0.001,
        probe_timeout_floor_ms=150.0,
    )
    _, brec = await make_session("backup", heartbeat_interval_ms=50, silent_after=3)
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    await poll_until(lambda: len(primary.rtt) >= 2)
    await venue.inject_fault("primary", None, FaultKind.SLOW, delay_ms=40)
    lags = guard.lags
    for i in range(2):
        assert primary.send(p.new_order(f"h-b-{i}", "x"))
        await poll_until(lambda: primary.replies.probing)
        time.sleep(0.3)  # noqa: ASYNC251 - the whole loop stops: a starved sidecar
        await prec.next_message(p.MsgType.ACK)
    assert guard.lags > lags
    assert prec.downs() == [] and brec.downs() == [], (prec.downs(), brec.downs())


async def test_a_real_stall_under_orders_is_still_declared(venue: Venue, make_session: MakeSession) -> None:
    # The guard grants a few more probes at most: one stalled line beside a live one is declared.
    primary, prec = await make_session("primary", heartbeat_interval_ms=50, silent_after=3)
    _, brec = await make_session("backup", heartbeat_interval_ms=50, silent_after=3)
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    await poll_until(lambda: len(primary.rtt) >= 2)
    await venue.inject_fault("primary", None, FaultKind.STALL)
    t0 = time.monotonic()
    assert primary.send(p.new_order("h-r-1", "x"))
    down = await prec.next_status(PathState.DOWN)
    assert down.cause is Cause.SILENT and "order_timeout" in down.detail, down
    assert time.monotonic() - t0 < 1.0  # generous: a broken mechanism, not a slow one
    assert brec.downs() == []


async def test_a_stall_beside_an_idle_line_is_declared_on_the_first_probe(
    venue: Venue, make_session: MakeSession
) -> None:
    # The backup is idle and heartbeats every second: within one 5 ms probe timeout it sends
    # nothing and hears nothing of its own accord, which made "every line silent" excuse the
    # stalled primary's probe (renewed up to 3 times: ~22 ms instead of ~10). The other lines
    # are asked at once (a heartbeat each): the backup's echo shows the silence is the primary's.
    primary, prec = await make_session(
        "primary", heartbeat_interval_ms=50, silent_after=3, probe_timeout_floor_ms=5.0
    )
    backup, brec = await make_session("backup", heartbeat_interval_ms=1000, silent_after=3)
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    await poll_until(lambda: len(primary.rtt) >= 2 and len(backup.rtt) >= 1)
    await venue.inject_fault("primary", None, FaultKind.STALL)
    assert primary.send(p.new_order("h-i-1", "x"))
    down = await prec.next_status(PathState.DOWN)
    assert down.cause is Cause.SILENT and "order_timeout" in down.detail, down
    assert primary.replies.probes_sent == 1 and primary.replies.probes_renewed == 0, (
        primary.replies.probes_sent,
        primary.replies.probes_renewed,
    )
    assert brec.downs() == []


async def test_a_slow_answer_on_the_last_usable_path_is_waited_for(
    venue: Venue, make_session: MakeSession
) -> None:
    """No other path of the group is up: a venue answering 30 ms late (one probe timeout is
    5 ms) keeps its line, since declaring it dead gains no route and turns every order in
    flight into IN_DOUBT; the heartbeat limit (150 ms) still bounds real silence. Before, the
    line was declared SILENT on the first probe (a backup lost this way right after a flip,
    on a loaded machine)."""
    primary, prec = await make_session("primary", heartbeat_interval_ms=50, silent_after=3)
    await prec.next_status(PathState.UP)
    await poll_until(lambda: len(primary.rtt) >= 2)
    await venue.inject_fault("primary", None, FaultKind.SLOW, delay_ms=30)
    for i in range(3):
        assert primary.send(p.new_order(f"h-l-{i}", "x"))
        await prec.next_message(p.MsgType.ACK)
    assert prec.downs() == [], prec.downs()
    assert primary.replies.probes_sent >= 1  # the rule was exercised: a probe went unanswered in time
    # A real stall is still declared, on the heartbeat limit.
    await venue.inject_fault("primary", None, FaultKind.STALL)
    t0 = time.monotonic()
    assert primary.send(p.new_order("h-l-stall", "x"))
    down = await prec.next_status(PathState.DOWN, timeout=5.0)
    assert down.cause is Cause.SILENT, down
    assert time.monotonic() - t0 < 2.0  # generous: the limit is 150 ms
