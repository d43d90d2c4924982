"""The leader's table of path health per host: pure, clock injected.

A host not heard from is unknown, never down. Hosts whose stream ended are
kept for a grace period (the sidecar is probably reconnecting to another
replica) and then forgotten. Entries carry the replica that reported them so
a replica's full state can replace exactly what it reported before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class HostEntry:
    site: str
    replica: str
    paths: dict[tuple[str, str], PathReport] = field(default_factory=dict)
    updated_ms: float = 0.0
    gone_since_ms: float | None = None


class HealthTable:
    def __init__(self) -> None:
        self.hosts: dict[str, HostEntry] = {}
        self.version = 0  # bumps on every change, so the leader can tell "nothing new"

    def update(
        self,
        host: str,
        site: str,
        replica: str,
        paths: dict[tuple[str, str], PathReport],
        *,
        full: bool,
        now_ms: float,
    ) -> None:
        entry = self.hosts.get(host)
        if entry is None or full:
            entry = self.hosts[host] = HostEntry(site, replica, dict(paths) if full else {})
        if not full:
            entry.paths.update(paths)
        entry.site, entry.replica, entry.updated_ms, entry.gone_since_ms = site, replica, now_ms, None
        self.version += 1

    def mark_gone(self, host: str, now_ms: float) -> None:
        entry = self.hosts.get(host)
        if entry is not None and entry.gone_since_ms is None:
            entry.gone_since_ms = now_ms
            self.version += 1

    def forget_expired(self, now_ms: float, grace_ms: float) -> list[str]:
        gone = [
            h
            for h, e in self.hosts.items()
            if e.gone_since_ms is not None and now_ms - e.gone_since_ms >= grace_ms
        ]
        for h in gone:
            del self.hosts[h]
        if gone:
            self.version += 1
        return gone

    def reports(self, group: str, path: str) -> dict[str, PathReport]:
        """Hosts with a known state for this path (unknown hosts are absent)."""
        out = {}
        for host, e in self.hosts.items():
            r = e.paths.get((group, path))
            if r is not None and r.state is not State.UNKNOWN:
                out[host] = r
        return out
