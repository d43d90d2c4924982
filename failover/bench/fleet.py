"""What the fan-out benchmarks' client fleets share: S receivers in this process, each
recording when it first sees each revision, opened in batches and closed together."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import grpc

from failover.bench.common import BenchFailure


class Fleet:
    """Arrivals per revision, readiness while opening, and teardown of calls and channels."""

    what = "receiver"
    ready_phrase = "were ready"  # "only 10/5000 streams got their snapshot" (growth classifies it)

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrivals: dict[int, list[int]] = {}  # revision -> monotonic ns per receiver
        self.errors: dict[int, str] = {}
        self.ready = 0
        self._ready_event = asyncio.Event()
        self._complete: dict[int, asyncio.Event] = {}
        self._channels: list[grpc.aio.Channel] = []
        self._calls: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connections(self) -> int:
        """HTTP/2 connections (channels) the receivers use."""
        return len(self._channels)

    def _name(self, i: int) -> str:
        return f"{self.what} {i}"

    def _is_ready(self) -> None:
        self.ready += 1
        self._ready_event.set()

    def _arrived(self, rev: int, t_ns: int) -> list[int]:
        """Record one receiver's first sight of ``rev``; returns that revision's arrivals."""
        lst = self.arrivals.setdefault(rev, [])
        lst.append(t_ns)
        if len(lst) >= self.n and (done := self._complete.get(rev)) is not None:
            done.set()
        return lst

    async def _until_ready(self, count: int, end: float, timeout: float) -> None:
        while self.ready < count:
            if self.errors:
                i, e = next(iter(self.errors.items()))
                raise BenchFailure(f"{self._name(i)} failed while opening: {e}")
            left = end - time.monotonic()
            if left <= 0:
                raise BenchFailure(
                    f"only {self.ready}/{self.n} {self.what}s {self.ready_phrase} within {timeout}s"
                )
            self._ready_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready_event.wait(), min(left, 0.5))

    async def _await_all(self, rev: int, timeout: float) -> list[int]:
        """The arrivals of ``rev`` once every receiver has it, or fewer after ``timeout``."""
        if len(self.arrivals.get(rev, ())) < self.n:
            ev = self._complete.setdefault(rev, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), timeout)
            self._complete.pop(rev, None)
        return self.arrivals.get(rev, [])

    async def close(self) -> None:
        for call in self._calls:
            call.cancel()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        for ch in self._channels:
            with contextlib.suppress(Exception):
                await ch.close(None)
