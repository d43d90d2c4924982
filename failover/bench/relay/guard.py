"""Bounded runs: a watchdog over the whole measurement, and bounded waits for readiness."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from failover.bench.relay.rig import Rig, check
from failover.bench.report import BenchFailure

STALL_S = 10.0  # no message completed for this long while measuring: abort


class Watchdog:
    """Cancels the measurement when the run exceeds its time, or nothing completes for ``STALL_S``."""

    def __init__(self, max_seconds: float, stall_s: float = STALL_S) -> None:
        self.max_seconds = max_seconds
        self.deadline = time.monotonic() + max_seconds
        self.stall_s = stall_s
        self.progress = 0
        self.phase = "starting"
        self.measuring = False
        self.reason = ""

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def guard(self, main: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(main, name="relay-bench")
        watcher = asyncio.create_task(self._watch(task), name="relay-bench-watchdog")
        try:
            await task
        except asyncio.CancelledError:
            if self.reason:
                raise BenchFailure(self.reason) from None
            raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, task: asyncio.Task[None]) -> None:
        last, since = self.progress, time.monotonic()
        while not task.done():
            await asyncio.sleep(0.25)
            now = time.monotonic()
            if self.progress != last or not self.measuring:
                last, since = self.progress, now
            if now > self.deadline:
                self.reason = f"the run exceeded --max-seconds {self.max_seconds:g} (phase: {self.phase})"
            elif now - since > self.stall_s:
                self.reason = f"no message completed for {self.stall_s:g}s (phase: {self.phase})"
            if self.reason:
                task.cancel()
                return


async def bounded(
    what: str, timeout: float, probe: Callable[[], Coroutine[Any, Any, bool]], rig: Rig
) -> None:
    """Poll ``probe`` until True, within ``timeout``; gRPC errors count as not yet."""
    end = time.monotonic() + timeout
    last = ""
    while True:
        check(rig.venue)
        check(rig.sidecar)
        if rig.metrics_sidecar is not None:
            check(rig.metrics_sidecar)
        try:
            if await probe():
                return
        except grpc.aio.AioRpcError as exc:
            last = f" (last: {exc.code().name}: {exc.details()})"
        if time.monotonic() > end:
            raise BenchFailure(f"{what}: not within {timeout:.0f}s{last}")
        await asyncio.sleep(0.05)
