"""PathSession against the real venue simulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time

from failover_sidecar.liveness import SilenceGuard
from failover_sidecar.status import Cause, PathState, Warmth

from failover.venue.core import EventKind
from failover.venue.faults import FaultKind
from failover.venue.server import Venue
from failover.wire import protocol as p

from .conftest import MakeSession, poll_until

INTERVAL_S = 0.05
SILENT_AFTER = 3


async def test_backup_warm_and_primary_reset_is_detected_without_touching_backup(
    venue: Venue, make_session: MakeSession
) -> None:
    primary, prec = await make_session("primary")
    backup, brec = await make_session("backup")
    await prec.next_status(PathState.UP)
    up = await brec.next_status(PathState.UP)
    assert up.session.startswith("backup-") and up.warmth is Warmth.LOGGED_ON
    snap = venue.snapshot()
    assert snap.gateway("primary").logons_by_session == {"host-a": 1}
    assert snap.gateway("backup").logons_by_session == {"host-a": 1}  # backup warm before any fault
    backup_opened = (backup.connections_opened, snap.gateway("backup").connections_opened)

    t0 = time.monotonic()
    await venue.inject_fault("primary", None, FaultKind.RESET)
    down = await prec.next_status(PathState.DOWN)
    assert down.cause is Cause.RESET, down
    assert time.monotonic() - t0 < 1.0
    assert down.detect_us is not None and down.detect_us < 1_000_000
    # The gateway's listener is closed: reconnects are refused until recover.
    await prec.next_status(PathState.DOWN, Cause.REFUSED)
    assert backup.is_up and brec.downs() == []
    assert (backup.connections_opened, venue.snapshot().gateway("backup").connections_opened) == backup_opened

    await venue.inject_fault("primary", None, FaultKind.RECOVER)
    await prec.next_status(PathState.UP)
    assert primary.connections_opened == 2
    assert venue.snapshot().gateway("primary").logons_by_session == {"host-a": 2}


async def test_stall_is_silent_then_socket_closed_and_recovered(
    venue: Venue, make_session: MakeSession
) -> None:
    primary, prec = await make_session("primary", heartbeat_interval_ms=50, silent_after=SILENT_AFTER)
    backup, brec = await make_session("backup")
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)

    t0 = time.monotonic()
    await venue.inject_fault("primary", None, FaultKind.STALL)
    down = await prec.next_status(PathState.DOWN)
    elapsed = time.monotonic() - t0
    assert down.cause is Cause.SILENT, down
    # Declared after silent_after intervals of silence, within a couple of ticks (generous for CI).
    assert elapsed < (SILENT_AFTER + 2) * INTERVAL_S * 2, elapsed
    assert down.detect_us is not None and down.detect_us >= SILENT_AFTER * INTERVAL_S * 1e6
    assert backup.is_up and brec.downs() == []

    await venue.inject_fault("primary", None, FaultKind.RECOVER)
    await prec.next_status(PathState.UP)
    assert primary.connections_opened >= 2
    # The stalled socket was closed by us: once the venue reads again it reaps it, and only
    # the new session remains (an abandoned open socket would still hold a logged-on session).
    async with asyncio.timeout(3):
        await venue.wait_until(lambda s: s.gateway("primary").active_sessions == 1)


async def test_logon_refused(venue: Venue, make_session: MakeSession) -> None:
    await venue.inject_fault("primary", None, FaultKind.LOGON_REFUSED)
    primary, rec = await make_session("primary")
    down = await rec.next_status(PathState.DOWN)
    assert down.cause is Cause.LOGON_REFUSED and "logon refused" in down.detail
    assert rec.messages and rec.messages[0]["t"] == "logon_reject"
    assert not primary.is_up
    await venue.inject_fault("primary", None, FaultKind.RECOVER)
    await rec.next_status(PathState.UP)


async def test_per_session_reset_hits_only_that_host(venue: Venue, make_session: MakeSession) -> None:
    a, arec = await make_session("primary", "host-a")
    b, brec = await make_session("primary", "host-b")
    await arec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    b_opened = b.connections_opened

    await venue.inject_fault("primary", "host-a", FaultKind.RESET)
    down = await arec.next_status(PathState.DOWN)
    assert down.cause is Cause.RESET
    # Its reconnects are dropped at logon until recover; host-b never notices.
    await arec.next_status(PathState.DOWN, Cause.RESET)
    assert b.is_up and brec.downs() == [] and b.connections_opened == b_opened

    await venue.inject_fault("primary", "host-a", FaultKind.RECOVER)
    await arec.next_status(PathState.UP)


async def test_event_loop_stall_does_not_down_healthy_paths(
    make_session: MakeSession, guard: SilenceGuard
) -> None:
    primary, prec = await make_session("primary", heartbeat_interval_ms=50)
    backup, brec = await make_session("backup", heartbeat_interval_ms=50)
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    await poll_until(lambda: len(primary.rtt) >= 2 and len(backup.rtt) >= 2)

    for _ in range(3):
        time.sleep(0.3)  # block the event loop, as a slow callback or a GC pause would  # noqa: ASYNC251
        await asyncio.sleep(0.2)  # an observation window: we assert that nothing happens in it

    assert prec.downs() == [] and brec.downs() == []
    assert primary.is_up and backup.is_up
    assert primary.connections_opened == backup.connections_opened == 1
    assert guard.lags >= 3  # the checkers saw the stalls


async def test_send_orders_and_venue_events(venue: Venue, make_session: MakeSession) -> None:
    primary, rec = await make_session("primary")
    await rec.next_status(PathState.UP)
    assert primary.send(p.new_order("host-a.s1.1", "BUY 1"))
    ack = await rec.next_message("ack")
    assert ack["clordid"] == "host-a.s1.1"
    venue.send_event(EventKind.FILL, "host-a.s1.1", 1)
    fill = await rec.next_message("fill")
    assert fill["qty"] == 1
    assert primary.seq_gaps == 0
    await poll_until(lambda: primary.status.rtt_p50_us is not None)
    st = primary.status
    assert st.rtt_p50_us is not None and st.rtt_p99_us is not None and 0 < st.rtt_p50_us <= st.rtt_p99_us


async def test_connected_and_cold_warmth(venue: Venue, make_session: MakeSession) -> None:
    connected, crec = await make_session("primary", warmth="connected")
    cold, colrec = await make_session("backup", warmth="cold")
    up = await crec.next_status(PathState.UP)
    assert up.warmth is Warmth.CONNECTED and up.session == ""
    snap = venue.snapshot()
    assert snap.gateway("primary").connections_opened == 1 and snap.gateway("primary").logons == 0
    assert snap.gateway("backup").connections_opened == 0 and cold.connections_opened == 0
    assert not connected.send(p.new_order("x.y.1"))  # no session: nothing can be sent
    assert not cold.send(p.new_order("x.y.2"))
    await poll_until(lambda: len(connected.rtt) >= 1)  # the pre-logon heartbeat probes the line

    assert await connected.warm_up()
    assert connected.can_send and connected.status.warmth is Warmth.LOGGED_ON
    assert connected.connections_opened == 1  # logged on over the same connection
    assert await cold.warm_up("logged_on")
    snap = venue.snapshot()
    assert snap.gateway("primary").logons == 1 and snap.gateway("backup").logons == 1


async def test_stop_logs_out_and_leaves_no_tasks(venue: Venue, make_session: MakeSession) -> None:
    before = asyncio.all_tasks()
    primary, prec = await make_session("primary")
    backup, brec = await make_session("backup")
    await prec.next_status(PathState.UP)
    await brec.next_status(PathState.UP)
    await primary.stop()
    await backup.stop()
    assert asyncio.all_tasks() <= before
    assert prec.statuses[-1].state is PathState.DOWN and prec.statuses[-1].detail == "stopped"
    assert not primary.send(p.new_order("a.b.c"))
    async with asyncio.timeout(3):  # logged out cleanly: the venue holds no session of ours
        await venue.wait_until(lambda s: s.gateway("primary").active_sessions == 0)
        await venue.wait_until(lambda s: s.gateway("backup").active_sessions == 0)


async def test_venue_close_is_declared_down_when_its_eof_is_read(make_session: MakeSession) -> None:
    """The path is DOWN in the callback that reads the venue's FIN, not in ``connection_lost``,
    which asyncio runs a loop iteration later: orders written meanwhile go to a dead line."""
    session, rec = await make_session("primary")
    await rec.next_status(PathState.UP)
    link = session._link
    assert link is not None
    assert link.eof_received() is None  # what asyncio calls on EOF (None: close the transport)
    assert not session.is_up and not session.can_send
    down = rec.statuses[-1]
    assert down.state is PathState.DOWN and down.cause is Cause.RESET, down
    assert "closed by the venue" in down.detail
