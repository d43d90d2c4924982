"""Liveness helpers of the path sessions (pure: no I/O): RTT window, bounded backoff, loop-lag guard."""

from __future__ import annotations

import math
import random
from collections import deque
from enum import StrEnum
from typing import Protocol


class RttWindow:
    """The last ``size`` round-trip times (microseconds) and their percentiles (nearest rank)."""

    def __init__(self, size: int = 200) -> None:
        if size < 1:
            raise ValueError(f"RTT window size must be >= 1, got {size}")
        self._samples: deque[float] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, rtt_us: float) -> None:
        self._samples.append(rtt_us)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0 < q <= 100) of the window; None while it is empty."""
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        rank = max(1, math.ceil(q / 100.0 * len(ordered)))
        return ordered[rank - 1]


class Heartbeats:
    """Heartbeat ids (increasing for the session's life) and send times of those in flight.

    An echo turns into an RTT sample; echoes that never come are forgotten once more
    than ``max_in_flight`` are pending, so a silent line cannot grow the map.
    """

    def __init__(self, rtt_window: int = 200, max_in_flight: int = 1024) -> None:
        self.rtt = RttWindow(rtt_window)
        self.last_id = 0
        self._sent: dict[int, float] = {}
        self._max = max_in_flight

    def sent(self, now: float) -> int:
        """Allocate the next id, sent at ``now``."""
        self.last_id += 1
        self._sent[self.last_id] = now
        if len(self._sent) > self._max:
            del self._sent[next(iter(self._sent))]
        return self.last_id

    def echoed(self, hb_id: object, now: float) -> float | None:
        """Record the echo of ``hb_id``; its RTT in microseconds, None if unknown (e.g. a stale echo)."""
        sent = self._sent.pop(hb_id, None) if isinstance(hb_id, int) else None
        if sent is None:
            return None
        rtt_us = (now - sent) * 1e6
        self.rtt.add(rtt_us)
        return rtt_us

    def clear(self) -> None:
        """Forget what is in flight (a new connection: old echoes will not come)."""
        self._sent.clear()


class Backoff:
    """Bounded exponential backoff with jitter: step n waits within [d/2, d], d = min(max, min * 2**n).

    Half the step is random so hosts that lost a gateway together do not reconnect in
    lockstep; the other half keeps the delay from collapsing to zero.
    """

    def __init__(self, min_ms: float, max_ms: float, rng: random.Random | None = None) -> None:
        if min_ms <= 0 or max_ms < min_ms:
            raise ValueError(f"backoff needs 0 < min_ms <= max_ms, got {min_ms}, {max_ms}")
        self.min_ms = min_ms
        self.max_ms = max_ms
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_ms(self) -> float:
        step = min(self.max_ms, self.min_ms * 2.0 ** min(self.attempt, 62))
        self.attempt += 1
        return step / 2 + self._rng.uniform(0, step / 2)

    def reset(self) -> None:
        self.attempt = 0


class SilenceWatcher(Protocol):
    """What the guard needs to know of a path session."""

    def silent_at(self, now: float) -> bool | None:
        """True if the line has been silent past its limit at ``now``; None when not watching one."""
        ...


class SilenceGuard:
    """Shared by every path session of a process, so a stalled event loop is not taken for dead venues.

    Two signs that silence is our own fault rather than the line's: a session's
    checker woke up late (``note_lag``: the loop was blocked, so replies may sit unread
    and heartbeats were not sent), or every watched line is silent at the same moment
    (one process cannot lose every gateway at once as easily as it can stall). On
    either sign a session probes once more and waits one more interval before it
    declares its path SILENT.
    """

    def __init__(self) -> None:
        self._members: list[SilenceWatcher] = []
        self._lag_at = -math.inf
        self.lags = 0  # lateness observations (counters for status and tests)
        self.probes = 0  # extra probes granted because of this guard

    def register(self, member: SilenceWatcher) -> None:
        if member not in self._members:
            self._members.append(member)

    def unregister(self, member: SilenceWatcher) -> None:
        if member in self._members:
            self._members.remove(member)

    def note_lag(self, at: float) -> None:
        """A checker ran late at ``at`` (clock of the sessions)."""
        self.lags += 1
        self._lag_at = max(self._lag_at, at)

    def lagged_since(self, since: float) -> bool:
        """Was the loop seen lagging at or after ``since``?"""
        return self._lag_at >= since

    @property
    def last_lag_at(self) -> float:
        """When the loop was last seen lagging (-inf: never)."""
        return self._lag_at

    def all_silent(self, now: float) -> bool:
        """Is every watched line of the process silent now? (True when the caller is the only one.)"""
        states = [m.silent_at(now) for m in self._members]
        return all(s for s in states if s is not None)


default_guard = SilenceGuard()
"""The process-wide guard used by sessions that are not given one."""


class Verdict(StrEnum):
    ALIVE = "alive"  # heard from within the limit
    PROBE = "probe"  # silent, but our own loop may be to blame: probe and wait one more interval
    WAIT = "wait"  # a probe is in progress
    SILENT = "silent"  # declare the path SILENT


class SilenceCheck:
    """Silence verdicts of one session's line, with the guard's loop-lag rules (pure; clock in seconds).

    ``verdict`` is called once per heartbeat tick. A line silent for ``silent_s`` is
    declared SILENT at once, unless the guard saw the loop lag since the last sign of
    life or every watched line is silent at once: then one probe interval is granted,
    renewed (up to ``max_probes``) only while the loop keeps lagging. Any sign of life
    calls ``alive`` and ends the probe.
    """

    def __init__(self, interval_s: float, silent_s: float, guard: SilenceGuard, max_probes: int = 3) -> None:
        self.interval_s = interval_s
        self.silent_s = silent_s
        self.guard = guard
        self.max_probes = max_probes
        self._deadline: float | None = None
        self._probe_at = 0.0
        self._probes = 0

    def alive(self) -> None:
        self._deadline = None
        self._probes = 0

    def verdict(self, now: float, last_rx: float) -> Verdict:
        if now - last_rx < self.silent_s:
            self.alive()
            return Verdict.ALIVE
        if self._deadline is None:
            if self.guard.lagged_since(last_rx) or self.guard.all_silent(now):
                return self._probe(now)
            return Verdict.SILENT
        if now < self._deadline:
            return Verdict.WAIT
        if self.guard.last_lag_at > self._probe_at and self._probes < self.max_probes:
            return self._probe(now)  # the loop lagged again during the probe: it proves nothing yet
        return Verdict.SILENT

    def _probe(self, now: float) -> Verdict:
        self._deadline = now + self.interval_s
        self._probe_at = now
        self._probes += 1
        self.guard.probes += 1
        return Verdict.PROBE
