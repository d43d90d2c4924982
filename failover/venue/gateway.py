"""One gateway of the venue: a TCP listener, its connections, its faults and counters.

A whole-gateway ``reset`` closes the listening socket as well, so new connections
are refused (ECONNREFUSED) until ``recover`` listens again on the same port; that is
what a client sees when a real gateway process dies. Per-session faults apply to one
sender's connections only, so a test can break one host's line and not another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from failover.venue.core import NotFound, VenueCore
from failover.venue.faults import FaultKind, FaultSet
from failover.venue.session import Connection
from failover.venue.stats import GatewaySnapshot, GatewayStats

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 2.0


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Gateway:
    def __init__(self, name: str, host: str, port: int, core: VenueCore) -> None:
        self.name = name
        self.host = host
        self.port = port  # the real port once started
        self.core = core
        self.faults = FaultSet()
        self.stats = GatewayStats()
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def connections(self) -> list[Connection]:
        return list(self._connections)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(lambda: Connection(self), self.host, self.port)
        except OSError as exc:
            raise OSError(f"gateway {self.name}: cannot listen on {self.address}: {exc}") from exc
        sock: socket.socket = server.sockets[0]
        self.port = sock.getsockname()[1]
        self._server = server

    async def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def stop(self) -> None:
        """Stop listening, drop every connection and wait for their tasks: nothing is left running."""
        await self._close_listener()
        conns = list(self._connections)
        for conn in conns:
            conn.abort()
        if conns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await asyncio.gather(*(c.lost for c in conns))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------ used by Connection

    def connection_opened(self, conn: Connection) -> None:
        self._connections.add(conn)
        self.stats.connections_opened += 1
        self.core.changed()

    def connection_closed(self, conn: Connection) -> None:
        self._connections.discard(conn)

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a reference to a connection's writer task so stop() can await it."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ faults

    def _check_session(self, session: str | None) -> None:
        if session is None:
            return
        known = session in self.core.known_senders or session in self.faults.sessions
        if not known:
            raise NotFound(f"session {session!r} not found: no such sender has tried to log on to this venue")

    async def inject(self, kind: FaultKind, session: str | None = None, delay_ms: int = 0) -> str:
        """Apply a fault (or recover) to the whole gateway or one sender's sessions; say what was done."""
        self._check_session(session)
        target = f"gateway {self.name}" + (f" session {session}" if session else "")
        if kind is FaultKind.RECOVER:
            if session is None and self._server is None:
                await self._listen()
            self.faults.recover(session)
            self._refresh(session)
            self.core.changed()
            return f"{target}: recovered (faults now: {', '.join(self.faults.describe()) or 'none'})"
        self.faults.apply(kind, session, delay_ms)  # ValueError for a slow fault without delay
        matching = [c for c in self._connections if session is None or c.sender == session]
        if kind is FaultKind.RESET:
            if session is None:
                await self._close_listener()
            for conn in matching:
                conn.abort()
            detail = f"closed {len(matching)} connection(s)" + (
                ", listener closed" if session is None else ""
            )
        else:
            self._refresh(session)
            detail = f"{len(matching)} connection(s) affected"
            if kind is FaultKind.SLOW:
                detail += f", +{delay_ms} ms per reply"
        log.info("%s: %s (%s)", target, kind.value, detail)
        self.core.changed()
        return f"{target}: {kind.value}: {detail}"

    def _refresh(self, session: str | None) -> None:
        for conn in list(self._connections):
            if session is None or conn.sender == session:
                conn.refresh_faults()

    # ------------------------------------------------------------ counters

    def snapshot(self) -> GatewaySnapshot:
        s = self.stats
        return GatewaySnapshot(
            name=self.name,
            address=self.address,
            listening=self.listening,
            connections_opened=s.connections_opened,
            logons=s.logons,
            logons_by_session=dict(s.logons_by_session),
            orders=s.orders,
            duplicates=s.duplicates,
            cancels=s.cancels,
            active_sessions=sum(1 for c in self._connections if c.logged_on),
            faults=self.faults.describe(),
        )
