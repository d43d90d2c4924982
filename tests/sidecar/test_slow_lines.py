"""Lines that deliver, but too late: a throttled line, and a round trip above the heartbeat limit
(real sockets, a proxy between the session and the venue simulator).

Found from outside:

- A line throttled below the order flow kept delivering a trickle of acks, and the order
  probe counted owed orders from the last thing heard: the path was never declared dead
  while its orders' latency grew by a second every two seconds (a flip came, if at all,
  4-5 s later, from a chance gap in the trickle).
- With a 200 ms round trip on both paths (above the 150 ms heartbeat limit), each path was
  UP again as soon as its new logon was answered, took the orders, and was declared silent
  150 ms later, before its first heartbeat echo could come: the route went back and forth
  five times a second and thousands of orders ended IN_DOUBT instead of NO_PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from failover_sidecar.status import Cause, PathState

from failover.faults.proxy import Link
from failover.venue.server import Venue
from failover.wire import protocol as p

from .conftest import MakeSession, poll_until


@pytest.fixture
async def proxied(venue: Venue) -> AsyncIterator[dict[str, Link]]:
    links = {g: await Link(g, venue.gateway_addresses[g]).start() for g in ("primary", "backup")}
    yield links
    for link in links.values():
        await link.close()


async def _orders_every_ms(session, prefix: str) -> None:  # type: ignore[no-untyped-def]
    for i in range(100_000):
        session.send(p.new_order(f"{prefix}-{i}", "x" * 40))
        await asyncio.sleep(0.001)


async def test_a_throttled_line_that_still_trickles_acks_is_declared_dead(
    make_session: MakeSession, proxied: dict[str, Link]
) -> None:
    primary, prec = await make_session("primary", endpoint=proxied["primary"].address)
    _, brec = await make_session("backup")
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    await poll_until(lambda: len(primary.rtt) >= 2)
    sender = asyncio.create_task(_orders_every_ms(primary, "t"))
    try:
        await prec.next_message(p.MsgType.ACK)
        # ~100 bytes per order every ms against 40 KB/s: acks keep coming (one every ~2.5 ms,
        # under the order timeout), each later than the one before.
        proxied["primary"].rate_up_bps = 40_000
        t0 = time.monotonic()
        await poll_until(lambda: bool(prec.downs()), timeout=3.0)
        took = time.monotonic() - t0
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    down = prec.downs()[0]
    assert down.cause is Cause.SILENT, down
    assert "order_timeout" in down.detail, down.detail
    assert took < 1.5, f"declared dead {took:.2f} s into the throttle"  # ~0.16 s expected: a mechanism bound
    assert brec.downs() == []


async def test_a_line_slower_than_the_heartbeat_limit_is_not_up_again_after_each_logon(
    make_session: MakeSession, proxied: dict[str, Link]
) -> None:
    primary, prec = await make_session(
        "primary", endpoint=proxied["primary"].address, heartbeat_interval_ms=50, silent_after=3
    )
    # A live backup line: the primary's silence is its own (with every line of the process
    # silent at once, the loop-lag guard gives each more time, and a 200 ms echo can land).
    _, brec = await make_session("backup", heartbeat_interval_ms=50, silent_after=3)
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    # Each way: a 400 ms round trip, above the 150 ms limit even with the loop-lag guard's
    # renewals (up to 3 more intervals) on a loaded machine.
    proxied["primary"].delay_ms = 200
    await prec.next_status(PathState.DOWN, timeout=2.0)
    seen = len(prec.statuses)
    await asyncio.sleep(1.5)  # noqa: ASYNC110 - what must NOT happen during the slow spell
    during = [s.state for s in prec.statuses[seen:]]
    assert PathState.UP not in during, during  # logons answered, heartbeats never in time
    assert primary.connections_opened >= 2  # it did keep trying
    proxied["primary"].delay_ms = 0
    await prec.next_status(PathState.UP, timeout=5.0)
    assert primary.can_send


async def test_when_every_line_is_slower_than_the_limit_none_is_up_again_after_its_logon(
    make_session: MakeSession, proxied: dict[str, Link]
) -> None:
    # Found from outside: +100 ms each way on both paths. Every line silent at once is the
    # loop-lag guard's sign of our own stall, so it granted each line more time, and a
    # re-logged-on line's 200 ms echo landed within it: UP, orders, silent again.
    recs = {}
    for g in ("primary", "backup"):
        _, recs[g] = await make_session(
            g, endpoint=proxied[g].address, heartbeat_interval_ms=50, silent_after=3
        )
    for rec in recs.values():
        await rec.next_status(PathState.UP)
    for link in proxied.values():
        link.delay_ms = 80  # a 160 ms round trip: within the guard's extra time
    for rec in recs.values():
        await rec.next_status(PathState.DOWN, timeout=2.0)
    seen = {g: len(rec.statuses) for g, rec in recs.items()}
    await asyncio.sleep(2.0)  # noqa: ASYNC110 - what must NOT happen during the slow spell
    for g, rec in recs.items():
        during = [s.state for s in rec.statuses[seen[g] :]]
        assert PathState.UP not in during, (g, during)
    for link in proxied.values():
        link.delay_ms = 0
    for rec in recs.values():
        await rec.next_status(PathState.UP, timeout=5.0)


async def test_a_line_reconnected_after_its_latency_stepped_up_is_timed_on_its_new_round_trip(
    make_session: MakeSession, proxied: dict[str, Link]
) -> None:
    """Found from outside (5 of 5): +20 ms each way on the primary. After the first flip
    (documented), every failback landed on a line certain to be declared dead again 11-36
    ms later: the order probe's timeouts came from the median of the last 200 heartbeat
    echoes, still those from before the step (the 5 ms floor), although this connection's
    own echoes took 40 ms. The route went back and forth every 1.1 s, each time leaving
    orders IN_DOUBT. A new connection's timing starts from its own round trips."""
    from failover.faults.proxy import Mode

    primary, prec = await make_session(
        "primary", endpoint=proxied["primary"].address, heartbeat_interval_ms=20
    )
    _, brec = await make_session("backup", heartbeat_interval_ms=20)
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    await poll_until(lambda: len(primary.rtt) >= 30)  # a fast line's history
    proxied["primary"].delay_ms = 20  # a 40 ms round trip from now on
    proxied["primary"].set(Mode.CUT)  # the first flip's reconnect
    await prec.next_status(PathState.DOWN, timeout=2.0)
    proxied["primary"].set(Mode.PASS)
    try:
        await prec.next_status(PathState.UP, timeout=5.0)
    except TimeoutError:
        raise AssertionError([(s.state, s.detail) for s in prec.statuses]) from None
    seen = len(prec.statuses)
    acks = len([m for m in prec.messages if m["t"] == p.MsgType.ACK])
    sender = asyncio.create_task(_orders_every_ms(primary, "s"))
    try:
        await asyncio.sleep(1.0)  # noqa: ASYNC110 - what must NOT happen while orders flow
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    downs = [(s.cause, s.detail) for s in prec.statuses[seen:] if s.state is PathState.DOWN]
    assert downs == [], downs
    assert len([m for m in prec.messages if m["t"] == p.MsgType.ACK]) - acks > 100
