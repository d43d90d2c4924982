"""The framed local relay end to end: a strategy library client, the sidecar's framed socket,
the order path and a venue, over real sockets (tests/framed/conftest.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections import Counter
from pathlib import Path

import pytest
from failover_client.api import OutcomeKind, Sidecar
from failover_client.framed import FramedRelay
from failover_sidecar import framed as framed_mod
from failover_sidecar.app import SocketError, prepare_socket

from failover.v1 import sidecar_pb2 as spb
from failover.venue.faults import FaultKind
from failover.wire.frames import FrameReader, frame
from tests.sidecar_integration.harness import GROUP, STRATEGY

from .conftest import WAIT_S, FramedRig, poll, swallow_venue_acks

ACKED, IN_DOUBT, NO_PATH, REJECTED = (
    OutcomeKind.ACKED,
    OutcomeKind.IN_DOUBT,
    OutcomeKind.NO_PATH,
    OutcomeKind.REJECTED,
)


async def test_orders_are_acked_over_the_framed_socket(rig: FramedRig) -> None:
    mode = stat.S_IMODE(os.stat(rig.framed_socket).st_mode)
    assert mode == 0o660, oct(mode)  # the same rules as the gRPC socket
    async with await FramedRelay.connect(rig.framed_socket, STRATEGY) as fr:
        outcomes = [await fr.send(GROUP, f'{{"n":{i}}}') for i in range(20)]
        futs = [fr.submit(GROUP, "x")[1] for _ in range(200)]  # many in flight: batched writes
        async with asyncio.timeout(WAIT_S):
            outcomes += await asyncio.gather(*futs)
    assert [o.kind for o in outcomes] == [ACKED] * 220, Counter(OutcomeKind.name(o.kind) for o in outcomes)
    assert {o.path for o in outcomes} == {"primary"}
    assert all(o.client_order_id.startswith("h1") for o in outcomes)
    assert rig.app.orders.counters["acked"] == 220  # the same ledger and counters as the gRPC relay
    assert rig.venue.snapshot().orders == 220
    # Refused by the order path (unknown group): REJECTED, the connection stays up.
    async with await FramedRelay.connect(rig.framed_socket, STRATEGY) as fr:
        o = await fr.send("no-such-group", "x")
        assert o.kind == REJECTED and "unknown group" in o.reason
        assert (await fr.send(GROUP, "x")).kind == ACKED
    o = await fr.send(GROUP, "x")
    assert o.kind == NO_PATH and "closed" in o.reason  # after close: nothing sent


async def test_a_path_killed_mid_stream_gives_each_order_exactly_one_outcome(rig: FramedRig) -> None:
    total, window = 600, 32
    outcomes: dict[int, spb.Outcome] = {}
    async with await FramedRelay.connect(rig.framed_socket, STRATEGY) as fr:
        killed = asyncio.Event()
        sent = 0

        async def pump() -> None:
            nonlocal sent
            inflight: set[asyncio.Future[spb.Outcome]] = set()
            while sent < total or inflight:
                while sent < total and len(inflight) < window:
                    inflight.add(fr.submit(GROUP, "x")[1])
                    sent += 1
                done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                for f in done:
                    o = f.result()
                    assert o.client_msg_id not in outcomes
                    outcomes[o.client_msg_id] = o
                if sent >= 200 and not killed.is_set():
                    killed.set()
                    await rig.venue.inject_fault("primary", None, FaultKind.RESET)

        async with asyncio.timeout(3 * WAIT_S):
            await pump()
        assert fr.duplicate_outcomes == 0 and fr.unmatched_outcomes == 0
    kinds = Counter(OutcomeKind.name(o.kind) for o in outcomes.values())
    print("outcomes:", dict(kinds))
    assert len(outcomes) == total, kinds
    assert set(kinds) <= {"ACKED", "IN_DOUBT"}, kinds  # a written order is never NO_PATH/lost
    assert kinds["ACKED"] > 0 and any(o.path == "backup" for o in outcomes.values()), kinds
    snap = rig.venue.snapshot()
    assert snap.duplicates == 0  # nothing resent by the sidecar on its own
    assert snap.orders >= kinds["ACKED"]  # every ACKED order is booked at the venue
    # IN_DOUBT is resolvable through the gRPC ResolveInDoubt, as for the gRPC relay.
    doubts = [m for m, o in outcomes.items() if o.kind == IN_DOUBT]
    if doubts:
        sc = await Sidecar.connect(rig.grpc_socket, STRATEGY)
        try:
            res = await sc.resolve_in_doubt(GROUP, doubts[:50])
        finally:
            await sc.close()
        assert len(res) == len(doubts[:50])
        assert all(r.state != spb.RESOLVE_STATE_UNSPECIFIED for r in res)


async def test_connection_loss_makes_pending_messages_in_doubt(rig: FramedRig) -> None:
    fr = await FramedRelay.connect(rig.framed_socket, STRATEGY)
    assert (await fr.send(GROUP, "x")).kind == ACKED
    await rig.venue.inject_fault("primary", None, FaultKind.STALL)  # no reply: orders stay pending
    futs = [fr.submit(GROUP, "x")[1] for _ in range(10)]
    await poll(lambda: rig.app.orders.counters["sent"] >= 11, "the ten orders written to primary")
    await rig.app.framed.stop()  # the sidecar side of the connection goes away
    async with asyncio.timeout(WAIT_S):
        outs = await asyncio.gather(*futs)
    assert [o.kind for o in outs] == [IN_DOUBT] * 10, [o.reason for o in outs]
    assert "stopping" in outs[0].reason
    o = await fr.send(GROUP, "x")
    assert o.kind == NO_PATH
    await fr.close()


async def _raw(path: str, *frames_or_bytes: bytes) -> tuple[list[spb.RelayEvent], bool]:
    """Write raw bytes on a fresh connection; the events read until EOF (and whether EOF came)."""
    r, w = await asyncio.open_unix_connection(path)
    for b in frames_or_bytes:
        w.write(b)
    await w.drain()
    reader, events = FrameReader(), []
    try:
        async with asyncio.timeout(WAIT_S):
            while data := await r.read(65536):
                events += [spb.RelayEvent.FromString(f) for f in reader.feed(data)]
        eof = True
    except TimeoutError:
        eof = False
    w.close()
    return events, eof


def _hello(sid: str) -> bytes:
    return frame(spb.RelayRequest(open=spb.RelayOpen(strategy_id=sid)).SerializeToString())


@pytest.mark.parametrize(
    ("case", "data", "said"),
    [
        ("garbage frame", _hello(STRATEGY) + frame(b"\xff\xff\xff\xff"), "not a RelayRequest"),
        ("oversized length", _hello(STRATEGY) + (10**9).to_bytes(4, "big"), "over the"),
        ("unknown strategy", _hello("intruder"), "not allowed"),
        (
            "no hello",
            frame(spb.RelayRequest(message=spb.RelayMessage(group=GROUP)).SerializeToString()),
            "first frame",
        ),
    ],
)
async def test_a_bad_connection_is_closed_alone(
    rig: FramedRig, caplog: pytest.LogCaptureFixture, case: str, data: bytes, said: str
) -> None:
    caplog.set_level(logging.WARNING, logger="failover_sidecar.framed")
    async with await FramedRelay.connect(rig.framed_socket, "s2") as good:
        assert (await good.send(GROUP, "x")).kind == ACKED
        pending = good.submit(GROUP, "y")[1]  # in flight while the other connection misbehaves
        events, eof = await _raw(rig.framed_socket, data)
        assert eof, f"{case}: the connection was not closed"
        assert [e.WhichOneof("kind") for e in events] == ["closed"], events
        assert said in events[0].closed.reason
        assert events[0].closed.nothing_relayed
        assert any(said in r.getMessage() for r in caplog.records), caplog.text
        assert (await pending).kind == ACKED
        assert (await good.send(GROUP, "z")).kind == ACKED  # the other connection is untouched
    assert rig.app.orders.counters["acked"] == 3


async def test_an_unknown_strategy_gets_rejected_not_in_doubt(rig: FramedRig) -> None:
    fr = await FramedRelay.connect(rig.framed_socket, "intruder")
    o = await asyncio.wait_for(fr.send(GROUP, "x"), WAIT_S)
    assert o.kind == REJECTED and "not allowed" in o.reason, o
    assert (await fr.send(GROUP, "x")).kind == NO_PATH
    await fr.close()
    assert rig.app.orders.counters["submitted"] == 0


async def test_a_missing_socket_raises_at_connect(rig: FramedRig) -> None:
    with pytest.raises(OSError):
        await FramedRelay.connect(rig.framed_socket + ".absent", STRATEGY)


def test_the_framed_socket_has_the_same_checks_as_the_grpc_one(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "h1.framed"
    link.symlink_to(target)
    with pytest.raises(SocketError, match=r"^listen\.framed_socket: .* is a symlink"):
        prepare_socket(str(link), "listen.framed_socket")
    with pytest.raises(SocketError, match=r"^listen\.framed_socket: directory"):
        prepare_socket(str(tmp_path / "no" / "h1.framed"), "listen.framed_socket")


async def test_a_strategy_that_does_not_read_is_disconnected_alone(
    rig: FramedRig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(framed_mod, "UNREAD_LIMIT_BYTES", 20_000)
    caplog.set_level(logging.ERROR, logger="failover_sidecar.framed")
    r, w = await asyncio.open_unix_connection(rig.framed_socket, limit=1024)
    w.transport.pause_reading()  # type: ignore[attr-defined]  # a strategy that never reads
    refused = spb.RelayRequest(
        message=spb.RelayMessage(group="nope", client_msg_id=1, kind=spb.MESSAGE_KIND_NEW_ORDER)
    )
    w.write(_hello("s2") + frame(refused.SerializeToString()) * 20_000)  # 20,000 REJECTED outcomes
    await poll(lambda: "does not read its outcomes" in caplog.text, "the sidecar to give up on the reader")
    w.close()
    async with await FramedRelay.connect(rig.framed_socket, STRATEGY) as fr:
        assert (await fr.send(GROUP, "x")).kind == ACKED


async def test_an_idle_connection_is_kept_by_answered_pings(rig: FramedRig) -> None:
    """The liveness check pings a quiet sidecar and the sidecar answers: nothing is ended."""
    fr = await FramedRelay.connect(rig.framed_socket, STRATEGY, keepalive_s=0.02, keepalive_timeout_s=0.2)
    async with fr:
        # The check that sends ping N+1 first saw ping N answered, or it would have ended the connection.
        pinged = lambda: fr._alive is not None and fr._alive.seq >= 5  # noqa: E731
        await poll(pinged, "five pings sent on an idle connection")
        assert not fr.closed.is_set(), fr.error
        assert (await fr.send(GROUP, "x")).kind == ACKED


async def test_keepalive_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        await FramedRelay.connect("/nonexistent", STRATEGY, keepalive_s=0)


@pytest.mark.parametrize(
    ("rig", "confirm"),
    [
        ({"orders": {"reply_timeout_ms": 300, "confirm_in_doubt_ms": 0}}, False),
        ({"orders": {"reply_timeout_ms": 300}}, True),
    ],
    indirect=["rig"],
    ids=["in-doubt-without-asking", "acked-when-asked-over-backup"],
)
async def test_an_order_the_venue_never_answers_on_a_live_line_gets_an_outcome(
    rig: FramedRig, confirm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The venue books the order and never answers it while its line answers heartbeats:
    the probe finds the line alive, so only the reply timeout gives the strategy an outcome.
    With orders.confirm_in_doubt_ms (default 10 ms) the sidecar first asks over the backup
    line, and the venue, which has the order, turns it ACKED with its order id; with 0,
    IN_DOUBT at once."""
    async with await FramedRelay.connect(rig.framed_socket, STRATEGY) as fr:
        assert (await fr.send(GROUP, "x")).kind == ACKED
        swallow_venue_acks(monkeypatch)
        t0 = asyncio.get_running_loop().time()
        async with asyncio.timeout(WAIT_S):
            o = await fr.send(GROUP, "x")
        took = asyncio.get_running_loop().time() - t0
        assert "no reply on primary within 300 ms, the line still up" in o.reason, o
        if confirm:
            assert o.kind == ACKED and o.venue_order_id and "asked over backup" in o.reason, o
        else:
            assert o.kind == IN_DOUBT, o
        assert 0.3 <= took < 2.0, took
        assert rig.app.agent.routes[GROUP].effective == "primary"  # the line is up: no flip
        monkeypatch.undo()
        assert (await fr.send(GROUP, "x")).kind == ACKED


async def test_a_refusal_of_a_long_group_name_fits_a_frame_and_the_connection_lives(rig: FramedRig) -> None:
    """A request near the frame limit, for a group this host does not have: the refusal
    quotes a cut name, so its frame fits, and nothing else on the connection is lost."""
    async with await FramedRelay.connect(rig.framed_socket, STRATEGY) as fr:
        waiting = fr.submit(GROUP, "x")[1]
        o = await asyncio.wait_for(fr.send("g" * 65_000, "x"), WAIT_S)
        assert o.kind == REJECTED and "unknown group" in o.reason and len(o.reason) < 300, o.reason[:200]
        assert (await asyncio.wait_for(waiting, WAIT_S)).kind == ACKED
        assert (await fr.send(GROUP, "x")).kind == ACKED


async def test_a_message_over_the_frame_limit_is_refused_locally_and_the_connection_lives(
    rig: FramedRig,
) -> None:
    """Sent as is, the sidecar refused the frame's length and closed the connection: every
    other message on it ended NO_PATH or IN_DOUBT. The library refuses it before writing."""
    async with await FramedRelay.connect(rig.framed_socket, STRATEGY) as fr:
        waiting = fr.submit(GROUP, "x")[1]
        o = await asyncio.wait_for(fr.send("g" * 70_000, "x"), WAIT_S)
        assert o.kind == REJECTED and "frame limit" in o.reason, o.reason[:200]
        assert (await asyncio.wait_for(waiting, WAIT_S)).kind == ACKED
        assert (await fr.send(GROUP, "x")).kind == ACKED
