"""A venue line that delivers well-framed messages with the wrong field types.

Before, a message such as ``{"t": "ack", "clordid": [1]}`` raised ``TypeError`` inside
the socket's callback (asyncio logged "Fatal error: protocol.buffer_updated() call
failed" with a traceback and closed the transport, the path went down as "connection
lost: TypeError"), on every reconnect while the line kept sending it; others (a ``qty``
that is not a number, an unknown type) reached the order path as they were. Now each is a
protocol error: the path is declared DOWN (cause RESET) naming the field, what came
before it on the line is still acted on, and nothing escapes to the event loop.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from failover_sidecar.liveness import SilenceGuard
from failover_sidecar.path import PathSession
from failover_sidecar.status import Cause, PathState

from failover.wire import protocol as p
from tests.sidecar.conftest import Recorder

BAD: dict[str, dict[str, Any]] = {
    "ack with a list for clordid": {"t": "ack", "clordid": [1], "order_id": "o1"},
    "ack with an object for clordid": {"t": "ack", "clordid": {"x": 1}, "order_id": "o1"},
    "hb echo with a list for id": {"t": "hb", "id": [1]},
    "fill with a string qty": {"t": "fill", "clordid": "c1", "qty": "lots"},
    "reject with no clordid": {"t": "reject", "reason": "x"},
    "status_reply with an unknown state": {"t": "status_reply", "clordid": "c1", "state": "maybe"},
    "session_reject with a string ref_seq": {"t": "session_reject", "ref_seq": "a", "reason": "x"},
    "a seq that is not a positive integer": {"t": "hb", "id": 1, "seq": "two"},
    "an unknown type": {"t": "nonsense"},
}


class OneShotVenue:
    """Answers a logon with ``logon_ack`` and the first heartbeat with its echo (the path is UP
    then), then sends ``extra`` frames; reads the rest."""

    def __init__(self) -> None:
        self.extra: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            await reader.readexactly(n)
            writer.write(p.encode(p.logon_ack("s-1", "gw")))
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            hb = json.loads(await reader.readexactly(n))
            writer.write(p.encode({**p.hb(hb["id"]), "seq": 1}))
            for i, msg in enumerate(self.extra, start=2):
                writer.write(p.encode({"seq": i, **msg}))
            await writer.drain()
            while await reader.read(4096):
                pass
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def fake_venue() -> AsyncIterator[OneShotVenue]:
    v = OneShotVenue()
    v.server = await asyncio.start_server(v.handle, "127.0.0.1", 0)
    try:
        yield v
    finally:
        v.server.close()


def _session(venue: OneShotVenue, rec: Recorder) -> PathSession:
    return PathSession(
        "g1",
        "primary",
        venue.address,
        "h1",
        on_state=rec.on_state,
        on_message=rec.on_message,
        guard=SilenceGuard(),
        backoff_min_ms=1000,
        backoff_max_ms=1000,
    )


@pytest.mark.parametrize("case", list(BAD))
async def test_a_mistyped_venue_message_resets_the_path_and_nothing_escapes(
    case: str, fake_venue: OneShotVenue
) -> None:
    loop_errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    fine = {"t": "ucancel", "clordid": "c0", "reason": "before the bad one"}
    fake_venue.extra = [fine, BAD[case]]
    rec = Recorder()
    session = _session(fake_venue, rec)
    await session.start()
    try:
        await rec.next_status(PathState.UP)
        down = await rec.next_status(PathState.DOWN)
    finally:
        await session.stop()
        loop.set_exception_handler(None)
    assert down.cause is Cause.RESET, down
    assert "protocol error from the venue" in down.detail, down.detail
    assert [m["t"] for m in rec.messages] == ["ucancel"], "the message before the bad one is acted on, not it"
    assert loop_errors == [], loop_errors


def test_every_message_the_venue_builds_passes_the_check() -> None:
    for msg in (
        p.logon_ack("s", "gw"),
        p.logon_reject("r"),
        {**p.hb(7), "seq": 1},
        p.ack("c", "o"),
        p.reject("c", "r"),
        p.fill("c", 3),
        p.ucancel("c", "r"),
        p.status_reply("c", p.OrderState.UNKNOWN),
        p.status_reply("c", p.OrderState.ACKED, "o"),
        p.session_reject(0, "r"),
        p.logout_ack(),
    ):
        p.check_from_venue(msg)


async def test_a_session_reject_on_a_logged_on_line_resets_the_path(fake_venue: OneShotVenue) -> None:
    """The venue skipped a message of ours (a sequence gap: bytes lost inside a live
    connection; found from outside with a proxy that dropped 5 ms of the sidecar's bytes
    and kept the connection). Before, the sidecar ignored the reject and kept the session:
    the skipped orders turned IN_DOUBT 5 s later and ``ResolveInDoubt`` said
    STILL_IN_DOUBT for as long as that connection lived. Now the line is reset, as for any
    protocol error: what it carried is asked about on the other path, and the path logs on
    again (replacing the old session at the venue), after which "unknown" is final."""
    reject = {"t": "session_reject", "ref_seq": 7, "reason": "new: expected seq 3, got 7"}
    fake_venue.extra = [reject]
    rec = Recorder()
    session = _session(fake_venue, rec)
    await session.start()
    try:
        await rec.next_status(PathState.UP)
        down = await rec.next_status(PathState.DOWN, timeout=5)
    finally:
        await session.stop()
    assert down.cause is Cause.RESET, down
    assert "rejected our message seq 7" in down.detail and "expected seq 3" in down.detail, down.detail
    assert [m["t"] for m in rec.messages] == ["session_reject"], "the order path still hears of it"
