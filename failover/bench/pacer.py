"""A benchmark strategy's order pacing (one call per interval) and sleeps, on time to tens of µs.

Why not ``asyncio.sleep``: the selector rounds every epoll timeout up to a whole
millisecond, so a loop paced on sleeps sends its "one order per ms" anywhere from
0 to 2 ms apart, and that jitter lands in every gap-between-acks figure as if the
failover had caused it (measured: the next order came 0.5-1.6 ms after a flip
that took 0.2 ms). On Linux the pacing is a ``timerfd`` (nanosecond timer, its
expirations read by the event loop as a readable fd), so ticks are as precise as
the loop is free to run them; elsewhere it falls back to the deadline-paced sleep.

Ticks the loop could not run on time are caught up (the timer counts them): the
rate stays one per interval on average, as with the deadline loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd(interval_s: float, *, periodic: bool = True) -> int | None:
    """A non-blocking timerfd firing in ``interval_s`` (and every ``interval_s`` after, if
    ``periodic``); None where unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    ns = max(1, round(interval_s * 1e9))
    ts = _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)
    spec = _Itimerspec(ts if periodic else _Timespec(0, 0), ts)
    if libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
        os.close(fd)
        return None
    return fd


async def paced(stop: asyncio.Event, send: Callable[[], object], interval_s: float) -> None:
    """Call ``send`` now and then every ``interval_s`` until ``stop`` is set."""
    send()
    fd = _timerfd(interval_s)
    if fd is None:
        await _sleep_paced(stop, send, interval_s)
        return
    loop = asyncio.get_running_loop()

    def tick() -> None:
        try:
            n = int.from_bytes(os.read(fd, 8), sys.byteorder)
        except BlockingIOError:
            return
        for _ in range(n):
            if stop.is_set():
                return
            send()

    loop.add_reader(fd, tick)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)


async def _sleep_paced(stop: asyncio.Event, send: Callable[[], object], interval_s: float) -> None:
    due = time.monotonic() + interval_s
    while not stop.is_set():
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if stop.is_set():
            return
        send()
        due += interval_s


async def sleep(delay_s: float) -> None:
    """``asyncio.sleep`` to tens of µs rather than to the next whole millisecond.

    A benchmark injects its fault at a random phase with this: slept with
    ``asyncio.sleep`` the fault lands just after a pacer tick every time (both wake
    on the same millisecond grid), always catching an order in flight.
    """
    fd = _timerfd(delay_s, periodic=False) if delay_s > 0 else None
    if fd is None:
        await asyncio.sleep(delay_s)
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def fired() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, fired)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
