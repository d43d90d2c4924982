"""The effective route of one group on this host (pure: no I/O, no clock of its own).

A host uses the first path of the newest decision's order that is healthy *on this
host*. The state is driven by three inputs, each synchronous and cheap so it can be
property-tested and called from any event handler:

- ``on_decision(paths, epoch)``: a coordinator decision; only a strictly newer epoch
  applies (sidecar-side fencing). No paths means halt.
- ``on_health(path, healthy, now_ms)``: a local path session went up or down.
- ``tick(now_ms)``: time passed (a hold-down may have run out).

Rules, in order:

1. No decision yet: ``effective`` is None. Halt: None, ``halted`` is True.
2. Local failover off: the decision's first path, whatever its local health.
3. Cold start (no path of the order has reported any health yet): the first path.
   And for ``cold_start_grace_ms`` from the first health report or tick, while the
   decision's first path has not reported at all (still connecting), the first path
   too: both lines log on at start, and a backup that answered a few ms sooner would
   otherwise take the route and hand it back at once (two flips, the orders between
   them on the backup). A first path that reports down ends the wait at once.
4. Nothing in the order is healthy ("degraded: nothing healthy locally"): keep the
   decision's first path. Moving elsewhere would only trade one dead line for
   another, and staying put is what the coordinators expect of the host.
5. Otherwise the first healthy path, with a **hold-down** on the way back up: a path
   above the one in use is taken only once it has stayed healthy for
   ``hold_down_ms`` (a flapping primary must not drag every host back and forth).
   Going down moves away at once. Hold-down is for a path healthy *again*: one that
   turns healthy for the first time (e.g. it was still connecting at start, reported
   unhealthy or not at all) needs none, so a slow first logon on the primary does not
   leave every host on the backup for a hold-down. If the path
   in use dies and the only healthy paths are above it, still in hold-down, the
   first of them is taken at once: healthy beats stable-but-dead.
   A path that dies again within ``hold_down_ms`` of being taken back (a line that
   passes its idle checks but not the order flow: throttled, or slow beyond the
   order timeouts) doubles its next hold-down, up to ``MAX_HOLD_DOWN_DOUBLINGS``
   times; one that served longer starts again from ``hold_down_ms``, and so does
   every path when a decision changes the order (Envoy's outlier ejection grows the
   same way): the route does not go back to a path every ``hold_down_ms`` only to
   leave it again.
6. A decision that changes the order is applied at once, hold-down or not (the
   coordinators chose it knowing the fleet's health). A newer decision with the same
   order keeps any hold-down in progress: it says nothing new about this host.

A path counts healthy only after it reported healthy; a path never reported is not
healthy (but see rule 3).

Change detection: ``on_health`` and ``tick`` return True when ``effective``
changed; ``on_decision`` returns whether the decision applied. ``version`` grows on
every visible change (``effective``, ``reason``, ``halted``), so a caller that needs
to publish status can compare it before and after any call.

Time is an injected monotonic clock in milliseconds; a value lower than one already
seen is treated as the one already seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Epoch = tuple[int, int]
"""``(era, revision)``, compared lexicographically."""

MAX_HOLD_DOWN_DOUBLINGS = 5
"""A path that keeps failing right after a failback waits at most 32 x ``hold_down_ms``."""


def repeated_path(paths: Iterable[str]) -> str | None:
    """The first path listed a second time, or None: a decision names each path once."""
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            return path
        seen.add(path)
    return None


class RouteState:
    """Effective route of one group; see the module docstring for the rules."""

    def __init__(
        self, group: str, local_failover: bool = True, hold_down_ms: int = 0, cold_start_grace_ms: int = 0
    ) -> None:
        if hold_down_ms < 0 or cold_start_grace_ms < 0:
            raise ValueError(
                f"hold_down_ms and cold_start_grace_ms must be >= 0: {hold_down_ms}, {cold_start_grace_ms}"
            )
        self.group = group
        self.cold_start_grace_ms = cold_start_grace_ms
        self._first_seen_ms: float | None = None  # the first clock reading: start of the grace
        self.local_failover = local_failover
        self.hold_down_ms = hold_down_ms
        self.paths: tuple[str, ...] = ()
        self.epoch: Epoch | None = None
        self.effective: str | None = None
        self.reason = "no decision yet"
        self.version = 0
        self._health: dict[str, bool] = {}
        # When a path last turned healthy; None: its first time healthy (no hold-down).
        self._healthy_since: dict[str, float | None] = {}
        self._ever_healthy: set[str] = set()
        self._anchor: str | None = None  # the path in use, for hold-down; None: no hold-down applies
        self._now_ms: float | None = None
        self._doublings: dict[str, int] = {}  # of a path's hold-down (rule 5)
        self._failback: tuple[str, float] | None = None  # the route moved back up to (path, at)

    # ------------------------------------------------------------ outputs

    @property
    def halted(self) -> bool:
        """The newest decision is a halt (no paths): nothing may be sent."""
        return self.epoch is not None and not self.paths

    @property
    def deviates(self) -> bool:
        """The host uses another path than the decision's first (shown in status)."""
        return self.effective is not None and self.effective != self.paths[0]

    def health(self, path: str) -> bool | None:
        """Last reported health of a path; None if it never reported."""
        return self._health.get(path)

    def next_deadline_ms(self) -> float | None:
        """Earliest time at which a running hold-down ends (call ``tick`` then); None if none runs."""
        if self._now_ms is None:
            return None
        ends = [
            since + self.hold_ms(path)
            for path, since in self._healthy_since.items()
            if since is not None and self._health.get(path) and since + self.hold_ms(path) > self._now_ms
        ]
        if self._in_grace():
            assert self._first_seen_ms is not None
            ends.append(self._first_seen_ms + self.cold_start_grace_ms)
        return min(ends, default=None)

    def hold_ms(self, path: str) -> float:
        """The hold-down a path healthy again waits now (rule 5: doubled after failed failbacks)."""
        return float(self.hold_down_ms * 2 ** self._doublings.get(path, 0))

    def _in_grace(self) -> bool:
        """Still waiting for the decision's first path's first report (rule 3)?"""
        return (
            bool(self.paths)
            and self._first_seen_ms is not None
            and self._now_ms is not None
            and self._now_ms < self._first_seen_ms + self.cold_start_grace_ms
            and self.paths[0] not in self._health
        )

    # ------------------------------------------------------------ inputs

    def on_decision(self, paths: Sequence[str], epoch: Epoch) -> bool:
        """Apply a decision if its epoch is strictly newer than the one held; return whether it applied."""
        era, revision = epoch
        new_epoch = (era, revision)
        if self.epoch is not None and new_epoch <= self.epoch:
            return False
        order = tuple(paths)
        if repeated_path(order) is not None:
            raise ValueError(f"group {self.group}: decision lists a path twice: {list(order)}")
        moved = order != self.paths
        if moved:
            self._anchor = None  # an ordered move: no hold-down
        self.paths = order
        self.epoch = new_epoch
        self._recompute()
        if moved:
            # The coordinators' move, not a failback after a hold-down; and their order starts
            # every path afresh (an operator who switches back has judged the path).
            self._failback = None
            self._doublings.clear()
        return True

    def on_health(self, path: str, healthy: bool, now_ms: float) -> bool:
        """Record a path's local health; return whether ``effective`` changed.

        Paths outside the current order are remembered too: a later decision may list them.
        """
        now = self._advance(now_ms)
        if not healthy and self._failback is not None and self._failback[0] == path:
            # The path the route moved back to died: within hold_down_ms, wait longer next time.
            if now - self._failback[1] < self.hold_down_ms:
                self._doublings[path] = min(MAX_HOLD_DOWN_DOUBLINGS, self._doublings.get(path, 0) + 1)
            else:
                self._doublings.pop(path, None)
            self._failback = None
        if healthy and self._health.get(path) is not True:
            self._healthy_since[path] = now if path in self._ever_healthy else None
            self._ever_healthy.add(path)
        elif not healthy:
            self._healthy_since.pop(path, None)
        self._health[path] = healthy
        return self._recompute()

    def tick(self, now_ms: float) -> bool:
        """Let time pass (hold-downs may end); return whether ``effective`` changed."""
        self._advance(now_ms)
        return self._recompute()

    # ------------------------------------------------------------ internals

    def _advance(self, now_ms: float) -> float:
        if self._first_seen_ms is None:
            self._first_seen_ms = now_ms
        if self._now_ms is None or now_ms > self._now_ms:
            self._now_ms = now_ms
        return self._now_ms

    def _stable(self, path: str) -> bool:
        since = self._healthy_since.get(path)
        if since is None:
            return True
        return self._now_ms is not None and self._now_ms - since >= self.hold_ms(path)

    def _select(self) -> tuple[str | None, str]:
        if self.epoch is None:
            return None, "no decision yet"
        if not self.paths:
            return None, "halted by decision"
        first = self.paths[0]
        if not self.local_failover:
            return first, "decision (local failover off)"
        if not any(p in self._health for p in self.paths):
            return first, "decision (no local health yet)"
        if self._in_grace():
            return first, f"decision ({first} still logging on: waiting up to {self.cold_start_grace_ms} ms)"
        healthy = [p for p in self.paths if self._health.get(p) is True]
        if not healthy:
            return first, f"degraded: nothing healthy locally: keeping {first}"
        anchor_idx = self.paths.index(self._anchor) if self._anchor in self.paths else 0
        stable = [p for p in healthy if self.paths.index(p) >= anchor_idx or self._stable(p)]
        choice = stable[0] if stable else healthy[0]
        if choice == first:
            return first, "decision"
        first_health = self._health.get(first)
        if first_health is None:
            why = f"{first} not yet healthy locally"
        elif not first_health:
            why = f"{first} down locally"
        elif self._doublings.get(first):
            hold = self.hold_ms(first)
            why = (
                f"{first} healthy again, in hold-down ({hold:.0f} ms: it died right after its last failback)"
            )
        else:
            why = f"{first} healthy again, in hold-down"
        return choice, f"{why}: using {choice}"

    def _recompute(self) -> bool:
        before = (self.effective, self.reason)  # the reason also tells halted from not
        self.effective, self.reason = self._select()
        self._anchor = self.effective
        prev, now, eff = before[0], self._now_ms, self.effective
        if eff != prev:
            # A local move back up to a path that waited a hold-down: a failback (rule 5).
            self._failback = None
            if (
                now is not None
                and eff in self.paths
                and prev in self.paths
                and self.paths.index(eff) < self.paths.index(prev)
                and self._healthy_since.get(eff) is not None
            ):
                self._failback = (eff, now)
        if (self.effective, self.reason) != before:
            self.version += 1
        return self.effective != before[0]
