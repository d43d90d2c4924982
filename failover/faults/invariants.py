"""The invariants of the fault tier, checked by an observer (pure: no I/O, no clock).

The checker is fed what the processes expose (each sidecar's routes with their local
path health, every order a strategy sent and its outcome, the venue's counters) and
the windows the test declares (control plane down, a data-plane fault active). It
never acts; ``violations`` grows as rules break, and ``finish`` closes the books.

Times are seconds on the caller's monotonic clock.

Routing (per host and group, "no split routing"):

1. A route with a decision names a path of that decision's order; halted or no
   decision: no path.
2. First healthy path: when a path of the order is healthy on the host, the host uses
   a healthy one, and no path above it has been seen healthy, without a break, for
   longer than ``hold_down_s + grace_s`` (a path healthy again waits out the
   hold-down; sampling adds the grace). A path that went down within ``hold_down_s``
   (+ grace) of the host moving back up to it waits a doubled one next time, up to
   32x, and one that served longer is back to ``hold_down_s``, as is every path when
   the order changes, as the sidecar does.
   Nothing healthy: any path of the order.
   "Without a break" counts breaks no poll saw: a path up at two polls whose health
   ``seq`` moved in between went down and up again (a reconnect faster than the poll
   interval, or a restarted sidecar), so it is healthy again from the later poll.
3. No host applies a decision older than one it applied (epochs never go back,
   also across a sidecar restart: it resumes from its state file).
4. Two decisions with the same epoch never differ (one order per epoch, fleet-wide).

Orders:

5. Every order a strategy sent gets exactly one outcome: none for an order never
   sent, no second one, and none missing at ``finish`` for an order older than
   ``outcome_bound_s``.
6. The venue never sees a client order id twice: no two orders share one in their
   outcomes, and the venue's duplicate counter never moves.

Static stability:

7. While the control plane is down and no data-plane fault is active (nor was within
   ``grace_s + recovery_s``), every host keeps routing, no path of its order stays
   down for longer than ``recovery_s`` (a path may blip and reconnect: it is kept
   warm), and no order gets NO_PATH.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

Epoch = tuple[int, int]
OrderKey = tuple[str, str, int]
"""``(host, strategy, client_msg_id)``."""

OUTCOMES = ("ACKED", "REJECTED", "IN_DOUBT", "NO_PATH")
MAX_DOUBLINGS = 5  # the sidecar's MAX_HOLD_DOWN_DOUBLINGS (client/failover_sidecar/route.py)


@dataclass(frozen=True)
class RouteView:
    """One host's route for one group, as the sidecar reported it at ``t``."""

    host: str
    group: str
    t: float
    effective: str  # "" when none
    paths: tuple[str, ...]
    epoch: Epoch | None  # None: no decision yet
    halted: bool = False
    health: Mapping[str, bool | None] = field(default_factory=dict)  # True up, False down, None unknown
    # Each path's health change counter on the host (``PathHealth.seq``); absent: not reported.
    seq: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    rule: int
    t: float
    where: str
    detail: str

    def __str__(self) -> str:
        return f"rule {self.rule} at {self.t:.3f}s on {self.where}: {self.detail}"


@dataclass
class Report:
    violations: list[Violation]
    outcomes: dict[str, int]
    orders_sent: int
    route_views: int
    epochs_seen: int

    @property
    def ok(self) -> bool:
        return not self.violations


class Checker:
    """Observes and judges; see the module docstring for the numbered rules."""

    def __init__(
        self,
        hold_down_s: float = 0.0,
        grace_s: float = 0.5,
        outcome_bound_s: float = 5.0,
        recovery_s: float = 3.0,
    ) -> None:
        self.hold_down_s = hold_down_s
        self.grace_s = grace_s
        self.outcome_bound_s = outcome_bound_s
        self.recovery_s = recovery_s
        self.violations: list[Violation] = []
        self._epoch: dict[tuple[str, str], Epoch] = {}
        self._orders_by_epoch: dict[tuple[str, Epoch], tuple[str, ...]] = {}
        self._healthy_since: dict[tuple[str, str, str], float] = {}
        self._down_since: dict[tuple[str, str, str], float] = {}
        self._seq: dict[tuple[str, str, str], int] = {}  # last health seq seen per path
        self._doublings: dict[tuple[str, str, str], int] = {}  # of a path's hold-down (rule 2)
        self._order: dict[tuple[str, str], tuple[str, ...]] = {}  # each route's last order seen
        self._sent: dict[OrderKey, float] = {}
        self._outcome: dict[OrderKey, str] = {}
        self._clordids: dict[str, OrderKey] = {}
        self._venue_dupes: int | None = None
        self._cp_down_since: float | None = None
        self._dp_faults = 0
        self._dp_quiet_since: float | None = 0.0
        self.route_views = 0

    def _flag(self, rule: int, t: float, where: str, detail: str) -> None:
        self.violations.append(Violation(rule, t, where, detail))

    # ------------------------------------------------------------ declared windows

    def control_plane(self, t: float, up: bool) -> None:
        """The test took the control plane down (or brought it back)."""
        self._cp_down_since = None if up else (self._cp_down_since if self._cp_down_since is not None else t)

    def data_plane_fault(self, t: float, active: bool) -> None:
        """A path fault began (or ended); windows may overlap."""
        self._dp_faults = max(0, self._dp_faults + (1 if active else -1))
        self._dp_quiet_since = t if self._dp_faults == 0 else None

    def _static_window(self, t: float) -> bool:
        """Rule 7 applies: control plane down, data plane quiet for a while."""
        if self._cp_down_since is None or self._dp_quiet_since is None:
            return False
        settled = max(self._cp_down_since, self._dp_quiet_since + self.recovery_s) + self.grace_s
        return t >= settled

    # ------------------------------------------------------------ routes

    def _hold_s(self, key: tuple[str, str, str]) -> float:
        return float(self.hold_down_s * 2 ** self._doublings.get(key, 0))

    def _died(self, key: tuple[str, str, str], since: float | None, t: float) -> None:
        """Path ``key``, healthy since ``since``, was seen to go down (or down and up) by ``t``.

        Mirrors the sidecar's doubled hold-down from health alone (a poll can miss the
        host's move back up to a path that dies within ms): a path that died within
        ``hold_down_s`` (+ grace) of the moment it could be taken back counts as a failed
        failback; one that served past that is back to the base; one that died before it
        could be taken back changes nothing."""
        if since is None:
            return
        hold = self._hold_s(key)
        eligible = since + hold
        if t < eligible - self.grace_s:
            return
        if t - eligible < self.hold_down_s + self.grace_s:
            self._doublings[key] = min(MAX_DOUBLINGS, self._doublings.get(key, 0) + 1)
        else:
            self._doublings.pop(key, None)

    def route(self, v: RouteView) -> None:
        self.route_views += 1
        where = f"{v.host}/{v.group}"
        if self._order.get((v.host, v.group), v.paths) != v.paths:  # a new order: every path afresh
            for key in [k for k in self._doublings if k[:2] == (v.host, v.group)]:
                del self._doublings[key]
        self._order[(v.host, v.group)] = v.paths
        for p in v.paths:
            key = (v.host, v.group, p)
            seq, seen = v.seq.get(p), self._seq.get(key)
            if v.health.get(p) is True:
                if seq is not None and seen is not None and seq != seen:
                    # Up at the last poll and up now, but its health changed in between: it went
                    # down and up again unseen (or the sidecar restarted). Healthy again since now.
                    self._died(key, self._healthy_since.get(key), v.t)
                    self._healthy_since[key] = v.t
                self._healthy_since.setdefault(key, v.t)
                self._down_since.pop(key, None)
            else:
                self._died(key, self._healthy_since.pop(key, None), v.t)
                self._down_since.setdefault(key, v.t)
            if seq is not None:
                self._seq[key] = seq
        # 1
        if v.epoch is None or v.halted:
            if v.effective:
                self._flag(1, v.t, where, f"uses {v.effective} with no decision or halted")
        elif v.effective not in v.paths:
            self._flag(1, v.t, where, f"uses {v.effective or 'no path'}, not in the order {list(v.paths)}")
        # 2
        healthy = [p for p in v.paths if v.health.get(p) is True]
        if v.effective in v.paths and healthy and not v.halted:
            if v.effective not in healthy:
                self._flag(2, v.t, where, f"uses {v.effective}, not healthy, while {healthy} are")
            else:
                for p in v.paths[: v.paths.index(v.effective)]:
                    since = self._healthy_since.get((v.host, v.group, p))
                    if since is not None and v.t - since > self._hold_s((v.host, v.group, p)) + self.grace_s:
                        why = f"uses {v.effective} while {p}, above it, healthy for {v.t - since:.2f}s"
                        self._flag(2, v.t, where, why)
        # 3
        if v.epoch is not None:
            held = self._epoch.get((v.host, v.group))
            if held is not None and v.epoch < held:
                self._flag(3, v.t, where, f"went back from epoch {held} to {v.epoch}")
            else:
                self._epoch[(v.host, v.group)] = v.epoch
            # 4
            known = self._orders_by_epoch.setdefault((v.group, v.epoch), v.paths)
            if known != v.paths:
                self._flag(4, v.t, where, f"epoch {v.epoch} is {list(v.paths)} here, {list(known)} elsewhere")
        # 7
        if self._static_window(v.t) and not v.halted:
            down = [
                p for p in v.paths if v.t - self._down_since.get((v.host, v.group, p), v.t) > self.recovery_s
            ]
            if not v.effective or down:
                why = (
                    f"control plane down: route {v.effective or 'none'}, down over {self.recovery_s}s: {down}"
                )
                self._flag(7, v.t, where, why)

    def applied_epoch(self, host: str, group: str) -> Epoch | None:
        return self._epoch.get((host, group))

    # ------------------------------------------------------------ orders

    def sent(self, key: OrderKey, t: float) -> None:
        if key in self._sent:
            self._flag(5, t, key[0], f"order {key} sent twice under one id")
        self._sent[key] = t

    def outcome(self, key: OrderKey, kind: str, t: float, client_order_id: str = "") -> None:
        where = key[0]
        if key not in self._sent:
            self._flag(5, t, where, f"outcome {kind} for order {key} never sent")
            return
        if key in self._outcome:
            self._flag(5, t, where, f"second outcome {kind} for order {key} (first {self._outcome[key]})")
            return
        self._outcome[key] = kind
        if client_order_id:
            other = self._clordids.setdefault(client_order_id, key)
            if other != key:
                self._flag(6, t, where, f"client order id {client_order_id} used by {other} and {key}")
        if kind == "NO_PATH" and self._static_window(t):
            self._flag(7, t, where, f"order {key} got NO_PATH while only the control plane was down")

    def venue(self, t: float, duplicates: int) -> None:
        """The venue's duplicate-client-order-id counter (all gateways)."""
        new = duplicates - (self._venue_dupes or 0)
        if new > 0:
            self._flag(6, t, "venue", f"venue saw {new} duplicate client order id(s)")
        self._venue_dupes = duplicates

    def pending(self, t: float) -> list[OrderKey]:
        """Orders without an outcome for longer than the bound."""
        return [k for k, s in self._sent.items() if k not in self._outcome and t - s > self.outcome_bound_s]

    # ------------------------------------------------------------ end

    def finish(self, t: float) -> Report:
        for k in self.pending(t):
            self._flag(5, t, k[0], f"order {k} has no outcome after {t - self._sent[k]:.1f}s")
        counts = Counter(self._outcome.values())
        outcomes = {k: counts.get(k, 0) for k in OUTCOMES}
        outcomes["pending"] = sum(1 for k in self._sent if k not in self._outcome)
        return Report(
            list(self.violations), outcomes, len(self._sent), self.route_views, len(self._orders_by_epoch)
        )
