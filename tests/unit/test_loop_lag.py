"""The loop-lag monitor's arithmetic (pure: the clock is passed in)."""

from __future__ import annotations

import asyncio
import time

from failover.telemetry.loop_lag import LoopLag


def test_a_late_wake_up_is_seen_from_when_it_was_noticed() -> None:
    lag = LoopLag(interval_s=0.05)
    lag.note(10.0, 0.001)  # timer slack: not a lag
    lag.note(11.0, 0.4)
    assert lag.worst_since(10.5, now=11.01) == 0.4
    assert lag.lagged_since(10.0, 0.3, now=11.01)
    lag.note(11.5, 0.0)
    assert lag.worst_since(11.2, now=11.51) == 0.0  # noticed before: not counted since
    assert lag.max_lag_s == 0.4 and lag.recent.count == 3


def test_a_wake_up_overdue_now_counts_before_the_monitor_runs() -> None:
    """Asked right after a stall, before the monitor's own late tick has run."""
    lag = LoopLag(interval_s=0.05)
    lag.note(20.0, 0.0)
    assert lag.overdue_s(20.04) == 0.0
    assert abs(lag.worst_since(20.0, now=20.75) - 0.7) < 1e-9


async def test_the_monitor_measures_a_blocked_loop() -> None:
    lag = LoopLag(interval_s=0.01)
    task = asyncio.create_task(lag.run())
    try:
        await asyncio.sleep(0.03)
        time.sleep(0.2)  # noqa: ASYNC251 - block the loop on purpose
        await asyncio.sleep(0.03)
        assert lag.max_lag_s >= 0.1, lag.describe()
        assert "ms late" in lag.describe()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
