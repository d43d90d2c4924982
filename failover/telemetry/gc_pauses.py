"""How long the garbage collector stopped this process: collections and pause time per generation.

A collection stops everything the process does, its event loop included: a sidecar
neither sends an order nor notices a dead path meanwhile. A gap in the order flow
that lines up with a pause here is the collector, not the network or the venue
(docs/observability.md). The callback only adds numbers: it runs at whatever
allocation triggers a collection, possibly while the metrics SDK holds one of its own
locks on this thread, so it never calls the SDK; the instruments read the numbers when
a reader collects.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

RECENT_S = 10.0  # failover.gc.pause.max: the longest pause within this window
NOTED_S = 0.001  # pauses kept for the window (shorter ones only add to the totals)


class GcPauses:
    """Totals per generation (0, 1, 2) and the recent long pauses, fed by ``gc.callbacks``."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._recent: deque[tuple[float, float]] = deque(maxlen=256)  # (monotonic end, pause s)
        self._started = 0
        self._installed = False

    def install(self) -> None:
        """Listen to this process's collections (once, however many providers are built)."""
        if not self._installed:
            self._installed = True
            gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter_ns()
        if phase == "start":
            self._started = now
        elif self._started:
            self.note(int(info.get("generation", 2)), (now - self._started) / 1e9, time.monotonic())
            self._started = 0

    def note(self, generation: int, pause_s: float, at: float) -> None:
        """One collection of ``generation`` that stopped the process for ``pause_s``, ended ``at``."""
        g = min(max(generation, 0), 2)
        self.collections[g] += 1
        self.seconds[g] += pause_s
        if pause_s >= NOTED_S:
            self._recent.append((at, pause_s))

    def longest_since(self, since: float) -> float:
        """The longest pause of at least NOTED_S that ended at or after ``since`` (monotonic s), else 0."""
        return max((p for at, p in list(self._recent) if at >= since), default=0.0)


PAUSES = GcPauses()
_GENERATIONS = ({"generation": "0"}, {"generation": "1"}, {"generation": "2"})


def observe(meter: Meter, pauses: GcPauses = PAUSES) -> None:
    """This process's collector as instruments of ``meter`` (and start listening to it)."""
    pauses.install()

    def collections(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, a) for n, a in zip(list(pauses.collections), _GENERATIONS, strict=True)]

    def seconds(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(s, a) for s, a in zip(list(pauses.seconds), _GENERATIONS, strict=True)]

    def longest(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(pauses.longest_since(time.monotonic() - RECENT_S))]

    meter.create_observable_counter(
        "failover.gc.collections",
        callbacks=[collections],
        unit="{collection}",
        description="Garbage collections of this process, by generation",
    )
    meter.create_observable_counter(
        "failover.gc.pause",
        callbacks=[seconds],
        unit="s",
        description="Time the garbage collector stopped this process, by generation",
    )
    meter.create_observable_gauge(
        "failover.gc.pause.max",
        callbacks=[longest],
        unit="s",
        description="Longest garbage-collector pause in the last 10 s (0: none of 1 ms or more)",
    )
