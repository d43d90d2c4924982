"""End to end over real sockets on 127.0.0.1: two gateways sharing one book."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from failover.venue.core import EventKind
from failover.venue.faults import FaultKind
from failover.venue.server import Venue, run_venue
from failover.venue.testclient import VenueClient
from failover.wire import protocol as p

from .helpers import Connect, MakeVenue, venue_config

QUIET_S = 0.25  # how long "silent" must last; a stalled line answers nothing at all


async def test_logon_on_both_gateways_and_heartbeat_echo(venue: Venue, connect: Connect) -> None:
    primary = await connect("primary")
    ack = await primary.logon("host-a")
    assert ack["gateway"] == "primary" and ack["session"].startswith("primary-") and "seq" not in ack
    backup = await connect("backup", "host-a")
    assert backup.session.startswith("backup-")
    primary.hb(41)
    assert await primary.expect("hb", id=41, seq=1)
    backup.hb(42)
    backup.hb(43)
    assert (await backup.recv())["id"] == 42
    assert (await backup.recv())["seq"] == 2
    assert primary.seq_errors == backup.seq_errors == []
    snap = venue.snapshot()
    assert snap.gateway("primary").logons_by_session == {"host-a": 1}
    assert snap.gateway("backup").active_sessions == 1


async def test_heartbeat_before_logon_is_echoed_without_seq(connect: Connect) -> None:
    client = await connect("backup")
    client.hb(5)
    msg = await client.expect("hb", id=5)
    assert "seq" not in msg


async def test_duplicate_across_gateways_and_status_on_the_other_line(venue: Venue, connect: Connect) -> None:
    primary = await connect("primary", "host-a")
    backup = await connect("backup", "host-a")
    primary.new("c1", "BUY 1")
    ack = await primary.expect("ack", clordid="c1")
    backup.new("c1", "BUY 1")
    rej = await backup.expect("reject", clordid="c1")
    assert "duplicate" in rej["reason"]
    backup.status("c1")
    await backup.expect("status_reply", clordid="c1", state="acked", order_id=ack["order_id"])
    backup.status("never")
    reply = await backup.expect("status_reply", state="unknown")
    assert "order_id" not in reply
    snap = venue.snapshot()
    assert (snap.gateway("primary").orders, snap.gateway("backup").duplicates) == (1, 1)
    assert (snap.orders, snap.duplicates, snap.open_orders) == (1, 1, 1)


async def test_cancel_flow(venue: Venue, connect: Connect) -> None:
    a = await connect("primary", "host-a")
    b = await connect("backup", "host-b")
    a.new("o1")
    ack = await a.expect("ack")
    b.cancel("x-b", "o1")
    assert "another sender" in (await b.expect("reject", clordid="x-b"))["reason"]
    a.cancel("x1", "o1")
    await a.expect("ack", clordid="x1", order_id=ack["order_id"])
    a.cancel("x2", "o1")
    await a.expect("reject", clordid="x2")
    a.status("o1")
    await a.expect("status_reply", state="cancelled")
    assert venue.snapshot().gateway("primary").cancels == 1


async def test_session_rejects(connect: Connect) -> None:
    client = await connect("primary")
    client.send(p.new_order("c1"))
    rej = await client.expect("session_reject", ref_seq=0)
    assert "not logged on" in rej["reason"]
    assert (await client.logon("host-a"))["t"] == "logon_ack"
    client.send(p.hb(1), seq=5)  # gap: expected 1
    assert "expected seq 1, got 5" in (await client.expect("session_reject", ref_seq=5, seq=1))["reason"]
    client.send(p.hb(2), seq=6)  # the gap moved the expectation on
    await client.expect("hb", id=2, seq=2)
    client.send(p.hb(3), seq=6)  # replay
    await client.expect("session_reject", ref_seq=6)
    client.send({"t": "new", "payload": "x"}, seq=7)
    assert "'clordid'" in (await client.expect("session_reject", ref_seq=7))["reason"]
    client.send({"t": "explode"}, seq=8)
    assert "unknown message type" in (await client.expect("session_reject", ref_seq=8))["reason"]
    client.send(p.logon("host-a", 1), seq=9)
    assert "already logged on" in (await client.expect("session_reject", ref_seq=9))["reason"]
    client.send_raw(p.encode({"t": "hb", "id": 1}))  # no seq at all
    assert "missing or bad seq" in (await client.expect("session_reject", ref_seq=0))["reason"]


async def test_framing_error_is_answered_then_closed(connect: Connect) -> None:
    client = await connect("primary", "host-a")
    client.hb(1)
    client.send_raw(b"\x00\x00\x00\x03abc")
    await client.expect("hb", id=1)
    rej = await client.expect("session_reject", ref_seq=0)
    assert "framing error" in rej["reason"]
    await client.wait_closed()


async def test_bad_logon_fields_are_rejected(connect: Connect) -> None:
    client = await connect("primary")
    client.send({"t": "logon", "sender": "", "heartbeat_ms": 50})
    assert "'sender'" in (await client.expect("logon_reject"))["reason"]
    client.send({"t": "logon", "sender": "h", "heartbeat_ms": -1})
    assert "'heartbeat_ms'" in (await client.expect("logon_reject"))["reason"]


async def test_logout_closes_cleanly(venue: Venue, connect: Connect) -> None:
    client = await connect("primary", "host-a")
    client.logout()
    await client.expect("logout_ack", seq=1)
    await client.wait_closed()
    async with asyncio.timeout(2):
        await venue.wait_until(lambda s: s.gateway("primary").active_sessions == 0)


async def test_reset_closes_and_refuses_until_recover(venue: Venue, connect: Connect) -> None:
    a = await connect("primary", "host-a")
    b = await connect("primary")  # not logged on: closed as well
    other = await connect("backup", "host-a")
    address = venue.gateway_addresses["primary"]
    await venue.inject_fault("primary", None, FaultKind.RESET)
    await a.wait_closed()
    await b.wait_closed()
    with pytest.raises(ConnectionRefusedError):
        await VenueClient.connect(address)
    other.hb(1)
    await other.expect("hb", id=1)  # the other gateway is untouched
    snap = venue.snapshot().gateway("primary")
    assert snap.faults == ["reset"] and not snap.listening
    await venue.inject_fault("primary", None, FaultKind.RECOVER)
    assert venue.gateway_addresses["primary"] == address  # same port again
    again = await connect("primary", "host-a")
    again.hb(2)
    await again.expect("hb", id=2)
    snap = venue.snapshot().gateway("primary")
    assert snap.faults == [] and snap.logons_by_session == {"host-a": 2} and snap.connections_opened == 3


async def test_session_reset_drops_that_sender_only_and_refuses_its_logons(
    venue: Venue, connect: Connect
) -> None:
    a = await connect("primary", "host-a")
    b = await connect("primary", "host-b")
    await venue.inject_fault("primary", "host-a", FaultKind.RESET)
    await a.wait_closed()
    b.hb(1)
    await b.expect("hb", id=1)
    retry = await connect("primary")  # TCP is accepted (the sender is unknown until logon)...
    retry.send(p.logon("host-a", 50))
    await retry.wait_closed()  # ...and the logon drops the line
    assert venue.snapshot().gateway("primary").faults == ["reset@host-a"]
    await venue.inject_fault("primary", "host-a", FaultKind.RECOVER)
    await connect("primary", "host-a")


async def test_stall_keeps_sockets_open_and_processes_buffered_orders_on_recover(
    venue: Venue, connect: Connect
) -> None:
    client = await connect("primary", "host-a")
    await venue.inject_fault("primary", None, FaultKind.STALL)
    client.hb(1)
    client.new("c1")
    await client.expect_silence(QUIET_S)  # no reply and no close
    assert venue.core.book.status("c1")[0] is p.OrderState.UNKNOWN  # not even read
    assert venue.snapshot().orders == 0
    fresh = await connect("primary")  # a new connection is accepted but gets nothing either
    fresh.hb(9)
    await fresh.expect_silence(0.05)
    await venue.inject_fault("primary", None, FaultKind.RECOVER)
    await client.expect("hb", id=1, seq=1)
    await client.expect("ack", clordid="c1", seq=2)
    await fresh.expect("hb", id=9)
    assert client.seq_errors == []


async def test_stall_holds_replies_already_queued(venue: Venue, connect: Connect) -> None:
    client = await connect("primary", "host-a")
    await venue.inject_fault("primary", None, FaultKind.SLOW, 150)
    client.hb(1)
    async with asyncio.timeout(2):  # the hb was read (seq moved) and its echo is waiting in the outbox
        await venue.core.wait_until(lambda: bool(venue.gateways["primary"].connections[0]._outbox))
    await venue.inject_fault("primary", None, FaultKind.STALL)
    await client.expect_silence(QUIET_S)
    await venue.inject_fault("primary", None, FaultKind.RECOVER)
    await client.expect("hb", id=1)


async def test_slow_adds_delay(venue: Venue, connect: Connect) -> None:
    client = await connect("primary", "host-a")
    await venue.inject_fault("primary", None, FaultKind.SLOW, 200)
    assert venue.snapshot().gateway("primary").faults == ["slow(200ms)"]
    start = time.monotonic()
    client.hb(1)
    client.hb(2)
    await client.expect("hb", id=1)
    await client.expect("hb", id=2, timeout=3)
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 1.5  # delayed, but a delay line: not 2 x 200 ms
    await venue.inject_fault("primary", None, FaultKind.RECOVER)
    start = time.monotonic()
    client.hb(3)
    await client.expect("hb", id=3)
    assert time.monotonic() - start < 0.15


async def test_logon_refused(venue: Venue, connect: Connect) -> None:
    existing = await connect("primary", "host-a")
    await venue.inject_fault("primary", None, FaultKind.LOGON_REFUSED)
    client = await connect("primary")
    reply = await client.logon("host-b")
    assert reply["t"] == "logon_reject" and "refused" in reply["reason"]
    existing.hb(1)
    await existing.expect("hb", id=1)  # sessions already up are not affected
    await venue.inject_fault("primary", None, FaultKind.RECOVER)
    assert (await client.logon("host-b"))["t"] == "logon_ack"  # same connection, second try
    assert venue.snapshot().gateway("primary").logons_by_session == {"host-a": 1, "host-b": 1}


async def test_per_session_fault_affects_only_that_sender(venue: Venue, connect: Connect) -> None:
    a = await connect("primary", "host-a")
    b = await connect("primary", "host-b")
    a_backup = await connect("backup", "host-a")
    await venue.inject_fault("primary", "host-a", FaultKind.STALL)
    a.hb(1)
    b.hb(2)
    a_backup.hb(3)
    await b.expect("hb", id=2)
    await a_backup.expect("hb", id=3)
    await a.expect_silence(QUIET_S)
    await venue.inject_fault("primary", "host-b", FaultKind.LOGON_REFUSED)
    c = await connect("primary")
    assert (await c.logon("host-b"))["t"] == "logon_reject"
    assert (await c.logon("host-c"))["t"] == "logon_ack"
    assert venue.snapshot().gateway("primary").faults == ["stall@host-a", "logon_refused@host-b"]
    await venue.inject_fault("primary", "host-a", FaultKind.RECOVER)
    await a.expect("hb", id=1)
    assert venue.snapshot().gateway("primary").faults == ["logon_refused@host-b"]


async def test_single_session(make_venue: MakeVenue, connect: Connect) -> None:
    venue = await make_venue(single_session=True)
    first = await connect("primary", "host-a", on=venue)
    second = await connect("backup", on=venue)
    reply = await second.logon("host-a")
    assert reply["t"] == "logon_reject" and "already has a session" in reply["reason"]
    assert (await second.logon("host-b"))["t"] == "logon_ack"  # other senders are fine
    first.logout()
    await first.expect("logout_ack")
    third = await connect("backup", on=venue)
    assert (await third.logon("host-a"))["t"] == "logon_ack"


async def test_events_reach_the_owner_after_it_moved_to_the_other_gateway(
    venue: Venue, connect: Connect
) -> None:
    primary = await connect("primary", "host-a")
    bystander = await connect("primary", "host-b")
    primary.new("o1")
    primary.new("o2")
    await primary.expect("ack", clordid="o1")
    await primary.expect("ack", clordid="o2")
    await primary.close()
    async with asyncio.timeout(2):
        await venue.wait_until(lambda s: s.gateway("primary").active_sessions == 1)
    backup = await connect("backup", "host-a")
    delivery = venue.send_event(EventKind.FILL, "o1", 3)
    assert (delivery.gateway, delivery.session) == ("backup", "host-a")
    await backup.expect("fill", clordid="o1", qty=3, seq=1)
    venue.send_event(EventKind.UNSOLICITED_CANCEL, "o2")
    await backup.expect("ucancel", clordid="o2")
    await bystander.expect_silence(0.05)
    backup.status("o2")
    await backup.expect("status_reply", state="cancelled")


async def test_events_prefer_the_newest_live_session(venue: Venue, connect: Connect) -> None:
    old = await connect("backup", "host-a")
    old.new("o1")
    await old.expect("ack")
    new = await connect("primary", "host-a")
    assert venue.send_event(EventKind.FILL, "o1", 1).gateway == "primary"
    await new.expect("fill", clordid="o1")
    old.new("o2")
    await old.expect("ack")
    await venue.inject_fault("primary", "host-a", FaultKind.STALL)  # a stalled session is skipped
    assert venue.send_event(EventKind.FILL, "o2", 1).gateway == "backup"
    await old.expect("fill", clordid="o2")


async def test_event_without_a_live_session_still_changes_state(venue: Venue, connect: Connect) -> None:
    client = await connect("primary", "host-a")
    client.new("o1")
    await client.expect("ack")
    await client.close()
    async with asyncio.timeout(2):
        await venue.wait_until(lambda s: s.gateway("primary").active_sessions == 0)
    assert not venue.send_event(EventKind.FILL, "o1", 1).delivered
    again = await connect("backup", "host-a")
    again.status("o1")
    await again.expect("status_reply", state="filled")


async def test_cancel_on_disconnect(make_venue: MakeVenue, connect: Connect) -> None:
    venue = await make_venue(cancel_on_disconnect=True)
    primary = await connect("primary", "host-a", on=venue)
    backup = await connect("backup", "host-a", on=venue)
    primary.new("p1")
    await primary.expect("ack")
    backup.new("b1")
    await backup.expect("ack")
    await primary.close()  # dropped, not logged out
    msg = await backup.expect("ucancel", clordid="p1")
    assert msg["reason"] == "cancel on disconnect"
    backup.status("b1")
    await backup.expect("status_reply", state="acked")  # orders of the surviving session stay
    backup.logout()  # a clean logout cancels nothing
    await backup.expect("logout_ack")
    await backup.wait_closed()
    async with asyncio.timeout(2):
        await venue.wait_until(lambda s: s.gateway("backup").active_sessions == 0)
    snap = venue.snapshot()
    assert snap.open_orders == 1 and snap.gateway("primary").cancels == 1


async def test_counters(venue: Venue, connect: Connect) -> None:
    await connect("primary", "host-a")
    await connect("primary", "host-a")
    await connect("primary", "host-b")
    await connect("backup")
    snap = venue.snapshot()
    primary, backup = snap.gateway("primary"), snap.gateway("backup")
    assert (primary.connections_opened, primary.logons, primary.active_sessions) == (3, 3, 3)
    assert primary.logons_by_session == {"host-a": 2, "host-b": 1}
    assert (backup.connections_opened, backup.logons, backup.active_sessions) == (1, 0, 0)
    assert primary.address == venue.gateway_addresses["primary"]
    assert snap.to_dict()["gateways"][0]["name"] == "primary"


async def test_stop_leaves_no_tasks(make_venue: MakeVenue) -> None:
    venue = await make_venue()
    client = await VenueClient.connect(venue.gateway_addresses["primary"])
    assert (await client.logon("host-a"))["t"] == "logon_ack"
    await venue.inject_fault("primary", None, FaultKind.SLOW, 5000)
    client.hb(1)  # its echo waits in a writer task for 5 s
    async with asyncio.timeout(2):
        await venue.core.wait_until(lambda: bool(venue.gateways["primary"]._tasks))
    await venue.stop()
    await client.wait_closed()
    await client.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}
    with pytest.raises(OSError):
        await VenueClient.connect(venue.gateway_addresses["primary"])


async def test_run_venue_until_cancelled() -> None:

    started: asyncio.Future[Venue] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_venue(venue_config(), ready=started.set_result))
    async with asyncio.timeout(5):
        venue = await started
    client = await VenueClient.connect(venue.gateway_addresses["backup"])
    assert (await client.logon("host-a"))["t"] == "logon_ack"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client.wait_closed()
    await client.close()
    with pytest.raises(OSError):
        await VenueClient.connect(venue.gateway_addresses["backup"])


async def test_reset_closes_the_line_before_inject_returns(venue: Venue) -> None:
    """A reset is on the wire when ``inject_fault`` returns, not one loop iteration later:
    a benchmark times the failover from that instant, and the simulator's own deferral
    (asyncio closes an aborted socket in a later callback) would be counted as ours."""
    host, port = venue.gateway_addresses["primary"].rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=2)
    try:
        async with asyncio.timeout(5):
            await venue.wait_until(lambda _: bool(venue.gateway("primary").connections))
        raw.setblocking(False)
        await venue.inject_fault("primary", None, FaultKind.RESET)
        try:  # no await between: the venue's loop has not run again
            data = raw.recv(64)
        except ConnectionResetError:
            data = b""
        except BlockingIOError:
            pytest.fail("the reset had not reached the socket when inject_fault returned")
        assert data == b""
    finally:
        raw.close()


async def test_replies_to_one_read_leave_in_one_write_in_order(venue: Venue, connect: Connect) -> None:
    """Orders that arrive together are answered by one write, in order; a lone one at once."""
    client = await connect("primary", "host-a")
    (conn,) = venue.gateways["primary"].connections
    assert conn.transport is not None
    writes: list[bytes] = []
    real_write = conn.transport.write

    def counting(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    conn.transport.write = counting  # type: ignore[method-assign]
    burst = b""
    for i in range(6):
        msg = p.new_order(f"c-{i}", "x")
        client.seq.stamp(msg)
        burst += p.encode(msg)
    client.send_raw(burst)  # one segment: the venue reads the six in one go
    acks = [await client.expect("ack") for _ in range(6)]
    assert [a["clordid"] for a in acks] == [f"c-{i}" for i in range(6)]
    assert [a["seq"] for a in acks] == list(range(1, 7))  # in order (logon_ack carries none)
    assert len(writes) == 1, [len(w) for w in writes]
    client.new("c-lone")
    await client.expect("ack", clordid="c-lone")
    assert len(writes) == 2  # a single order's reply is not held back either


async def test_a_logon_replaces_the_senders_older_session_on_that_gateway(
    venue: Venue, connect: Connect
) -> None:
    """What the sidecar's ``UNKNOWN_TO_VENUE`` rests on: once its path has logged on again,
    nothing the connection it gave up still carries is read (a proxy can hold that
    connection's bytes and deliver them later; found from outside, where the venue booked
    four orders a sidecar had already been told were never received)."""
    old = await _slot_session(connect, "primary", "g1")
    other = await _slot_session(connect, "backup", "g1")  # another gateway's: not touched
    sibling = await _slot_session(connect, "primary", "g2")  # another slot's: not touched
    plain = await connect("primary", "host-a")  # no slot (a client that does not name one)
    old.new("c1")
    await old.expect("ack", clordid="c1")
    new = await _slot_session(connect, "primary", "g1")
    old.new("c2")  # what a proxy delivers late, on the connection the client gave up
    await old.wait_closed()
    new.status("c2")
    await new.expect("status_reply", clordid="c2", state="unknown")
    new.status("c1")
    await new.expect("status_reply", clordid="c1", state="acked")  # booked before: kept
    for n, client in enumerate((other, sibling, plain)):
        client.hb(n)
        await client.expect("hb", id=n)
    snap = venue.snapshot()
    assert snap.gateway("primary").active_sessions == 3, snap
    assert snap.gateway("backup").active_sessions == 1, snap
    assert snap.orders == 1, snap


async def _slot_session(connect: Connect, gateway: str, slot: str) -> VenueClient:
    client = await connect(gateway)
    reply = await client.logon("host-a", slot=slot)
    assert reply["t"] == "logon_ack", reply
    return client
