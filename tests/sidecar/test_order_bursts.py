"""A burst of orders on a healthy line is not a stall.

Found from outside: a strategy submitting 1,000-2,000 orders at once on healthy lines
(or a sidecar resumed after a pause, writing what its strategy had queued meanwhile)
had its primary declared silent (``order_timeout ... no echo of a probe within
5.0 ms``): hundreds of orders ``IN_DOUBT`` and a fleet-wide decision. A venue works
through what a line holds in order (the simulator about 10-16 µs per order on this
machine) and answers a whole read at once: the probe's echo queues behind every order
written before it, and nothing arrives while the venue works. Here a venue that
takes a fixed time per message makes that deterministic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from failover_sidecar.liveness import SilenceGuard
from failover_sidecar.path import PathSession
from failover_sidecar.status import PathState

from failover.wire import protocol as p
from tests.sidecar.conftest import Recorder

PER_MESSAGE_S = 0.000_02  # 20 µs per message: the simulator's own pace on this machine
BURST = 2000  # 40 ms of the venue's work in one burst


class BusyVenue:
    """Answers every message of a read once it has spent ``PER_MESSAGE_S`` on each: logon,
    heartbeat echoes and order acks, in order, sequenced."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.acked = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = p.FrameDecoder()
        seq = p.SeqTracker()
        try:
            while data := await reader.read(65536):
                msgs = decoder.feed(data)
                await asyncio.sleep(len(msgs) * PER_MESSAGE_S)  # busy with them (elsewhere)
                out = []
                for m in msgs:
                    if m["t"] == p.MsgType.LOGON:
                        seq.reset()
                        out.append(seq.stamp(p.logon_ack("s-1", "gw")))
                    elif m["t"] == p.MsgType.HB:
                        out.append(seq.stamp(p.hb(m["id"])))
                    elif m["t"] == p.MsgType.NEW:
                        self.acked += 1
                        out.append(seq.stamp(p.ack(m["clordid"], f"o{self.acked}")))
                writer.write(b"".join(p.encode(m) for m in out))
        except (OSError, p.ProtocolError):
            pass
        finally:
            writer.close()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def busy_venue() -> AsyncIterator[BusyVenue]:
    v = BusyVenue()
    v.server = await asyncio.start_server(v.handle, "127.0.0.1", 0)
    try:
        yield v
    finally:
        v.server.close()


async def test_a_burst_of_orders_on_a_healthy_line_does_not_declare_it_silent(busy_venue: BusyVenue) -> None:
    guard = SilenceGuard()
    recs = {g: Recorder() for g in ("primary", "backup")}
    sessions = {
        g: PathSession(
            "g1", g, busy_venue.address, "h1", on_state=rec.on_state, on_message=rec.on_message, guard=guard
        )
        for g, rec in recs.items()
    }
    for s in sessions.values():
        await s.start()
    try:
        for rec in recs.values():
            await rec.next_status(PathState.UP)
        for i in range(BURST):
            sessions["primary"].send(p.new_order(f"b-{i}", '{"sym":"ESZ6","qty":1}'))
        async with asyncio.timeout(5):
            while busy_venue.acked < BURST:  # noqa: ASYNC110 - a count no event announces
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # noqa: ASYNC110 - the last acks are read
    finally:
        for s in sessions.values():
            await s.stop()
    downs = [f"{st.path}: {st.detail}" for rec in recs.values() for st in rec.downs() if st.cause is not None]
    assert downs == []
