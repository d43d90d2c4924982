"""Token buckets keyed by a string (pure: the caller passes the clock).

One bucket per key, so one source in a loop runs out of tokens while the others
keep theirs. The table is bounded: the least recently used bucket is dropped first
(a dropped key starts again with a full bucket). The coordinator limits operator
calls per caller with it (coordinator/replica.py); logging limits the lines that
outside input causes with it (failover/logs.py).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a call takes one."""

    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class PerCaller:
    """A token bucket per caller key; ``refused`` counts refusals per key."""

    def __init__(self, rate: float, burst: float, max_callers: int = 10_000) -> None:
        self.rate, self.burst, self.max_callers = rate, burst, max_callers
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.refused: dict[str, int] = {}

    def allow(self, key: str, now: float) -> bool:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = TokenBucket(self.rate, self.burst, self.burst, now)
            if len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        if b.take(now):
            return True
        if key in self.refused or len(self.refused) < self.max_callers:
            self.refused[key] = self.refused.get(key, 0) + 1
        return False
