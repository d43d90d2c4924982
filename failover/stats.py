"""Latency statistics for the demo, the benchmarks and the tests: one class, explicit units.

Record in **nanoseconds** (``time.monotonic_ns`` differences); the HdrHistogram
holds **microseconds** (1 us .. 10 min, 3 significant digits); reports name
their unit in every key (``p50_ms``, ``p99_us``). Samples below 1 us (an event
seen before its reference instant) count in the histogram as 1 us and are kept
signed in ``samples_us`` and counted in ``clamped``.

Each distribution names the unit of its report (``unit``): ``summary()`` and
``to_json()`` give ms (control plane, flips) or us (relay round trips).
"""

from __future__ import annotations

from typing import Any, Literal

from hdrh.histogram import HdrHistogram

HIST_MIN_US = 1
HIST_MAX_US = 600_000_000  # 10 min
HIST_DIGITS = 3


class Latency:
    """One latency distribution: HdrHistogram percentiles, the exact mean, raw samples when kept."""

    def __init__(
        self,
        name: str,
        what: str = "",
        *,
        unit: Literal["ms", "us"] = "ms",
        keep_samples: bool = True,
        clamp_samples: bool = False,
    ) -> None:
        self.name = name
        self.what = what  # one line: what a sample measures, from which instant to which
        self.unit = unit
        self.keep_samples = keep_samples
        self.clamp_samples = clamp_samples  # keep samples as recorded in the histogram, not signed
        self.hist = HdrHistogram(HIST_MIN_US, HIST_MAX_US, HIST_DIGITS)
        self.samples_us: list[int] = []
        self.clamped = 0
        self.sum_ns = 0

    def record_ns(self, ns: int) -> None:
        """Record one sample (signed nanoseconds)."""
        us = round(ns / 1000)
        held = min(max(us, HIST_MIN_US), HIST_MAX_US)
        self.sum_ns += ns
        if self.keep_samples:
            self.samples_us.append(held if self.clamp_samples else us)
        if us < HIST_MIN_US:
            self.clamped += 1
        self.hist.record_value(held)

    def record_ms(self, ms: float) -> None:
        self.record_ns(round(ms * 1_000_000))

    def merge(self, other: Latency) -> None:
        self.hist.add(other.hist)
        self.sum_ns += other.sum_ns
        self.clamped += other.clamped
        if self.keep_samples:
            self.samples_us.extend(other.samples_us)

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    # --- microseconds ------------------------------------------------------------

    def percentile_us(self, pct: float) -> float | None:
        """The ``pct`` percentile (0..100) in us; None when empty."""
        return float(self.hist.get_value_at_percentile(pct)) if self.count else None

    def max_us(self) -> float | None:
        return float(self.hist.get_max_value()) if self.count else None

    def min_us(self) -> float | None:
        return float(self.hist.get_min_value()) if self.count else None

    def mean_us(self) -> float | None:
        """The exact mean of the samples (the histogram's would be bucketed)."""
        return self.sum_ns / self.count / 1000 if self.count else None

    # --- milliseconds ------------------------------------------------------------

    def ms(self, pct: float | None) -> float | None:
        """The ``pct`` percentile in ms, or the maximum when ``pct`` is None; None when empty."""
        v = self.max_us() if pct is None else self.percentile_us(pct)
        return None if v is None else v / 1000

    # --- reports -----------------------------------------------------------------

    def summary_ms(self) -> dict[str, Any]:
        """count, p50/p99/max/min/mean in ms (``{"count": 0}`` when empty)."""
        if not self.count:
            return {"count": 0}
        mean = self.mean_us()
        return {
            "count": self.count,
            "p50_ms": self.ms(50),
            "p99_ms": self.ms(99),
            "max_ms": self.ms(None),
            "min_ms": (self.min_us() or 0) / 1000,
            "mean_ms": round((mean or 0) / 1000, 3),
        }

    def summary_us(self) -> dict[str, Any]:
        """count, min/p50/p90/p99/p99.9/max/mean in us (``{"count": 0}`` when empty)."""
        if not self.count:
            return {"count": 0}
        return {
            "count": self.count,
            "min_us": self.min_us(),
            "p50_us": self.percentile_us(50),
            "p90_us": self.percentile_us(90),
            "p99_us": self.percentile_us(99),
            "p99_9_us": self.percentile_us(99.9),
            "max_us": self.max_us(),
            "mean_us": round(self.mean_us() or 0, 1),
        }

    def summary(self) -> dict[str, Any]:
        """The statistics in this distribution's unit."""
        return self.summary_ms() if self.unit == "ms" else self.summary_us()

    def to_json(self) -> dict[str, Any]:
        """What it measures, the statistics, and the raw samples (us) when kept."""
        doc: dict[str, Any] = {"what": self.what} if self.what else {}
        doc.update(self.summary())
        doc["clamped_to_1us"] = self.clamped
        if self.keep_samples:
            doc["samples_us"] = self.samples_us
        return doc
