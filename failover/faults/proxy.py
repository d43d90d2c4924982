"""A userspace TCP proxy a test controls: delay, stall (blackhole), cut (reset), one-way drop.

One ``Link`` listens on a loopback port and forwards every connection to one
upstream. Its mode applies to live connections at once:

- ``PASS``: forward both ways (plus ``delay_ms`` added to every chunk, each way; and,
  with ``rate_up_bps`` / ``rate_down_bps``, at most that many bytes per second in that
  direction, in small chunks: a throttled line, whose backlog queues in the sockets).
- ``STALL``: sockets stay open, bytes are read and held back (a silent peer: the
  classic half-dead link). Leaving STALL releases nothing that was held, and every
  connection that lost bytes is reset then: a TCP stream never goes on with a hole
  in it (a real one retransmits or breaks), and a connection that did would carry
  corrupt frames for ever (an HTTP/2 peer answers each new call with RST_STREAM
  PROTOCOL_ERROR while the connection itself looks alive).
- ``CUT``: every live connection is reset (RST via SO_LINGER 0) and new ones are
  accepted and reset at once (a refused or broken link).
- ``DROP_UP`` / ``DROP_DOWN``: bytes from client to upstream (UP) or back (DOWN)
  are discarded; the other direction flows (an asymmetric partition). As with STALL,
  a connection that lost bytes is reset when the link passes again.
- ``REFUSE``: live connections are reset and the port stops listening, so new
  connects are refused (a dead process on a live host, or a firewall's REJECT);
  leaving REFUSE listens on the same port again (``ProxyThread.set`` does both).

``ProxyThread`` runs links on an event loop in a background thread, so a test that
blocks (``subprocess.run``, a slow assertion) never stalls the links it controls.
Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from failover.telemetry.loop_lag import LoopLag

T = TypeVar("T")
THROTTLE_CHUNK = 32  # bytes per read while a direction is throttled: a trickle, not bursts


class Mode(enum.Enum):
    PASS = "pass"
    STALL = "stall"
    CUT = "cut"
    DROP_UP = "drop_up"
    DROP_DOWN = "drop_down"
    REFUSE = "refuse"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN (a crashed peer or a middlebox reset)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    lost_bytes: bool = False  # swallowed something: reset when the link passes again

    def reset(self) -> None:
        for t in self.tasks:
            t.cancel()
        _reset(self.client)
        _reset(self.upstream)


@dataclass
class Link:
    """One proxied link: ``address`` (listen) -> ``upstream``."""

    name: str
    upstream: str
    listen_port: int = 0
    mode: Mode = Mode.PASS
    delay_ms: float = 0.0
    rate_up_bps: float = 0.0  # 0: no limit (client -> upstream)
    rate_down_bps: float = 0.0  # 0: no limit (upstream -> client)
    connections_total: int = 0
    _server: asyncio.Server | None = None
    _conns: set[_Conn] = field(default_factory=set)
    _changed: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.listen_port}"

    @property
    def live(self) -> int:
        return len(self._conns)

    async def start(self) -> Link:
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)
        self.listen_port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self._conns):
            c.reset()
        self._conns.clear()

    def set(self, mode: Mode, delay_ms: float | None = None) -> None:
        """Change the mode (and optionally the delay); CUT resets live connections now."""
        self.mode = mode
        if delay_ms is not None:
            self.delay_ms = delay_ms
        if mode in (Mode.CUT, Mode.REFUSE):
            for c in list(self._conns):
                c.reset()
            self._conns.clear()
        elif mode is Mode.PASS:
            for c in [c for c in self._conns if c.lost_bytes]:
                c.reset()
                self._conns.discard(c)
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    async def listening(self, on: bool) -> None:
        """Stop listening (connects refused) or listen again on the same port."""
        if not on and self._server is not None:
            self._server.close()
            self._server = None
        elif on and self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        if self.mode in (Mode.CUT, Mode.REFUSE):
            _reset(writer)
            return
        host, _, port = self.upstream.rpartition(":")
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            _reset(writer)
            return
        if self.mode in (Mode.CUT, Mode.REFUSE):  # set while we connected upstream
            _reset(writer)
            _reset(up_writer)
            return
        conn = _Conn(writer, up_writer)
        self._conns.add(conn)
        conn.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, Mode.DROP_UP, conn)),
            asyncio.create_task(self._pump(up_reader, writer, Mode.DROP_DOWN, conn)),
        ]

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, drop: Mode, conn: _Conn
    ) -> None:
        try:
            while True:
                rate = self.rate_up_bps if drop is Mode.DROP_UP else self.rate_down_bps
                data = await src.read(THROTTLE_CHUNK if rate > 0 else 65536)
                if not data:
                    break
                if self.delay_ms > 0:
                    await asyncio.sleep(self.delay_ms / 1000)
                if rate > 0:
                    await asyncio.sleep(len(data) / rate)
                if self.mode in (Mode.STALL, drop):
                    conn.lost_bytes = True
                    continue  # swallowed
                if self.mode in (Mode.CUT, Mode.REFUSE):
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if conn in self._conns:
                self._conns.discard(conn)
                for t in conn.tasks:
                    if t is not asyncio.current_task():
                        t.cancel()
                for w in (conn.client, conn.upstream):
                    with contextlib.suppress(Exception):
                        w.close()


class ProxyThread:
    """Links on a private event loop in a daemon thread; every method is thread-safe.

    ``lag`` measures how late that loop runs: every byte of every link waits that long,
    so a starved test process (the proxy shares its GIL and its CPU time) is told apart
    from a slow process behind a link."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self.links: dict[str, Link] = {}
        self.lag = LoopLag()
        self._lag_task = asyncio.run_coroutine_threadsafe(self.lag.run(), self._loop)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def add(self, name: str, upstream: str) -> Link:
        """Start a link to ``upstream`` on a free loopback port; returns it (``.address``)."""
        if name in self.links:
            raise ValueError(f"link {name!r} exists")
        link = self._run(Link(name, upstream).start())
        self.links[name] = link
        return link

    def set(self, name: str, mode: Mode, delay_ms: float | None = None) -> None:
        link = self.links[name]

        async def apply() -> None:
            link.set(mode, delay_ms)
            await link.listening(mode is not Mode.REFUSE)

        self._run(apply())

    def set_many(self, names: list[str], mode: Mode, delay_ms: float | None = None) -> None:
        for n in names:
            self.set(n, mode, delay_ms)

    def close(self) -> None:
        async def close_all() -> None:
            self._lag_task.cancel()
            for link in self.links.values():
                await link.close()

        with contextlib.suppress(Exception):
            self._run(close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> ProxyThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
