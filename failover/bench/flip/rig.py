"""The flip benchmark's rig: a venue and a sidecar agent with its order path, in this process.

One process, one event loop, one monotonic clock times every stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from failover.bench import pacer
from failover.bench.report import BenchFailure

if TYPE_CHECKING:  # the heavy modules are imported when a command runs, not when the CLI starts
    from failover_sidecar.agent import Agent
    from failover_sidecar.metrics import SidecarMetrics
    from failover_sidecar.orders import OrderPath

    from failover.v1 import sidecar_pb2 as spb
    from failover.venue.server import Venue

GROUP = "cme-orders"
PATHS = ("primary", "backup")
STRATEGY = "bench"
RUN_TIMEOUT_S = 10.0
ORDER_INTERVAL_S = 0.001


class FlipRig:
    """A venue and a sidecar agent with its order path, in this process, on this event loop."""

    def __init__(self, heartbeat_ms: int, venue: Venue, agent: Agent, orders: OrderPath) -> None:
        self.heartbeat_ms = heartbeat_ms
        self.venue = venue
        self.agent = agent
        self.orders = orders
        self._expiry: asyncio.Task[None] | None = None
        self._epoch = 0
        self._ids = itertools.count(1)
        self._rng = random.Random(heartbeat_ms)
        # per run
        self.armed_ns = 0
        self.flip_ns = 0
        self.ack_ns = 0
        self.sent_after_flip_ns = 0  # the strategy's first order after the flip
        self.last_primary_ack_ns = 0
        self.done = asyncio.Event()
        self.acked_primary = 0
        self.outcomes: dict[int, int] = {}  # OutcomeKind -> count
        self.changed = asyncio.Event()
        from failover.v1 import sidecar_pb2

        self._spb = sidecar_pb2  # imported once, off the timed path

    @classmethod
    async def create(
        cls,
        heartbeat_ms: int,
        workdir: Path,
        extra_gateways: tuple[str, ...] = (),
        probe_timeout_floor_ms: float | None = None,
        resend_in_doubt: bool = False,
    ) -> FlipRig:
        """``extra_gateways``: more gateways of the same venue (shared order book) for others to use;
        ``probe_timeout_floor_ms``: the sidecar's setting (its default when None);
        ``resend_in_doubt``: the sidecar's ``orders.resend_in_doubt``."""
        from failover_sidecar.agent import Agent
        from failover_sidecar.config import DataPlaneSection, OrdersSection, SidecarConfig
        from failover_sidecar.orders import OrderPath

        from failover.model.convert import group_pb
        from failover.model.spec import GroupSpec, PathSpec
        from failover.venue.config import GatewayConfig, VenueConfig
        from failover.venue.server import Venue

        venue = Venue(
            VenueConfig(
                name="bench",
                gateways=[GatewayConfig(name=p, listen="127.0.0.1:0") for p in PATHS + extra_gateways],
                control_listen="127.0.0.1:0",
            )
        )
        await venue.start()
        gws = venue.gateway_addresses
        spec = GroupSpec(name=GROUP, paths=[PathSpec(name=p, endpoints={"default": gws[p]}) for p in PATHS])
        data_plane = DataPlaneSection(
            heartbeat_interval_ms=heartbeat_ms, reconnect_min_ms=10, reconnect_max_ms=100
        )
        if probe_timeout_floor_ms is not None:
            data_plane = data_plane.model_copy(update={"probe_timeout_floor_ms": probe_timeout_floor_ms})
        cfg = SidecarConfig(
            host_id="bench",
            groups=[GROUP],
            # Never dialled: the agent is fed definitions and decisions directly.
            coordinators=["127.0.0.1:9"],
            state_file=str(workdir / f"state-{heartbeat_ms}.json"),
            strategies=[STRATEGY],
            data_plane=data_plane,
            orders=OrdersSection(resend_in_doubt=resend_in_doubt),
        )
        agent = Agent(cfg)
        rig = cls(heartbeat_ms, venue, agent, OrderPath(agent))
        rig.orders.sinks[STRATEGY] = rig._sink
        agent.route_listeners.append(rig._on_route)
        rig._expiry = asyncio.create_task(rig.orders.run(), name="order-expiry")
        await agent.start()
        agent.on_definition(group_pb(spec, 1, "default"))
        rig.decide(["primary", "backup"])
        return rig

    def order_counters(self) -> Counter[str]:
        """The order path's outcome counters (what the sidecar's ``failover.orders`` observes)."""
        return self.orders.counters

    def set_metrics(self, metrics: SidecarMetrics | None) -> None:
        """Record into ``metrics`` from now on (None: no instruments at all, as before metrics existed).

        The agent, its flip log and its order path each hold the instruments; a run with and
        one without differ in nothing else (same sockets, same event loop, same venue)."""
        self.agent.metrics = metrics
        self.agent.flip_log.metrics = metrics
        self.orders.metrics = metrics

    def decide(self, paths: list[str]) -> None:
        from failover.v1 import types_pb2 as pb

        self._epoch += 1
        d = pb.Decision(
            group=GROUP,
            paths=paths,
            epoch=pb.Epoch(era=0, revision=self._epoch),
            reason="bench",
            leader_id="bench",
        )
        self.agent.on_decision(d, [])

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        await self.agent.stop()
        await self.venue.stop()

    # ----------------------------------------------------------------- hooks

    @property
    def effective(self) -> str | None:
        r = self.agent.routes.get(GROUP)
        return None if r is None else r.effective

    def _on_route(self, group: str) -> None:
        """Every route change and every path state change of the group comes here."""
        if self.armed_ns and not self.flip_ns and self.effective == "backup":
            self.flip_ns = time.monotonic_ns()
        self.changed.set()

    def _sink(self, ev: spb.RelayEvent) -> None:
        now = time.monotonic_ns()
        o = ev.outcome
        self.outcomes[o.kind] = self.outcomes.get(o.kind, 0) + 1
        if o.kind == self._spb.OUTCOME_KIND_ACKED:
            if o.path == "backup" and self.armed_ns and not self.ack_ns:
                self.ack_ns = now
                self.done.set()
            elif o.path == "primary":
                self.acked_primary += 1
                self.last_primary_ack_ns = now
        self.changed.set()

    def submit(self) -> None:
        m = self._spb.RelayMessage(
            group=GROUP,
            client_msg_id=next(self._ids),
            kind=self._spb.MESSAGE_KIND_NEW_ORDER,
            payload=b'{"sym":"ESZ6","side":"buy","qty":1,"px":5000}',
        )
        self.orders.submit(STRATEGY, m)
        if self.flip_ns and not self.sent_after_flip_ns:
            self.sent_after_flip_ns = time.monotonic_ns()

    def both_up(self) -> bool:
        return all((s := self.agent.sessions.get((GROUP, p))) is not None and s.can_send for p in PATHS)

    async def until(self, pred: Callable[[], bool], what: str, timeout: float = RUN_TIMEOUT_S) -> None:
        """Wait, bounded, for ``pred``: re-checked on every route, path state or outcome change."""
        end = time.monotonic() + timeout
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                sessions = ", ".join(
                    f"{p}={s.status.state.value}" for (_, p), s in self.agent.sessions.items()
                )
                raise BenchFailure(
                    f"heartbeat {self.heartbeat_ms} ms: no {what} within {timeout}s "
                    f"(route {self.effective}, sessions {sessions})"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))

    def _after_flip_us(self, ns: int) -> float | None:
        """A stage measured from the strategy's first order after the flip, if it sent one first."""
        sent = self.sent_after_flip_ns
        return round(ns / 1000, 1) if sent and sent <= self.ack_ns else None

    # ----------------------------------------------------------------- one run

    async def one_run(self, fault: str) -> dict[str, Any]:
        from failover.venue.faults import FaultKind

        kind = FaultKind.RESET if fault == "reset" else FaultKind.STALL
        await self.until(lambda: self.effective == "primary" and self.both_up(), "route on primary, both up")
        self.armed_ns = self.flip_ns = self.ack_ns = self.sent_after_flip_ns = self.last_primary_ack_ns = 0
        self.done.clear()
        self.acked_primary = 0
        self.outcomes = {}
        stop = asyncio.Event()

        # One order per ms, on a timer precise to tens of µs (failover.bench.pacer): a sleep-paced
        # loop sends them 0-2 ms apart (epoll rounds its timeout up to whole milliseconds).
        sender = asyncio.create_task(pacer.paced(stop, self.submit, ORDER_INTERVAL_S), name="strategy")
        try:
            await self.until(lambda: self.acked_primary >= 3, "orders acked on primary before the fault")
            # A random phase within one heartbeat interval: the session's heartbeat ticks start
            # when its line (re)connects, which the previous run's recovery ties to this run's
            # start; without this the fault would always land at the same point of the tick.
            await pacer.sleep(self._rng.uniform(0, self.heartbeat_ms / 1000))
            flips_before = len(self.agent.flips)
            self.armed_ns = time.monotonic_ns()
            await self.venue.inject_fault("primary", None, kind)
            try:
                async with asyncio.timeout(RUN_TIMEOUT_S):
                    await self.done.wait()
            except TimeoutError:
                raise BenchFailure(
                    f"{fault}, heartbeat {self.heartbeat_ms} ms: no ack on backup within {RUN_TIMEOUT_S}s "
                    f"(route {self.effective}, outcomes by kind {self.outcomes})"
                ) from None
        finally:
            stop.set()
            await sender
        await self.until(lambda: self.orders.undelivered() == 0, "outcome for every order")
        local = [f for f in list(self.agent.flips)[flips_before:] if f.trigger == "local"]
        detail: dict[str, Any] = {
            "flip_us": round((self.flip_ns - self.armed_ns) / 1000, 1),
            "first_ack_us": round((self.ack_ns - self.armed_ns) / 1000, 1),
            # first_ack = flip + wait for the strategy's next order + that order's round trip on
            # backup; None when the first ack on backup answered an order sent before the flip
            # (one the dead path left without a reply, resent: orders.resend_in_doubt)
            "next_order_after_flip_us": self._after_flip_us(self.sent_after_flip_ns - self.flip_ns),
            "backup_round_trip_us": self._after_flip_us(self.ack_ns - self.sent_after_flip_ns),
            # the last ack on primary (negative: before the fault); to the first on backup: the gap
            "last_primary_ack_us": round((self.last_primary_ack_ns - self.armed_ns) / 1000, 1),
            "outcomes": {self._spb.OutcomeKind.Name(k): v for k, v in sorted(self.outcomes.items())},
        }
        if local:  # the agent's own measurement of the same flip, for comparison
            f = local[0]
            detail["agent"] = {
                "cause": f.cause,
                "detect_us": f.detect_us,
                "flip_us": f.flip_us,
                "first_ack_us": f.first_ack_us,
            }
        # Recover and move back: two newer decisions (an order change skips the hold-down).
        await self.venue.inject_fault("primary", None, FaultKind.RECOVER)
        await self.until(self.both_up, "primary logged on again after recover")
        self.decide(["backup", "primary"])
        self.decide(["primary", "backup"])
        await self.until(lambda: self.effective == "primary", "route back on primary")
        return detail
