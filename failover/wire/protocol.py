"""Wire codec of the venue simulator's framed TCP protocol (pure: no I/O, no asyncio).

The venue, its test client and the sidecar's path sessions all speak this, so the
rules live in one place. ``PROTOCOL.md`` beside this file is the full reference.

Framing
    Each frame is a 4-byte big-endian unsigned body length, then the body: one UTF-8
    JSON object, at most ``MAX_FRAME_BYTES`` (64 KiB) long. Every object has a string
    field ``"t"``, the message type. Anything else (oversized length, bad UTF-8, bad
    JSON, not an object, no ``"t"``) is a framing error: the byte stream cannot be
    trusted any more, so the receiver closes the connection.

Sessions and sequence numbers
    A client opens a session with ``logon``; the venue answers ``logon_ack`` or
    ``logon_reject``. These three carry no ``seq``. After ``logon_ack`` every message in
    either direction carries ``"seq"``, numbered per session and per direction from 1.
    The venue processes a client message only when its ``seq`` is the next one
    expected; otherwise it answers ``session_reject`` and skips it (a higher ``seq``
    still moves its expectation past it, so one gap does not wedge the session).

Messages (client -> venue)
    ``logon`` {sender, heartbeat_ms}; ``logout``; ``hb`` {id}; ``new`` {clordid,
    payload}; ``cancel`` {clordid, orig}; ``status`` {clordid}.

Messages (venue -> client)
    ``logon_ack`` {session, gateway}; ``logon_reject`` {reason}; ``hb`` {id} (the
    echo of the client's ``hb``, sent at once); ``ack`` {clordid, order_id};
    ``reject`` {clordid, reason}; ``fill`` {clordid, qty}; ``ucancel`` {clordid,
    reason}; ``status_reply`` {clordid, state, order_id?}; ``session_reject``
    {ref_seq, reason}; ``logout_ack``.

Client order ids (``clordid``) are unique across the whole venue, for orders and
cancel requests alike: a reused one is rejected whichever gateway it arrives on.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

import orjson

Message = dict[str, Any]
"""One decoded message: a JSON object whose ``"t"`` is a string."""

HEADER: Final = struct.Struct(">I")
HEADER_BYTES: Final = HEADER.size
MAX_FRAME_BYTES: Final = 64 * 1024
"""Largest body (the length field's value) either side accepts."""


class ProtocolError(Exception):
    """The byte stream or a message breaks the protocol.

    ``decoded`` holds the messages that were decoded, in order, from the same
    ``FrameDecoder.feed`` call before the bad frame, so a receiver can still act on
    them before it closes the connection.
    """

    def __init__(self, reason: str, decoded: list[Message] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.decoded: list[Message] = decoded if decoded is not None else []


class MessageError(ProtocolError):
    """A well-framed message has a missing or badly typed field (answered with ``session_reject``)."""


class MsgType(StrEnum):
    """Every message type; the value is what travels in ``"t"``."""

    # client -> venue
    LOGON = "logon"
    LOGOUT = "logout"
    HB = "hb"  # both directions: the venue echoes the client's hb
    NEW = "new"
    CANCEL = "cancel"
    STATUS = "status"
    # venue -> client
    LOGON_ACK = "logon_ack"
    LOGON_REJECT = "logon_reject"
    ACK = "ack"
    REJECT = "reject"
    FILL = "fill"
    UCANCEL = "ucancel"
    STATUS_REPLY = "status_reply"
    SESSION_REJECT = "session_reject"
    LOGOUT_ACK = "logout_ack"


CLIENT_TYPES: Final = frozenset(
    {MsgType.LOGON, MsgType.LOGOUT, MsgType.HB, MsgType.NEW, MsgType.CANCEL, MsgType.STATUS}
)
VENUE_TYPES: Final = frozenset(
    {
        MsgType.LOGON_ACK,
        MsgType.LOGON_REJECT,
        MsgType.HB,
        MsgType.ACK,
        MsgType.REJECT,
        MsgType.FILL,
        MsgType.UCANCEL,
        MsgType.STATUS_REPLY,
        MsgType.SESSION_REJECT,
        MsgType.LOGOUT_ACK,
    }
)
UNSEQUENCED_TYPES: Final = frozenset({MsgType.LOGON, MsgType.LOGON_ACK, MsgType.LOGON_REJECT})
"""Types that never carry ``seq`` (everything sent before a session exists carries none either)."""


class OrderState(StrEnum):
    """``state`` of a ``status_reply``."""

    ACKED = "acked"  # open order, or an accepted cancel request
    REJECTED = "rejected"  # a refused cancel request
    CANCELLED = "cancelled"
    FILLED = "filled"
    UNKNOWN = "unknown"


# ---------------------------------------------------------------- framing


def encode(msg: Mapping[str, Any]) -> bytes:
    """One frame (header + compact UTF-8 JSON body); ProtocolError when it cannot be sent.

    orjson, not ``json``: every order and reply passes here on both ends of a line, and
    it encodes and parses a message in about a tenth of the time (docs/benchmarks.md).
    It refuses integers beyond 64 bits, which no field of this protocol holds."""
    try:
        body = orjson.dumps(msg)
    except TypeError as exc:  # orjson.JSONEncodeError: a lone surrogate, a non-str key, a huge int
        raise ProtocolError(f"message cannot be encoded: {exc}") from exc
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME_BYTES}-byte limit")
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes | bytearray) -> Message:
    """Parse one frame body; ProtocolError unless it is a JSON object with a string ``"t"``."""
    try:
        obj = orjson.loads(body)
    except ValueError as exc:  # orjson.JSONDecodeError: bad UTF-8 or JSON, nesting past 1024
        raise ProtocolError(f"frame body is not UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"frame body is a JSON {type(obj).__name__}, not an object")
    if not isinstance(obj.get("t"), str):
        raise ProtocolError('frame body has no string field "t"')
    return obj


class FrameDecoder:
    """Incremental decoder: feed it whatever the socket gave, get whole messages back.

    Frames may be split across or merged within ``feed`` calls. After a ProtocolError
    the decoder is poisoned (every later call raises) because the stream is out of step.
    """

    __slots__ = ("_buf", "_error")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of their frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        """Add bytes; return every message now complete, in order."""
        if self._error is not None:
            raise ProtocolError(f"decoder already failed: {self._error}")
        buf = self._buf
        buf += data
        out: list[Message] = []
        pos = 0
        end = len(buf)
        try:
            while end - pos >= HEADER_BYTES:
                (length,) = HEADER.unpack_from(buf, pos)
                if length > MAX_FRAME_BYTES:
                    raise ProtocolError(f"frame length {length} exceeds the {MAX_FRAME_BYTES}-byte limit")
                if end - pos - HEADER_BYTES < length:
                    break
                start = pos + HEADER_BYTES
                out.append(decode_body(buf[start : start + length]))
                pos = start + length
        except ProtocolError as exc:
            self._error = exc.reason
            buf.clear()
            raise ProtocolError(exc.reason, out) from None
        if pos:
            del buf[:pos]
        return out


# ---------------------------------------------------------------- field access


def get_str(msg: Mapping[str, Any], field: str, *, allow_empty: bool = False) -> str:
    """A string field, or MessageError naming it."""
    value = msg.get(field)
    if not isinstance(value, str) or (not allow_empty and not value):
        kind = "a string" if allow_empty else "a non-empty string"
        raise MessageError(f"{msg.get('t')}: field {field!r} must be {kind}")
    return value


def get_int(msg: Mapping[str, Any], field: str, *, minimum: int | None = None) -> int:
    """An integer field (booleans excluded), or MessageError naming it."""
    value = msg.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise MessageError(f"{msg.get('t')}: field {field!r} must be an integer{bound}")
    return value


def get_seq(msg: Mapping[str, Any]) -> int | None:
    """The message's ``seq`` if it is a positive integer, else None."""
    value = msg.get("seq")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


# What a client may rely on in each venue message: (field, type, required). The sidecar
# checks every message it reads against this before acting on it, so a venue (or a
# line) that sends a well-framed message with a list for a clordid resets that path
# instead of raising inside the socket's callback.
VENUE_FIELDS: Final[dict[str, tuple[tuple[str, type, bool], ...]]] = {
    MsgType.LOGON_ACK: (("session", str, True), ("gateway", str, True)),
    MsgType.LOGON_REJECT: (("reason", str, True),),
    MsgType.HB: (("id", int, True),),
    MsgType.ACK: (("clordid", str, True), ("order_id", str, True)),
    MsgType.REJECT: (("clordid", str, True), ("reason", str, True)),
    MsgType.FILL: (("clordid", str, True), ("qty", int, True)),
    MsgType.UCANCEL: (("clordid", str, True), ("reason", str, True)),
    MsgType.STATUS_REPLY: (("clordid", str, True), ("state", str, True), ("order_id", str, False)),
    MsgType.SESSION_REJECT: (("ref_seq", int, True), ("reason", str, True)),
    MsgType.LOGOUT_ACK: (),
}
_ORDER_STATES: Final = frozenset(s.value for s in OrderState)


def check_from_venue(msg: Mapping[str, Any]) -> None:
    """MessageError unless ``msg`` is a venue message whose fields have their types."""
    t = msg["t"]
    fields = VENUE_FIELDS.get(t)
    if fields is None:
        raise MessageError(f"unknown message type {t[:40]!r} from the venue")
    if "seq" in msg and get_seq(msg) is None:
        raise MessageError(f"{t}: field 'seq' must be an integer >= 1")
    for name, kind, required in fields:
        value = msg.get(name)
        if value is None and not required:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise MessageError(f"{t}: field {name!r} must be {'a string' if kind is str else 'an integer'}")
    if t == MsgType.STATUS_REPLY and msg["state"] not in _ORDER_STATES:
        raise MessageError(f"status_reply: unknown state {msg['state'][:40]!r}")


class SeqTracker:
    """Client-side sequence bookkeeping for one session: stamp what is sent, check what arrives.

    Call ``reset`` when ``logon_ack`` arrives (both directions restart at 1).
    """

    __slots__ = ("in_seq", "out_seq")

    def __init__(self) -> None:
        self.out_seq = 0  # last seq sent
        self.in_seq = 0  # highest seq received

    def reset(self) -> None:
        self.out_seq = 0
        self.in_seq = 0

    def stamp(self, msg: Message) -> Message:
        """Give ``msg`` the next outgoing ``seq`` (types that carry none are left alone)."""
        if msg["t"] not in UNSEQUENCED_TYPES:
            self.out_seq += 1
            msg["seq"] = self.out_seq
        return msg

    def check(self, msg: Mapping[str, Any]) -> str | None:
        """Record an incoming message's ``seq``; describe a gap or replay, None when in order."""
        seq = get_seq(msg)
        if seq is None:
            return None if msg.get("t") in UNSEQUENCED_TYPES else f"{msg.get('t')}: missing seq"
        expected = self.in_seq + 1
        self.in_seq = max(self.in_seq, seq)
        return None if seq == expected else f"{msg.get('t')}: expected seq {expected}, got {seq}"


# ---------------------------------------------------------------- builders
# Builders return fresh dicts without "seq": the session layer stamps it on send.


def logon(sender: str, heartbeat_ms: int, slot: str = "") -> Message:
    """``slot``: the client's name for this session among its own (the sidecar's route
    group); a logon replaces the sender's older session of the same slot on that gateway."""
    msg: Message = {"t": MsgType.LOGON.value, "sender": sender, "heartbeat_ms": heartbeat_ms}
    if slot:
        msg["slot"] = slot
    return msg


def logout() -> Message:
    return {"t": MsgType.LOGOUT.value}


def hb(hb_id: int) -> Message:
    return {"t": MsgType.HB.value, "id": hb_id}


def new_order(clordid: str, payload: str = "") -> Message:
    return {"t": MsgType.NEW.value, "clordid": clordid, "payload": payload}


def cancel(clordid: str, orig: str) -> Message:
    return {"t": MsgType.CANCEL.value, "clordid": clordid, "orig": orig}


def status(clordid: str) -> Message:
    return {"t": MsgType.STATUS.value, "clordid": clordid}


def logon_ack(session: str, gateway: str) -> Message:
    return {"t": MsgType.LOGON_ACK.value, "session": session, "gateway": gateway}


def logon_reject(reason: str) -> Message:
    return {"t": MsgType.LOGON_REJECT.value, "reason": reason}


def ack(clordid: str, order_id: str) -> Message:
    return {"t": MsgType.ACK.value, "clordid": clordid, "order_id": order_id}


DUPLICATE = "duplicate clordid"  # how a reject for a clordid already used begins


def reject(clordid: str, reason: str) -> Message:
    return {"t": MsgType.REJECT.value, "clordid": clordid, "reason": reason}


def is_duplicate(msg: Message) -> bool:
    """A reject saying the venue already has this clordid (the earlier copy stands)."""
    return str(msg.get("reason", "")).startswith(DUPLICATE)


def fill(clordid: str, qty: int) -> Message:
    return {"t": MsgType.FILL.value, "clordid": clordid, "qty": qty}


def ucancel(clordid: str, reason: str) -> Message:
    return {"t": MsgType.UCANCEL.value, "clordid": clordid, "reason": reason}


def status_reply(clordid: str, state: OrderState, order_id: str | None = None) -> Message:
    msg: Message = {"t": MsgType.STATUS_REPLY.value, "clordid": clordid, "state": state.value}
    if order_id is not None:
        msg["order_id"] = order_id
    return msg


def session_reject(ref_seq: int, reason: str) -> Message:
    return {"t": MsgType.SESSION_REJECT.value, "ref_seq": ref_seq, "reason": reason}


def logout_ack() -> Message:
    return {"t": MsgType.LOGOUT_ACK.value}
