"""Fuzz of the framed relay's parsers (Hypothesis, bounded; deterministic under the ``ci`` profile).

The frame reader must cut any split of a valid stream into the same frames, and refuse
an oversized length before buffering its body; the sidecar's connection handler, fed
arbitrary bytes, must never raise: it relays, refuses, or closes that connection with a
reason frame.
"""

from __future__ import annotations

import asyncio
from typing import Any

from failover_sidecar.framed import FramedConnection
from hypothesis import given, settings
from hypothesis import strategies as st

from failover.v1 import sidecar_pb2 as spb
from failover.wire.frames import FrameError, FrameReader, frame

bodies = st.lists(st.binary(max_size=300), max_size=20)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@settings(max_examples=100)
@given(bodies, st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_any_split_of_a_valid_stream_gives_the_same_frames(frames_: list[bytes], cuts: list[int]) -> None:
    data = b"".join(frame(b) for b in frames_)
    reader, got = FrameReader(max_frame=300), []
    for chunk in _split(data, cuts):
        got += reader.feed(chunk)
    assert got == frames_
    assert reader.buffered == 0


@settings(max_examples=100)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_arbitrary_bytes_give_frames_or_a_frame_error(data: bytes, cuts: list[int]) -> None:
    reader = FrameReader(max_frame=256)
    for chunk in _split(data, cuts):
        try:
            for f in reader.feed(chunk):
                assert len(f) <= 256
        except FrameError as exc:
            assert "over the 256-byte limit" in exc.reason
            return
        assert reader.buffered < 4 + 256  # never more than one frame's worth held


class _Transport:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closing = False

    def write(self, b: bytes) -> None:
        assert not self.closing, "written after close"
        self.data += b

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


class _Orders:
    def __init__(self) -> None:
        self.sinks: dict[str, Any] = {}
        self.submitted: list[spb.RelayMessage] = []

    def submit(self, sid: str, m: spb.RelayMessage) -> None:
        self.submitted.append(m)

    def attach(self, sid: str, sink: Any, replaced: Any) -> None:
        self.sinks[sid] = sink

    def detach(self, sid: str, sink: Any) -> None:
        if self.sinks.get(sid) == sink:
            del self.sinks[sid]


class _Listen:
    hello_timeout_ms = 10_000


class _Cfg:
    strategies = ["s1"]
    host_id = "h1"
    listen = _Listen()


class _Agent:
    cfg = _Cfg()


class _Server:
    def __init__(self) -> None:
        self.agent, self.orders, self.connections = _Agent(), _Orders(), set[Any]()


HELLO = frame(spb.RelayRequest(open=spb.RelayOpen(strategy_id="s1")).SerializeToString())


@settings(max_examples=60)
@given(
    st.booleans(), st.binary(max_size=1500), st.lists(st.integers(min_value=0, max_value=2000), max_size=8)
)
def test_the_connection_handler_never_raises(hello: bool, data: bytes, cuts: list[int]) -> None:
    async def run() -> None:
        server = _Server()
        conn = FramedConnection(server)  # type: ignore[arg-type]
        t = _Transport()
        conn.connection_made(t)  # type: ignore[arg-type]
        for chunk in _split((HELLO if hello else b"") + data, cuts):
            conn.data_received(chunk)
        await asyncio.sleep(0)  # the batched flush
        events = [spb.RelayEvent.FromString(f) for f in FrameReader(10**6).feed(bytes(t.data))]
        closed = [e for e in events if e.WhichOneof("kind") == "closed"]
        assert len(closed) <= 1 and (not closed or events[-1] is closed[0])  # the reason comes last
        if closed:
            assert t.closing and closed[0].closed.reason
        conn.connection_lost(None)
        assert server.orders.sinks == {}

    asyncio.run(run())
