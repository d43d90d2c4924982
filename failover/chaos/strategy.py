"""A strategy that sends orders through its host's sidecar and reports every outcome.

It uses the strategy library (``failover_client``) as a trading process would:
pipelined sends at a steady rate, one outcome per order. When the stream to the
sidecar breaks (sidecar killed or restarted), the library reports what was
waiting as IN_DOUBT and the strategy reconnects. Every send and outcome goes to
the invariant checker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import Counter
from dataclasses import dataclass, field

from failover_client.api import OutcomeKind, Sidecar

from failover.faults.invariants import Checker
from failover.v1 import sidecar_pb2 as spb


@dataclass
class Record:
    msg_id: int
    t_sent: float
    kind: str = ""
    path: str = ""
    t_outcome: float = 0.0


@dataclass
class Strategy:
    host: str
    socket: str
    checker: Checker
    group: str
    strategy_id: str = "s1"
    interval_s: float = 0.02
    records: dict[int, Record] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _sc: Sidecar | None = None
    _inflight: set[asyncio.Future[spb.Outcome]] = field(default_factory=set)

    def _key(self, mid: int) -> tuple[str, str, int]:
        return (self.host, self.strategy_id, mid)

    def _done(self, rec: Record, fut: asyncio.Future[spb.Outcome]) -> None:
        self._inflight.discard(fut)
        if fut.cancelled():
            return
        o = fut.result()
        rec.kind = OutcomeKind.name(o.kind)
        rec.path, rec.t_outcome = o.path, time.monotonic()
        self.checker.outcome(self._key(rec.msg_id), rec.kind, rec.t_outcome, o.client_order_id)

    def submit(self) -> Record:
        if self._sc is None or self._sc.closed.is_set():
            raise RuntimeError("not connected to the sidecar")
        mid, fut = self._sc.submit(
            self.group, f'{{"sym":"ESZ6","side":"buy","qty":1,"n":{len(self.records)}}}'
        )
        rec = self.records[mid] = Record(mid, time.monotonic())
        self.checker.sent(self._key(mid), rec.t_sent)
        self._inflight.add(fut)
        fut.add_done_callback(functools.partial(self._done, rec))
        return rec

    async def send_one(self, timeout: float = 10.0) -> Record:
        await self._ensure()
        rec = self.submit()
        t0 = time.monotonic()
        while not rec.kind and time.monotonic() - t0 < timeout:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return rec

    async def _ensure(self) -> None:
        if self._sc is not None and not self._sc.closed.is_set():
            return
        if self._sc is not None:
            with contextlib.suppress(Exception):
                await self._sc.close()
        self._sc = await Sidecar.connect(self.socket, self.strategy_id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            try:
                await self._ensure()
                self.submit()
            except Exception:  # sidecar down: try again next tick
                self._sc = None
            next_t = max(next_t + self.interval_s, loop.time())
            await asyncio.sleep(max(0.0, next_t - loop.time()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"strategy-{self.host}")

    async def stop(self, drain_s: float = 10.0) -> None:
        """Stop sending and wait (bounded) for the outcomes still owed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        deadline = time.monotonic() + drain_s
        while self._inflight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if self._sc is not None:
            with contextlib.suppress(Exception):
                await self._sc.close()

    async def resolve_in_doubt(self) -> dict[int, str]:
        """What the sidecar (asking the venue) now says of each order delivered IN_DOUBT:
        msg id -> ``ACKED``, ``REJECTED``, ``UNKNOWN_TO_VENUE`` or ``STILL_IN_DOUBT``."""
        ids = [r.msg_id for r in self.records.values() if r.kind == "IN_DOUBT"]
        if not ids:
            return {}
        await self._ensure()
        assert self._sc is not None
        found = await self._sc.resolve_in_doubt(self.group, ids)
        return {r.client_msg_id: spb.ResolveState.Name(r.state).removeprefix("RESOLVE_STATE_") for r in found}

    def counts(self, since: float = 0.0) -> dict[str, int]:
        c = Counter(r.kind or "pending" for r in self.records.values() if r.t_sent >= since)
        return dict(c)

    def first_ack_after(self, t0: float, path: str | None = None) -> float | None:
        ts = [
            r.t_outcome
            for r in self.records.values()
            if r.kind == "ACKED" and r.t_sent >= t0 and (path is None or r.path == path)
        ]
        return min(ts) if ts else None
