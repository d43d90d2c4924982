"""The leader's table of path health per host: pure, clock injected.

Rules:

1. A host not heard from is unknown, never down.
2. Every report carries the time it was received (on the leader's clock,
   less the time it spent being forwarded), so each path's health says how
   old it is.
3. A host's newest report wins: a report older than the one the table holds
   for that host changes nothing. Between reports of one replica, "newer" is
   that replica's sequence number of the state (a full state it was asked for
   and a delta it forwarded travel separately, so arrival order proves
   nothing); between replicas (a host that moved) it is the time received. A
   replica forwards a host's last report together with "gone" when its stream
   ends, so "gone" never hides a report; and a "gone" from the replica the
   table holds the host from stands however the leader dates it.
4. A host whose stream ended is kept for a grace period (the sidecar is
   probably reconnecting to another replica), then forgotten. A newer report
   from anywhere brings it back.
5. A report is current since a moment (the start of the leader's latest etcd
   outage, for the guard rails) if it was received since then, or if its
   host's stream is still open: a sidecar reports on change, so only a host
   whose stream ended (one that left a stale replica) may hold news the table
   lacks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum


class State(Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"
    CONNECTING = "connecting"


@dataclass(frozen=True)
class PathReport:
    state: State
    cause: str = ""
    rtt_p99_us: int = 0
    detect_us: int = 0
    # When the report that last confirmed this state was received (leader's clock, ms).
    received_ms: float = 0.0


@dataclass
class HostEntry:
    site: str
    replica: str
    paths: dict[tuple[str, str], PathReport] = field(default_factory=dict)
    updated_ms: float = 0.0  # received time of the newest report applied
    gone_since_ms: float | None = None
    seq: int = 0  # ``replica``'s sequence number of the state applied (0: not given)


class HealthTable:
    def __init__(self) -> None:
        self.hosts: dict[str, HostEntry] = {}
        self.version = 0  # bumps on every change, so the leader can tell "nothing new"
        # group -> ``version`` when any host's report on one of its paths last changed, so
        # the policy can tell which groups' health is as it last judged it.
        self.group_versions: dict[str, int] = {}

    def update(
        self,
        host: str,
        site: str,
        replica: str,
        paths: dict[tuple[str, str], PathReport],
        *,
        full: bool,
        received_ms: float,
        gone_ms: float | None = None,
        seq: int = 0,
    ) -> bool:
        """Apply one host's report; False when the table holds a newer one (rule 3).

        ``gone_ms``: the host's stream on ``replica`` ended after this report
        (its grace period runs from then). ``seq``: ``replica``'s sequence number of
        this state (0: unknown, then the time received decides).
        """
        entry = self.hosts.get(host)
        if entry is not None and entry.replica == replica and seq and entry.seq:
            if seq <= entry.seq:
                return False
        else:
            # The replica holding the host forwards its messages in order, so its "gone"
            # carries the last report it sent, however the leader dates it (an age measured
            # on two clocks jitters, and a new leader's collected state is dated when
            # collected): it stands.
            same_source_gone = gone_ms is not None and entry is not None and entry.replica == replica
            if entry is not None and received_ms < entry.updated_ms and not same_source_gone:
                return False
        if entry is None and not paths and gone_ms is not None:
            return False  # a host we never heard from stays unknown
        stamped = {k: replace(r, received_ms=received_ms) for k, r in paths.items()}
        updated_ms = max(received_ms, entry.updated_ms) if entry is not None else received_ms
        self.version += 1
        if entry is None or full:
            if entry is not None:
                self._touch(entry.paths)  # paths a full state no longer names
            entry = self.hosts[host] = HostEntry(site, replica, {})
        entry.paths.update(stamped)
        self._touch(stamped)
        entry.site, entry.replica, entry.updated_ms = site, replica, updated_ms
        entry.gone_since_ms, entry.seq = gone_ms, seq
        return True

    def _touch(self, keys: Iterable[tuple[str, str]]) -> None:
        for group, _path in keys:
            self.group_versions[group] = self.version

    def mark_gone(self, host: str, now_ms: float) -> None:
        entry = self.hosts.get(host)
        if entry is not None and entry.gone_since_ms is None:
            entry.gone_since_ms = now_ms
            self.version += 1

    def next_expiry_ms(self, grace_ms: float) -> float | None:
        """When the first host gone now is to be forgotten (None: no host is gone)."""
        gone = [e.gone_since_ms for e in self.hosts.values() if e.gone_since_ms is not None]
        return min(gone) + grace_ms if gone else None

    def forget_expired(self, now_ms: float, grace_ms: float) -> list[str]:
        gone = [
            h
            for h, e in self.hosts.items()
            if e.gone_since_ms is not None and now_ms - e.gone_since_ms >= grace_ms
        ]
        if gone:
            self.version += 1
        for h in gone:
            self._touch(self.hosts.pop(h).paths)
        return gone

    def reports(self, group: str, path: str, *, since_ms: float | None = None) -> dict[str, PathReport]:
        """Hosts with a known state for this path (unknown hosts are absent).

        ``since_ms``: only reports that are current since then (``current_since``).
        """
        out = {}
        for host, e in self.hosts.items():
            r = e.paths.get((group, path))
            if r is None or r.state is State.UNKNOWN:
                continue
            if since_ms is not None and not _current(e, r, since_ms):
                continue
            out[host] = r
        return out

    def current_since(self, since_ms: float) -> dict[str, dict[tuple[str, str], PathReport]]:
        """Every host's reports that are still known to be true since ``since_ms`` (rule 5)."""
        return {
            h: {k: r for k, r in e.paths.items() if _current(e, r, since_ms)} for h, e in self.hosts.items()
        }


def _current(entry: HostEntry, report: PathReport, since_ms: float) -> bool:
    """Rule 5: received since then, or its host's stream never ended (a sidecar reports on
    change and its stream is watched for silence, so a live stream's last report is still
    its state, however old)."""
    return report.received_ms >= since_ms or entry.gone_since_ms is None
