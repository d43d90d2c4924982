"""Length-prefixed frames of the framed local relay: a 4-byte big-endian length, then that many bytes.

Pure (no I/O): the sidecar's server and the strategy library's client both cut their
byte streams with ``FrameReader`` and build frames with ``frame``. A length over the
reader's limit is refused as soon as its 4 header bytes arrive, before any of the body
is buffered, so a peer cannot make the reader hold more than one limit's worth.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024
"""Default limit of one frame's body (a relay message carries at most 8 KiB of payload)."""
MAX_EVENT_FRAME_BYTES = MAX_FRAME_BYTES + 1024
"""Limit of a frame the sidecar sends: a venue event carries a venue message of up to the
venue protocol's own 64 KiB, and its envelope (ids, path, kind) comes on top."""


class FrameError(Exception):
    """The stream is not valid framing; ``frames`` holds the frames completed before the fault."""

    def __init__(self, reason: str, frames: list[bytes]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frames = frames


def frame(body: bytes) -> bytes:
    """One frame: the length header and ``body``."""
    return HEADER.pack(len(body)) + body


class FrameReader:
    """Cuts a byte stream into frame bodies; keeps the incomplete tail for the next ``feed``.

    After a ``FrameError`` the reader is unusable (the stream has lost its framing): the
    caller closes the connection.
    """

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.max_frame = max_frame
        self._buf = b""

    @property
    def buffered(self) -> int:
        """Bytes held of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The frames ``data`` completes, in order; FrameError on a length over ``max_frame``."""
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos, n, limit, unpack = 0, len(buf), self.max_frame, HEADER.unpack_from
        while n - pos >= 4:
            (size,) = unpack(buf, pos)
            if size > limit:
                self._buf = b""
                raise FrameError(f"frame length {size} is over the {limit}-byte limit", out)
            end = pos + 4 + size
            if end > n:
                break
            out.append(buf[pos + 4 : end])
            pos = end
        self._buf = buf[pos:] if pos < n else b""
        return out
