"""What a rolling update is checked against: the election key in etcd and a strategy's orders.

Both run on their own event loop in their own thread, so the test's main
thread can drive the rollout with the blocking kubelet stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from failover_client import OutcomeKind, Sidecar

from coordinator.store.etcd_store import EtcdStore
from coordinator.store.types import EventKind
from failover.v1 import sidecar_pb2 as spb


class _LoopThread:
    """An asyncio loop in a daemon thread running one coroutine until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    async def run(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise AssertionError(f"{self.name} did not start within {timeout}s: {self.error!r}")

    def stop(self, timeout: float = 60.0) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"{self.name} did not stop within {timeout}s")
        if self.error is not None:
            raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.run(self._stop, self._ready.set)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()


@dataclass(frozen=True)
class LeaderEvent:
    at: float  # monotonic seconds
    leader: str | None  # replica id, None when the key was deleted (resign or expiry)
    revision: int


class LeaderWatch(_LoopThread):
    """Every change of ``<prefix>election/leader``, timestamped as this process's etcd watch sees it."""

    def __init__(self, endpoints: list[str], prefix: str) -> None:
        super().__init__("leader-watch")
        self.endpoints = endpoints
        self.key = prefix + "election/leader"
        self.events: list[LeaderEvent] = []
        self.initial: str | None = None

    async def run(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        store = EtcdStore(self.endpoints, rpc_timeout_s=2.0)
        try:
            kv, revision = await store.get(self.key)
            self.initial = json.loads(kv.value)["id"] if kv is not None else None
            async with store.watch(self.key, revision + 1) as w:
                ready()
                await _until(stop, self._consume(w))
        finally:
            await store.close()
            await asyncio.sleep(0.2)  # let gRPC deliver the cancelled watch's completions

    async def _consume(self, w: Any) -> None:
        async for batch in w:
            now = time.monotonic()
            for ev in batch.events:
                if ev.kv.key != self.key:
                    continue
                who = json.loads(ev.kv.value)["id"] if ev.kind is EventKind.PUT else None
                self.events.append(LeaderEvent(now, who, ev.kv.mod_revision))

    def leader_at(self, t: float) -> str | None:
        """The leader as of monotonic time ``t`` (None: no leader then)."""
        who = self.initial
        for ev in list(self.events):
            if ev.at > t:
                break
            who = ev.leader
        return who

    def handoffs(self, since: float, until: float) -> list[LeaderEvent]:
        """New leaders (a PUT naming another replica than the last leader) in [since, until]."""
        last = self.leader_at(since)
        out: list[LeaderEvent] = []
        for ev in list(self.events):
            if ev.at < since or ev.at > until or ev.leader is None:
                continue
            if ev.leader != last:
                out.append(ev)
            last = ev.leader
        return out


class OrderFlow(_LoopThread):
    """A strategy on each socket sending one order every ``interval_s`` until stopped.

    Every future is awaited (bounded) before the stream closes: closing would
    turn an order still waiting into IN_DOUBT and hide a lost outcome.
    """

    def __init__(self, sockets: list[str], strategy: str, group: str, interval_s: float) -> None:
        super().__init__("order-flow")
        self.sockets = sockets
        self.strategy = strategy
        self.group = group
        self.interval_s = interval_s
        self.sent = 0
        self.outcomes: Counter[str] = Counter()
        self.without_outcome = 0

    async def run(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        sidecars = [await Sidecar.connect(s, self.strategy) for s in self.sockets]
        try:
            for sc in sidecars:  # one acked order each before the rollout starts
                o = await asyncio.wait_for(sc.send(self.group, b'{"warmup":1}'), 30)
                self.sent += 1
                self.outcomes[OutcomeKind.name(o.kind)] += 1
            ready()
            pending: list[asyncio.Future[spb.Outcome]] = []
            n = 0
            while not stop.is_set():
                for sc in sidecars:
                    _, fut = sc.submit(self.group, f'{{"sym":"ESZ6","side":"buy","qty":1,"n":{n}}}')
                    pending.append(fut)
                    self.sent += 1
                    n += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
            if pending:
                done, not_done = await asyncio.wait(pending, timeout=30)
                self.without_outcome = len(not_done)
                for fut in done:
                    self.outcomes[OutcomeKind.name(fut.result().kind)] += 1
        finally:
            for sc in sidecars:
                await sc.close()


async def _until(stop: asyncio.Event, work: Awaitable[None]) -> None:
    """Run ``work`` until ``stop`` is set (then cancel it); its own errors propagate."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        task.result()
        raise AssertionError("ended before it was stopped")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
