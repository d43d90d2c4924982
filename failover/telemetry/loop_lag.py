"""How late this process's event loop runs: the evidence that tells our own slowness from a
slow peer.

A replica pushing a decision to 1,000 streams on a starved core can keep its loop busy
for hundreds of milliseconds. A read of etcd that "timed out" meanwhile may have been
answered in time and left unread: judging etcd by it would call a healthy replica stale
and send its sidecars elsewhere, adding load where there is already too much. The
monitor wakes every ``interval_s``; how much later than asked it woke is the lag. It is
also overdue *now* when its own wake-up is late (the loop is blocked at this very
moment and the monitor has not run yet), so a caller asking right after a stall gets
the right answer before the monitor's next tick.
"""

from __future__ import annotations

import asyncio
import time

from failover.stats import Latency

NOTICED_S = 0.005  # lateness below this is timer slack, not a blocked loop


class LoopLag:
    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        # Percentiles only: a sample every 50 ms kept forever would grow without bound.
        self.recent = Latency("event loop lag", "how late the monitor woke", keep_samples=False)
        self.last_tick = time.monotonic()
        self.last_lag_s = 0.0
        self.max_lag_s = 0.0
        self._late: list[tuple[float, float]] = []  # (when noticed, how late), newest last, bounded

    def note(self, now: float, late_s: float) -> None:
        """One wake-up ``late_s`` later than asked (pure: the monitor and tests call it)."""
        self.last_tick = now
        self.last_lag_s = max(0.0, late_s)
        self.max_lag_s = max(self.max_lag_s, self.last_lag_s)
        self.recent.record_ns(round(self.last_lag_s * 1e9))
        if late_s >= NOTICED_S:
            self._late.append((now, late_s))
            del self._late[:-256]

    def overdue_s(self, now: float) -> float:
        """How late the monitor's next wake-up already is (the loop is blocked right now)."""
        return max(0.0, now - self.last_tick - self.interval_s)

    def worst_since(self, since: float, now: float | None = None) -> float:
        """The largest lag seen at or after ``since`` (monotonic s), counting a wake-up
        that is overdue now."""
        now = time.monotonic() if now is None else now
        seen = max((late for at, late in self._late if at >= since), default=0.0)
        return max(seen, self.overdue_s(now))

    def lagged_since(self, since: float, threshold_s: float, now: float | None = None) -> bool:
        return self.worst_since(since, now) >= threshold_s

    def describe(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        if not self._late:
            return "event loop lag: none seen"
        at, late = self._late[-1]
        return (
            f"event loop lag: last {late * 1000:.0f} ms late, {(now - at) * 1000:.0f} ms ago; "
            f"max {self.max_lag_s * 1000:.0f} ms"
        )

    async def run(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.interval_s)
            now = time.monotonic()
            self.note(now, now - asked - self.interval_s)
