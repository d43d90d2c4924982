from __future__ import annotations

import json
import struct

import pytest

from failover.wire import protocol as p


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def test_round_trip_every_builder() -> None:
    msgs = [
        p.logon("host-a", 50),
        p.logout(),
        p.hb(7),
        p.new_order("c1", "BUY 1 ESZ5 @ 5000 — ünïcode"),
        p.cancel("c2", "c1"),
        p.status("c1"),
        p.logon_ack("primary-1", "primary"),
        p.logon_reject("no"),
        p.ack("c1", "O1"),
        p.reject("c1", "duplicate"),
        p.fill("c1", 3),
        p.ucancel("c1", "venue"),
        p.status_reply("c1", p.OrderState.FILLED, "O1"),
        p.status_reply("c9", p.OrderState.UNKNOWN),
        p.session_reject(4, "bad"),
        p.logout_ack(),
    ]
    data = b"".join(p.encode(m) for m in msgs)
    assert p.FrameDecoder().feed(data) == msgs
    assert "order_id" not in msgs[13]


def test_encoding_is_compact_json_with_big_endian_length() -> None:
    data = p.encode({"t": "hb", "id": 1, "seq": 2})
    assert data[:4] == struct.pack(">I", len(data) - 4)
    assert data[4:] == b'{"t":"hb","id":1,"seq":2}'


def test_split_frames_byte_by_byte() -> None:
    msgs = [p.hb(i) for i in range(5)]
    data = b"".join(p.encode(m) for m in msgs)
    dec = p.FrameDecoder()
    out = []
    for i in range(len(data)):
        out.extend(dec.feed(data[i : i + 1]))
    assert out == msgs
    assert dec.buffered == 0


def test_merged_and_partial_frames() -> None:
    a, b, c = p.encode(p.hb(1)), p.encode(p.hb(2)), p.encode(p.hb(3))
    dec = p.FrameDecoder()
    assert dec.feed(a + b + c[:5]) == [p.hb(1), p.hb(2)]
    assert dec.buffered == 5
    assert dec.feed(c[5:]) == [p.hb(3)]


def test_oversized_length_is_refused_before_the_body_arrives() -> None:
    dec = p.FrameDecoder()
    with pytest.raises(p.ProtocolError, match="exceeds"):
        dec.feed(struct.pack(">I", p.MAX_FRAME_BYTES + 1))
    with pytest.raises(p.ProtocolError, match="already failed"):
        dec.feed(p.encode(p.hb(1)))


def test_largest_frame_passes_and_encode_refuses_larger() -> None:
    overhead = len(json.dumps(p.new_order("c", ""), separators=(",", ":")))
    big = p.new_order("c", "x" * (p.MAX_FRAME_BYTES - overhead))
    assert p.FrameDecoder().feed(p.encode(big)) == [big]
    with pytest.raises(p.ProtocolError, match="exceeds"):
        p.encode(p.new_order("c", "x" * p.MAX_FRAME_BYTES))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "not UTF-8 JSON"),
        (b"\xff\xfe{}", "not UTF-8 JSON"),
        (b"", "not UTF-8 JSON"),
        (b"[1,2]", "not an object"),
        (b'{"x":1}', 'no string field "t"'),
        (b'{"t":5}', 'no string field "t"'),
        (b"[" * 30000 + b"]" * 30000, "not UTF-8 JSON"),
    ],
)
def test_garbage_is_a_protocol_error(body: bytes, match: str) -> None:
    with pytest.raises(p.ProtocolError, match=match):
        p.FrameDecoder().feed(frame(body))


def test_messages_before_a_bad_frame_are_kept_on_the_error() -> None:
    dec = p.FrameDecoder()
    with pytest.raises(p.ProtocolError) as info:
        dec.feed(p.encode(p.hb(1)) + p.encode(p.hb(2)) + frame(b"garbage"))
    assert info.value.decoded == [p.hb(1), p.hb(2)]


def test_unencodable_message_is_a_protocol_error() -> None:
    with pytest.raises(p.ProtocolError, match="cannot be encoded"):
        p.encode({"t": "hb", "id": object()})


def test_field_helpers_name_the_field() -> None:
    msg = {"t": "new", "clordid": "", "qty": True, "seq": 0}
    with pytest.raises(p.MessageError, match="'clordid'"):
        p.get_str(msg, "clordid")
    assert p.get_str(msg, "clordid", allow_empty=True) == ""
    with pytest.raises(p.MessageError, match="'qty' must be an integer"):
        p.get_int(msg, "qty")
    with pytest.raises(p.MessageError, match=">= 1"):
        p.get_int({"t": "x", "n": 0}, "n", minimum=1)
    assert p.get_seq(msg) is None
    assert p.get_seq({"t": "hb", "seq": 3}) == 3


def test_type_sets() -> None:
    assert p.MsgType.HB in p.CLIENT_TYPES and p.MsgType.HB in p.VENUE_TYPES
    assert p.MsgType.LOGON in p.UNSEQUENCED_TYPES
    assert {t.value for t in p.MsgType} == {t.value for t in p.CLIENT_TYPES | p.VENUE_TYPES}


def test_seq_tracker() -> None:
    seq = p.SeqTracker()
    assert seq.stamp(p.logon("h", 1)) == p.logon("h", 1)  # logon carries no seq
    assert seq.stamp(p.hb(1))["seq"] == 1 and seq.stamp(p.new_order("c"))["seq"] == 2
    assert seq.check(p.logon_ack("s", "g")) is None
    assert seq.check({"t": "hb", "id": 1, "seq": 1}) is None
    assert seq.check({"t": "ack", "seq": 3}) == "ack: expected seq 2, got 3"
    assert seq.check({"t": "ack", "seq": 3}) == "ack: expected seq 4, got 3"
    assert seq.check({"t": "ack"}) == "ack: missing seq"
    seq.reset()
    assert (seq.in_seq, seq.out_seq) == (0, 0)
