"""The venue process: one book, its gateways and the gRPC control server, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

import grpc

from failover.venue.config import VenueConfig
from failover.venue.control import start_control_server
from failover.venue.core import Delivery, EventKind, NotFound, VenueCore
from failover.venue.faults import FaultKind
from failover.venue.gateway import Gateway, format_address
from failover.venue.stats import VenueSnapshot
from failover.wire.address import parse_host_port

log = logging.getLogger(__name__)

CONTROL_STOP_GRACE_S = 0.5


class Venue:
    """Owns everything of one simulated venue; ``start`` binds, ``stop`` leaves nothing running."""

    def __init__(self, cfg: VenueConfig) -> None:
        self.config = cfg
        self.core = VenueCore(
            cfg.name, cancel_on_disconnect=cfg.cancel_on_disconnect, single_session=cfg.single_session
        )
        self.gateways: dict[str, Gateway] = {
            g.name: Gateway(g.name, g.host, g.port, self.core) for g in cfg.gateways
        }
        self._control: grpc.aio.Server | None = None
        self._control_host, self._control_port = parse_host_port(cfg.control_listen)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def gateway_addresses(self) -> dict[str, str]:
        """Gateway name -> the real bound ``host:port``."""
        return {name: gw.address for name, gw in self.gateways.items()}

    @property
    def control_address(self) -> str:
        return format_address(self._control_host, self._control_port)

    def gateway(self, name: str) -> Gateway:
        try:
            return self.gateways[name]
        except KeyError:
            known = ", ".join(self.gateways)
            raise NotFound(f"gateway {name!r} not found (known: {known})") from None

    async def start(self) -> None:
        try:
            for gw in self.gateways.values():
                await gw.start()
            self._control, self._control_port = await start_control_server(self, self.config.control_listen)
        except BaseException:
            await self.stop()
            raise
        log.info("venue %s: gateways %s, control %s", self.name, self.gateway_addresses, self.control_address)

    async def stop(self) -> None:
        control, self._control = self._control, None
        if control is not None:
            await control.stop(CONTROL_STOP_GRACE_S)
        for gw in self.gateways.values():
            await gw.stop()

    async def __aenter__(self) -> Venue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ operations (the control service uses these)

    async def inject_fault(
        self, gateway: str, session: str | None, kind: FaultKind, delay_ms: int = 0
    ) -> str:
        return await self.gateway(gateway).inject(kind, session, delay_ms)

    def send_event(self, kind: EventKind, clordid: str, qty: int = 0) -> Delivery:
        return self.core.send_event(kind, clordid, qty)

    def snapshot(self) -> VenueSnapshot:
        book = self.core.book
        return VenueSnapshot(
            name=self.name,
            gateways=[gw.snapshot() for gw in self.gateways.values()],
            orders=book.orders,
            duplicates=book.duplicates,
            open_orders=book.open_orders,
        )

    async def wait_until(self, predicate: Callable[[VenueSnapshot], bool]) -> VenueSnapshot:
        """Wait (bound it with asyncio.timeout) until the counters satisfy ``predicate``; return them."""
        await self.core.wait_until(lambda: predicate(self.snapshot()))
        return self.snapshot()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (main thread only); previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        loop.add_signal_handler(s, stop.set)
    try:
        yield
    finally:
        for s in sigs:
            loop.remove_signal_handler(s)
            prev = previous[s]
            signal.signal(s, prev if prev is not None else signal.SIG_DFL)


async def run_venue(cfg: VenueConfig, ready: Callable[[Venue], None] | None = None) -> None:
    """Run a venue until cancelled or SIGINT/SIGTERM; ``ready`` is called once everything is bound."""
    venue = Venue(cfg)
    stop = asyncio.Event()
    await venue.start()
    try:
        with _stop_on_signals(stop):
            if ready is not None:
                ready(venue)
            await stop.wait()
    finally:
        await venue.stop()
