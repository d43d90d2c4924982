"""Liveness helpers of the path sessions (pure: no I/O): RTT window, bounded backoff, loop-lag guard,
silence verdicts for idle lines (``SilenceCheck``) and for lines that owe replies (``ReplyWatch``)."""

from __future__ import annotations

import math
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from enum import StrEnum
from typing import Protocol


class RttWindow:
    """The last ``size`` round-trip times (microseconds) and their percentiles (nearest rank)."""

    def __init__(self, size: int = 200) -> None:
        if size < 1:
            raise ValueError(f"RTT window size must be >= 1, got {size}")
        self._samples: deque[float] = deque(maxlen=size)
        self._sorted: list[float] | None = None  # cached: read on every order deadline, changed per echo

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, rtt_us: float) -> None:
        self._samples.append(rtt_us)
        self._sorted = None

    def clear(self) -> None:
        self._samples.clear()
        self._sorted = None

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0 < q <= 100) of the window; None while it is empty."""
        if not self._samples:
            return None
        if self._sorted is None:
            self._sorted = sorted(self._samples)
        ordered = self._sorted
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
        """A new connection: forget what is in flight (old echoes will not come) and the old
        round trips. A line reconnected after its latency stepped up would otherwise be
        timed on the old connection's (the window's median), and its orders' probes declare
        it silent before its first ack can come."""
        self._sent.clear()
        self.rtt.clear()


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

    def nudge(self) -> bool:
        """Send a heartbeat now if the line is watched (another line's probe asks who else is heard)."""
        ...

    @property
    def group(self) -> str:
        """The route group the line serves."""
        ...

    @property
    def is_up(self) -> bool:
        """Usable now: connected, logged on and not declared dead."""
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
        self._heard_at = -math.inf
        self.lags = 0  # lateness observations (counters for status and tests)
        self.probes = 0  # extra probes granted because of this guard
        self.last_lag_s = 0.0  # how late the latest late checker ran (for the log)
        self.max_lag_s = 0.0

    def register(self, member: SilenceWatcher) -> None:
        if member not in self._members:
            self._members.append(member)

    def unregister(self, member: SilenceWatcher) -> None:
        if member in self._members:
            self._members.remove(member)

    def note_lag(self, at: float, late_s: float = 0.0) -> None:
        """A checker ran late (by ``late_s``) at ``at`` (clock of the sessions)."""
        self.lags += 1
        self._lag_at = max(self._lag_at, at)
        self.last_lag_s = late_s
        self.max_lag_s = max(self.max_lag_s, late_s)

    def heard(self, at: float) -> None:
        """Some line of the process received bytes at ``at``."""
        self._heard_at = max(self._heard_at, at)

    def nudge_others(self, member: SilenceWatcher) -> int:
        """``member`` probes its line: have every other line send a heartbeat now.

        An idle line heartbeats every interval (50 ms by default), so within a probe
        timeout of a few ms it would hear nothing of its own accord and every line would
        look silent; asked at once, a live line echoes within its round trip. Returns
        how many lines were asked.
        """
        return sum(1 for m in list(self._members) if m is not member and m.nudge())

    def others_up(self, member: SilenceWatcher) -> int:
        """Other lines of ``member``'s group that are up: where its orders could go instead."""
        return sum(1 for m in self._members if m is not member and m.group == member.group and m.is_up)

    def quiet_since(self, since: float) -> bool:
        """Has no line of the process received anything since ``since``? (Our stall, or the venue host's.)"""
        return self._heard_at < since

    def describe(self, now: float) -> str:
        """Loop lag as the log states it."""
        if self.lags == 0:
            return "loop lag: none seen"
        ago = (now - self._lag_at) * 1000
        return (
            f"loop lag: last {self.last_lag_s * 1000:.0f} ms late, {ago:.0f} ms ago; "
            f"max {self.max_lag_s * 1000:.0f} ms over {self.lags} lags"
        )

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

    def next_check(self, last_rx: float, extra_s: float = 0.0) -> float:
        """When the next verdict is due: the end of a probe, else the instant the limit is reached.

        The session checks then, not at its next heartbeat tick, so a silent line is
        declared at the silence limit rather than up to one interval later.
        """
        return self._deadline if self._deadline is not None else last_rx + self.silent_s + extra_s

    def verdict(self, now: float, last_rx: float, *, proven: bool = True, extra_s: float = 0.0) -> Verdict:
        """``proven=False``: a line not yet shown to answer within the limit (just logged on).

        Such a line carries nothing, so only measured loop lag excuses its silence: with
        every line slower than the limit at once, "every line is silent" would otherwise
        let each new logon's late echo land within the extra time and the line come UP.
        ``extra_s``: the allowance for the replies the line owes (``ReplyWatch.allowance_s``),
        as the order probe has it: a venue working through a burst answers nothing meanwhile.
        """
        if now - last_rx < self.silent_s + extra_s:
            self.alive()
            return Verdict.ALIVE
        if self._deadline is None:
            if self.guard.lagged_since(last_rx) or (proven and self.guard.all_silent(now)):
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


class ReplyWatch:
    """Replies a logged-on line owes (orders written, no ack or reject yet), and the verdict on its silence.

    Heartbeats alone see a stall only after ``silent_after`` intervals (150 ms at the
    defaults). A line that carries orders gives evidence much sooner: once the oldest
    unanswered order is older than ``timeout_s`` (``rtt_multiple`` x the line's RTT
    median, at least ``floor_s``), the session probes at once with a heartbeat; if the
    probe's echo (or a later heartbeat's: one line is in order) does not come within
    ``probe_timeout_s`` the line is SILENT. An answered probe proves the line, so the
    orders written before it stop counting (the venue answered after them: their
    silence is the venue's business, not the line's). Anything else heard after the
    probe went out (``heard``: the reply to an earlier order) ends the probe too: a
    line that delivers late, but within the limits, is slow, not silent; and owed
    orders count from the later of the oldest one and the last thing heard, so a
    stall is declared one order timeout + one probe timeout after the line's last
    sign of life, and a line whose replies keep coming is not probed again.
    But not for longer than ``quiet_limit_s`` (the heartbeat limit): an order owed that
    long is probed even while other replies keep coming (a throttled line delivers a
    trickle, each reply later than the one before), and then only the probe's own echo,
    which queues behind what the line holds, proves the line.

    Loop-lag guard, as for idle silence: if the loop lagged while the probe was out
    (the echo may be sitting unread), or no line of the process has heard anything
    since the probe (our own process, or the host serving every line, was starved:
    nothing singles this line out; every other line is asked at once with a heartbeat
    of its own, so a live idle line is heard within its round trip, and with no other
    line to ask nothing can excuse it), the probe is renewed (up to ``max_probes``;
    while every line is silent, until this line has been silent for ``quiet_limit_s``,
    the heartbeat limit). So silence that is not this line's own is judged on about
    the heartbeat limit, not on one probe timeout.
    Pure: the caller brings the clock (seconds).
    """

    def __init__(
        self,
        rtt: RttWindow,
        guard: SilenceGuard,
        *,
        rtt_multiple: float = 4.0,
        floor_s: float = 0.005,
        probe_floor_s: float = 0.005,
        per_owed_s: float = 0.0,
        max_probes: int = 3,
        quiet_limit_s: float = 0.0,
        alone: Callable[[], bool] | None = None,
    ) -> None:
        if rtt_multiple <= 0 or floor_s <= 0 or probe_floor_s <= 0 or per_owed_s < 0:
            raise ValueError("rtt_multiple, floor_s and probe_floor_s must be > 0, per_owed_s >= 0")
        self.rtt = rtt
        self.guard = guard
        self.rtt_multiple = rtt_multiple
        self.floor_s = floor_s
        self.probe_floor_s = probe_floor_s
        # The probe's echo queues behind what the line holds: the venue works through it first
        # (a burst of 2,000 orders kept the simulator busy ~25 ms, answering each read at once,
        # so orders written just after the probe delay its echo too): each message owed, now,
        # adds this much to the probe's wait.
        self.per_owed_s = per_owed_s
        self.max_probes = max_probes
        self.quiet_limit_s = quiet_limit_s  # while every line is silent, renew up to this much silence
        # True while no other path of the line's group is up (nowhere to flip to).
        self.alone = alone
        self._owed: OrderedDict[Hashable, float] = OrderedDict()  # token -> written at (write order)
        self._probe_id: int | None = None
        self._probe_at = 0.0
        self._probe_deadline = 0.0
        self._probes = 0
        self._others_asked = 0  # other lines asked along with the latest probe
        self._strict = False  # the probe is for an order owed past quiet_limit_s: only its echo ends it
        self._heard_at = -math.inf  # the last time anything was received on the line
        self.probes_sent = 0  # counters for status and tests
        self.probes_answered = 0
        self.probes_renewed = 0
        self.excuse = ""  # why the latest probe was renewed (for the log)

    def __len__(self) -> int:
        return len(self._owed)

    def _scaled(self, floor_s: float) -> float:
        # The median, not p99: on a loaded host a few echoes wait behind a blocked loop, and
        # a p99 window inflated by them kept the timeout near the heartbeat limit (measured:
        # 87-215 ms). Loop lag is the guard's business (the probe is renewed), not the RTT's.
        p50 = self.rtt.percentile(50)
        return floor_s if p50 is None else max(floor_s, self.rtt_multiple * p50 / 1e6)

    def timeout_s(self) -> float:
        """How long the oldest order may go unanswered before the line is probed."""
        return self._scaled(self.floor_s)

    def probe_timeout_s(self) -> float:
        """How long a probe may go unanswered before the line is declared SILENT, with nothing
        owed ahead of it (each message owed adds ``per_owed_s``)."""
        return self._scaled(self.probe_floor_s)

    @property
    def probing(self) -> bool:
        return self._probe_id is not None

    def written(self, token: Hashable, now: float) -> None:
        """A message that owes a reply was written at ``now``."""
        self._owed[token] = now

    def replied(self, token: Hashable) -> None:
        self._owed.pop(token, None)

    def clear(self) -> None:
        """A new connection: nothing is owed on it, no probe is out."""
        self._owed.clear()
        self._probe_id = None
        self._probes = 0
        self._strict = False
        self._heard_at = -math.inf

    def oldest(self) -> float | None:
        return next(iter(self._owed.values())) if self._owed else None

    def _owed_since(self) -> float | None:
        """Since when the line has owed a reply without a sign of life; None while nothing is owed."""
        oldest = self.oldest()
        if oldest is None:
            return None
        heard = self._heard_at
        if self.quiet_limit_s > 0:
            heard = min(heard, oldest + self.quiet_limit_s)  # replies to others excuse it this long
        return max(oldest, heard)

    def next_check(self) -> float | None:
        """When ``check`` must run next; None while nothing is owed and no probe is out."""
        if self._probe_id is not None:
            return self._deadline()
        since = self._owed_since()
        return None if since is None else since + self.timeout_s()

    def check(self, now: float) -> Verdict:
        """PROBE: send a heartbeat now and call ``probe_sent``. SILENT: declare the line dead."""
        if self._probe_id is not None:
            if now < self._deadline():
                return Verdict.WAIT
            below_max = self._probes < self.max_probes
            if below_max and self.guard.lagged_since(self._probe_at):
                self.excuse = "the loop lagged"  # the echo may be sitting unread: ask again
            elif (
                self._others_asked
                and self.guard.quiet_since(self._probe_at)
                and (below_max or now - self._heard_at < self.quiet_limit_s)
            ):
                # A stall of ours or of the host serving every line, not this line's: the
                # other lines were asked too (``nudge_others``) and none answered.
                self.excuse = "every line was silent"
            elif self.alone is not None and now - self._heard_at < self.quiet_limit_s and self.alone():
                # Nowhere to flip to: declaring the line dead would only turn a slow venue's
                # orders in flight into IN_DOUBT. The probe stays out; the heartbeat limit,
                # counted from the last thing heard, decides.
                self.excuse = "no other path of its group is up"
                self._probe_deadline = self._heard_at + self.quiet_limit_s
                return Verdict.WAIT
            else:
                return Verdict.SILENT
            self.guard.probes += 1
            self.probes_renewed += 1
            return Verdict.PROBE
        since = self._owed_since()
        if since is not None and now - since >= self.timeout_s():
            return Verdict.PROBE
        return Verdict.ALIVE

    def allowance_s(self) -> float:
        """``per_owed_s`` for every message the line owes now."""
        return len(self._owed) * self.per_owed_s

    def _deadline(self) -> float:
        """When the probe out is due: its timeout, plus ``per_owed_s`` for every message the
        line owes now. Written before the probe or after it: a venue that answers a whole read
        at once echoes the probe only once it has worked through the orders read with it."""
        return self._probe_deadline + self.allowance_s()

    @property
    def probe_window_s(self) -> float:
        """How long the probe out (or the latest) may go unanswered, as of now (for the log)."""
        return self._deadline() - self._probe_at

    def probe_sent(self, hb_id: int, now: float, others_asked: int = 1) -> None:
        """The probe went out, with ``others_asked`` other lines asked too (none: no line can excuse it)."""
        self._others_asked = others_asked
        oldest = self.oldest()
        self._strict = self.quiet_limit_s > 0 and oldest is not None and now - oldest >= self.quiet_limit_s
        self._probe_id = hb_id
        self._probe_at = now
        self._probe_deadline = now + self.probe_timeout_s()
        self._probes += 1
        self.probes_sent += 1

    def echoed(self, hb_id: object) -> None:
        """A heartbeat echo arrived: if it answers the probe (or comes after it), the line is proven."""
        if self._probe_id is None or not isinstance(hb_id, int) or hb_id < self._probe_id:
            return
        self._probe_id = None
        self._probes = 0
        self._strict = False
        self.probes_answered += 1
        while self._owed and next(iter(self._owed.values())) <= self._probe_at:
            self._owed.popitem(last=False)

    def heard(self, now: float) -> None:
        """Something arrived on the line at ``now`` (after ``echoed``/``replied`` for what it held).

        Heard after the probe went out, it ends the probe: the venue was alive since. The
        orders still owed are kept (only a heartbeat's echo vouches for what was written
        before it), but they count from ``now``.
        """
        self._heard_at = max(self._heard_at, now)
        if self._probe_id is not None and now > self._probe_at and not self._strict:
            self._probe_id = None
            self._probes = 0
            self.probes_answered += 1
