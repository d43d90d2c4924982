"""The strategy library's promise: every ``send`` returns exactly one outcome, always.

Against a real in-process gRPC server on a Unix socket whose Relay handler is
scripted: a real sidecar never answers twice or goes silent on purpose, so these
are the only way to drive the library into those corners.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from failover_client.api import OutcomeKind, Sidecar

from failover import rpc
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import sidecar_pb2_grpc

WAIT_S = 3.0  # every outcome here is due within milliseconds; this catches a hang

Script = Callable[[spb.RelayMessage], list[spb.RelayEvent]]


def silent(m: spb.RelayMessage) -> list[spb.RelayEvent]:
    return []


def twice(m: spb.RelayMessage) -> list[spb.RelayEvent]:
    acked = spb.Outcome(client_msg_id=m.client_msg_id, kind=spb.OUTCOME_KIND_ACKED, path="primary")
    rejected = spb.Outcome(client_msg_id=m.client_msg_id, kind=spb.OUTCOME_KIND_REJECTED, path="backup")
    return [spb.RelayEvent(outcome=acked), spb.RelayEvent(outcome=rejected)]


class ScriptedSidecar(sidecar_pb2_grpc.SidecarServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.script: Script = silent
        self.received: asyncio.Queue[spb.RelayMessage] = asyncio.Queue()

    async def Relay(
        self, requests: AsyncIterator[spb.RelayRequest], context: Any
    ) -> AsyncIterator[spb.RelayEvent]:
        async for req in requests:
            if req.WhichOneof("kind") != "message":
                continue
            self.received.put_nowait(req.message)
            for ev in self.script(req.message):
                yield ev
        await asyncio.Event().wait()  # keeps the stream open after the client half-closes


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedSidecar, str]]:
    servicer = ScriptedSidecar()
    server = rpc.make_server()
    sidecar_pb2_grpc.add_SidecarServicer_to_server(servicer, server)
    sock = str(tmp_path / "s.sock")
    rpc.bind(server, f"unix:{sock}")
    await server.start()
    try:
        yield servicer, sock
    finally:
        await server.stop(0)


async def test_close_resolves_a_send_waiting_for_its_outcome(scripted: tuple[ScriptedSidecar, str]) -> None:
    servicer, sock = scripted
    sc = await Sidecar.connect(sock, "s1")
    sending = asyncio.ensure_future(sc.send("g", "x"))
    async with asyncio.timeout(WAIT_S):
        await servicer.received.get()  # written: the sidecar has it, and never answers
    async with asyncio.timeout(WAIT_S):
        # Within the library's own liveness bound (a ping after 1 s, 1 s to answer, which this
        # scripted sidecar never does): the close, not the liveness check, ends it.
        await sc.close(timeout_s=0.5)
        outcome = await sending
    assert outcome.kind == OutcomeKind.IN_DOUBT, outcome
    assert "closed" in outcome.reason


async def test_an_unexpected_reader_error_still_gives_every_send_an_outcome(
    scripted: tuple[ScriptedSidecar, str],
) -> None:
    servicer, sock = scripted
    sc = await Sidecar.connect(sock, "s1")

    def broken(m: spb.RelayMessage) -> list[spb.RelayEvent]:
        # A venue event, which the strategy's (broken) queue refuses: not an AioRpcError.
        return [spb.RelayEvent(venue_event=spb.VenueEvent(client_msg_id=m.client_msg_id, kind="fill"))]

    servicer.script = broken

    class Exploding(asyncio.Queue[spb.VenueEvent]):
        def put_nowait(self, item: spb.VenueEvent) -> None:
            raise RuntimeError("strategy's queue broke")

    sc.events = Exploding()
    try:
        async with asyncio.timeout(WAIT_S):
            outcome = await sc.send("g", "x")
        assert outcome.kind == OutcomeKind.IN_DOUBT, outcome
        assert "strategy's queue broke" in outcome.reason
    finally:
        await sc.close()


async def test_submit_after_close_says_nothing_was_sent(scripted: tuple[ScriptedSidecar, str]) -> None:
    _, sock = scripted
    used = await Sidecar.connect(sock, "s1")
    used.submit("g", "first")
    await used.close(timeout_s=0.1)
    never = await Sidecar.connect(sock, "s1")
    await never.close()
    for sc in (used, never):
        async with asyncio.timeout(WAIT_S):
            outcome = await sc.send("g", "x")
        assert outcome.kind in (OutcomeKind.NO_PATH, OutcomeKind.REJECTED), outcome
        assert "not sent" in outcome.reason


async def test_a_msg_id_already_waiting_is_refused_locally(scripted: tuple[ScriptedSidecar, str]) -> None:
    _, sock = scripted
    sc = await Sidecar.connect(sock, "s1")
    try:
        _, first = sc.submit("g", "a", msg_id=7)
        _, second = sc.submit("g", "b", msg_id=7)
        async with asyncio.timeout(WAIT_S):
            out = await second
        assert out.kind == OutcomeKind.REJECTED and "already waiting" in out.reason
        assert not first.done()  # still owned by the first message
    finally:
        await sc.close(timeout_s=0.1)
    assert first.done()


async def test_a_second_outcome_is_counted_logged_and_surfaced(
    scripted: tuple[ScriptedSidecar, str], caplog: pytest.LogCaptureFixture
) -> None:
    servicer, sock = scripted
    servicer.script = twice
    sc = await Sidecar.connect(sock, "s1")
    try:
        with caplog.at_level(logging.ERROR, logger="failover_client.api"):
            async with asyncio.timeout(WAIT_S):
                outcome = await sc.send("g", "x")
                event = await sc.events.get()
        assert outcome.kind == OutcomeKind.ACKED  # the first one counts
        assert event.kind == "duplicate_outcome", event
        assert event.client_msg_id == outcome.client_msg_id
        assert b"REJECTED" in event.payload and b"ACKED" in event.payload
        assert sc.duplicate_outcomes == 1
        assert any("second outcome" in r.getMessage() for r in caplog.records)
    finally:
        await sc.close(timeout_s=0.1)


async def test_close_is_idempotent(scripted: tuple[ScriptedSidecar, str]) -> None:
    _, sock = scripted
    sc = await Sidecar.connect(sock, "s1")
    sc.submit("g", "x")
    async with asyncio.timeout(WAIT_S):
        await sc.close(timeout_s=0.1)
        await sc.close(timeout_s=0.1)
