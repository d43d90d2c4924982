"""Reading a socket into one buffer per connection, for every data-path protocol.

A plain ``asyncio.Protocol`` makes the selector transport call ``sock.recv(256 KiB)`` on
every read: CPython allocates a 256 KiB bytes object and shrinks it to what arrived.
That size is above glibc's mmap threshold, so each read maps and unmaps memory; on the
machines measured (docs/benchmarks.md, "Reading into a buffer") a 64-byte read cost about
26-28 µs that way against 4.2 µs with ``recv_into`` a buffer held by the connection, and an
asyncio echo round trip between two processes 148 µs against 49-60 µs. Every message of
the data path crosses several such reads (strategy -> sidecar -> venue and back), so the
sidecar's venue links, its framed socket, the strategy library's framed client and the
venue simulator all read through ``CopyingReader``.

``data_received`` still gets an immutable ``bytes`` copy of exactly what arrived, so the
protocols' parsing code (and anything it keeps a reference to) is unchanged: the buffer is
reused by the next read only after the copy.
"""

from __future__ import annotations

import asyncio

READ_BUFFER_BYTES = 64 * 1024
"""Per connection: below the mmap threshold, and as large as a read usually returns."""


class CopyingReader(asyncio.BufferedProtocol):
    """A ``BufferedProtocol`` that calls ``data_received(bytes)`` like a plain ``Protocol``."""

    _read_view: memoryview | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        view = self._read_view
        if view is None:  # allocated on the first read: subclasses keep their own __init__
            view = self._read_view = memoryview(bytearray(READ_BUFFER_BYTES))
        return view

    def buffer_updated(self, nbytes: int) -> None:
        view = self._read_view
        assert view is not None
        self.data_received(view[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError
