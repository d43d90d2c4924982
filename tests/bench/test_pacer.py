"""The benchmark strategy's pacer: one send per interval, stopped on request, precise sleeps."""

from __future__ import annotations

import asyncio
import statistics
import time

from failover.bench import pacer


async def test_paced_sends_once_per_interval_and_stops() -> None:
    stop = asyncio.Event()
    sent: list[int] = []
    task = asyncio.create_task(pacer.paced(stop, lambda: sent.append(time.monotonic_ns()), 0.001))
    await asyncio.sleep(0.1)
    stop.set()
    async with asyncio.timeout(2):
        await task
    n = len(sent)
    assert 30 <= n <= 130, n  # one per ms on average, caught up when the loop is late
    await asyncio.sleep(0.02)
    assert len(sent) == n  # nothing after stop


async def test_paced_is_not_on_the_millisecond_grid_of_epoll() -> None:
    """At a 0.7 ms interval the median spacing is 0.7 ms; a sleep-paced loop (epoll rounds
    each timeout up to a whole ms) sends one, sleeps 1 ms, sends two: median near 0 or 1 ms."""
    stop = asyncio.Event()
    sent: list[int] = []
    task = asyncio.create_task(pacer.paced(stop, lambda: sent.append(time.monotonic_ns()), 0.0007))
    await asyncio.sleep(0.2)
    stop.set()
    async with asyncio.timeout(2):
        await task
    gaps = [(b - a) / 1e6 for a, b in zip(sent, sent[1:], strict=False)]
    assert 0.45 <= statistics.median(gaps) <= 0.95, statistics.median(gaps)


async def test_sleep_waits_at_least_the_delay() -> None:
    for delay in (0.0, 0.0003, 0.004):
        t = time.monotonic()
        async with asyncio.timeout(2):
            await pacer.sleep(delay)
        assert time.monotonic() - t >= delay
