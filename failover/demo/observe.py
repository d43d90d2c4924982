"""What the demo watches: every sidecar's route stream and a small order sender per host.

Route changes and outcomes are timestamped on arrival with this process's
monotonic clock; per-stage durations come from the processes that measured
them (sidecar flips, decision stages, replica and leader records).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from dataclasses import dataclass, field

import grpc
from failover_client.api import Sidecar

from failover.v1 import sidecar_pb2 as spb


@dataclass
class RouteSample:
    t: float
    effective: str
    decided: str
    epoch: tuple[int, int]
    halted: bool


@dataclass
class RouteWatch:
    host: str
    samples: list[RouteSample] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last(self) -> RouteSample | None:
        return self.samples[-1] if self.samples else None

    def first_after(self, t0: float, pred: object) -> RouteSample | None:
        for s in self.samples:
            if s.t >= t0 and pred(s):  # type: ignore[operator]
                return s
        return None


@dataclass
class Sent:
    msg_id: int
    t_sent: float
    outcome: int = 0
    path: str = ""
    t_outcome: float = 0.0
    outcomes: int = 0


class Sender:
    """Sends an order every ``interval_ms`` without waiting (pipelined, as a strategy would)."""

    def __init__(self, host: str, sidecar: Sidecar, group: str, interval_ms: float) -> None:
        self.host = host
        self.sc = sidecar
        self.group = group
        self.interval = interval_ms / 1000
        self.sent: dict[int, Sent] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[spb.Outcome]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"sender-{self.host}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        n = 0
        while True:
            n += 1
            mid, fut = self.sc.submit(self.group, f'{{"sym":"ESZ6","side":"buy","qty":1,"n":{n}}}')
            rec = self.sent[mid] = Sent(mid, time.monotonic())
            fut.add_done_callback(functools.partial(self._done, rec))
            next_t += self.interval
            await asyncio.sleep(max(0.0, next_t - loop.time()))

    @staticmethod
    def _done(rec: Sent, fut: asyncio.Future[spb.Outcome]) -> None:
        rec.outcomes += 1
        if fut.cancelled():
            return
        o = fut.result()
        rec.outcome, rec.path, rec.t_outcome = o.kind, o.path, time.monotonic()

    async def stop(self, drain_s: float = 2.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        deadline = time.monotonic() + drain_s
        while any(r.outcomes == 0 for r in self.sent.values()) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    def acked_times(self, t0: float, t1: float) -> list[float]:
        return sorted(
            r.t_outcome
            for r in self.sent.values()
            if r.outcome == spb.OUTCOME_KIND_ACKED and t0 <= r.t_outcome <= t1
        )

    def longest_ack_gap(self, t0: float, t1: float) -> float:
        """The longest interval between two consecutive acks in [t0, t1], seconds (0: fewer than two)."""
        acks = self.acked_times(t0, t1)
        return max((b - a for a, b in zip(acks, acks[1:], strict=False)), default=0.0)

    def window(self, t0: float, t1: float) -> list[Sent]:
        return [r for r in self.sent.values() if t0 <= r.t_sent <= t1]


async def watch_routes(address: str, group: str, w: RouteWatch) -> None:
    """Record every change of the host's route until cancelled (reconnects quietly)."""
    while True:
        try:
            sc = await Sidecar.connect(address, "demo-watch")
            try:
                async for r in sc.watch([group]):
                    w.samples.append(
                        RouteSample(
                            time.monotonic(),
                            r.effective_path,
                            r.decision_paths[0] if r.decision_paths else "",
                            (r.epoch.era, r.epoch.revision),
                            r.halted,
                        )
                    )
                    w.changed.set()
                    w.changed = asyncio.Event()
            finally:
                await sc.close()
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.1)
