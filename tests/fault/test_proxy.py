"""The fault proxy itself: each mode does what the fault tests rely on (fast, loopback)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from failover.faults.proxy import Link, Mode, ProxyThread


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


async def _open(link: Link) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", link.listen_port)


async def _roundtrip(r: asyncio.StreamReader, w: asyncio.StreamWriter, data: bytes, timeout: float) -> bytes:
    w.write(data)
    await w.drain()
    return await asyncio.wait_for(r.readexactly(len(data)), timeout)


async def test_pass_and_delay(echo: str) -> None:
    link = await Link("l", echo).start()
    try:
        r, w = await _open(link)
        assert await _roundtrip(r, w, b"ping", 2) == b"ping"
        link.set(Mode.PASS, delay_ms=100)
        t0 = time.monotonic()
        assert await _roundtrip(r, w, b"slow", 2) == b"slow"
        assert time.monotonic() - t0 >= 0.19  # 100 ms each way
        w.close()
    finally:
        await link.close()


async def test_stall_keeps_socket_open_and_swallows(echo: str) -> None:
    link = await Link("l", echo).start()
    try:
        r, w = await _open(link)
        quiet_r, quiet_w = await _open(link)  # sends nothing while stalled
        link.set(Mode.STALL)
        with pytest.raises(asyncio.TimeoutError):
            await _roundtrip(r, w, b"lost", 0.3)
        assert not r.at_eof()
        link.set(Mode.PASS)
        # The connection that lost bytes is reset (a TCP stream never resumes with a hole in
        # it); the one that lost nothing goes on; new connections pass.
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await _roundtrip(r, w, b"back", 2)
        assert await _roundtrip(quiet_r, quiet_w, b"kept", 2) == b"kept"
        r2, w2 = await _open(link)
        assert await _roundtrip(r2, w2, b"new", 2) == b"new"
        for writer in (w, quiet_w, w2):
            writer.close()
    finally:
        await link.close()


async def test_cut_resets_live_and_new_connections(echo: str) -> None:
    link = await Link("l", echo).start()
    try:
        r, w = await _open(link)
        assert await _roundtrip(r, w, b"x", 2) == b"x"
        link.set(Mode.CUT)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await _roundtrip(r, w, b"y", 2)
        r2, w2 = await _open(link)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await _roundtrip(r2, w2, b"z", 2)
        link.set(Mode.PASS)
        r3, w3 = await _open(link)
        assert await _roundtrip(r3, w3, b"ok", 2) == b"ok"
        w3.close()
    finally:
        await link.close()


async def test_drop_one_direction(echo: str) -> None:
    link = await Link("l", echo).start()
    try:
        r, w = await _open(link)
        link.set(Mode.DROP_DOWN)  # requests reach the echo, replies are dropped
        with pytest.raises(asyncio.TimeoutError):
            await _roundtrip(r, w, b"a", 0.3)
        link.set(Mode.DROP_UP)
        with pytest.raises(asyncio.TimeoutError):
            await _roundtrip(r, w, b"b", 0.3)
        link.set(Mode.PASS)  # this connection lost bytes: reset, as in STALL
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await _roundtrip(r, w, b"c", 2)
        r2, w2 = await _open(link)
        assert await _roundtrip(r2, w2, b"d", 2) == b"d"
        w.close()
        w2.close()
    finally:
        await link.close()


@pytest.fixture
def thread() -> Iterator[ProxyThread]:
    with ProxyThread() as t:
        yield t


def test_thread_links_survive_a_blocked_caller(thread: ProxyThread) -> None:
    """The test thread may block: the links live on their own loop."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    link = thread.add("l", f"127.0.0.1:{port}")
    c = socket.create_connection(("127.0.0.1", link.listen_port), timeout=2)
    s, _ = srv.accept()
    c.sendall(b"hello")
    s.settimeout(2)
    assert s.recv(5) == b"hello"
    thread.set("l", Mode.CUT)
    c.settimeout(2)
    with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
        c.sendall(b"x")
        if not c.recv(1):
            raise ConnectionResetError("closed without reset")
    for x in (c, s, srv):
        x.close()


def test_refuse_closes_the_port_and_listens_again(thread: ProxyThread) -> None:
    """REFUSE: connects are refused (what a dead process's port does); PASS listens again
    on the same port."""
    srv = socket.create_server(("127.0.0.1", 0))
    link = thread.add("l", f"127.0.0.1:{srv.getsockname()[1]}")
    c = socket.create_connection(("127.0.0.1", link.listen_port), timeout=2)
    deadline = time.monotonic() + 2
    while link.live == 0 and time.monotonic() < deadline:  # the proxy's loop took it
        time.sleep(0.01)
    thread.set("l", Mode.REFUSE)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", link.listen_port), timeout=2)
    c.settimeout(2)
    with pytest.raises((ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        c.sendall(b"x")
        if not c.recv(1):
            raise ConnectionResetError("closed without reset")
    thread.set("l", Mode.PASS)
    again = socket.create_connection(("127.0.0.1", link.listen_port), timeout=2)
    s, _ = srv.accept()
    for x in (c, again, s, srv):
        x.close()
