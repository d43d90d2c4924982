"""Counters that prove what happened at the venue, and their read-only snapshots.

Tests, the demo and the benchmark assert on these (logons per gateway and sender,
orders, duplicates, connections opened), so they are plain dataclasses that the
control service copies into protobuf and the CLI prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class GatewayStats:
    """Mutable counters of one gateway (monotonic; never reset while the venue runs)."""

    connections_opened: int = 0
    logons: int = 0
    logons_by_session: Counter[str] = field(default_factory=Counter)
    orders: int = 0  # new orders accepted on this gateway
    duplicates: int = 0  # orders or cancels refused here because the clordid was used (anywhere)
    cancels: int = 0  # orders cancelled by a request here or by cancel-on-disconnect of a session here


@dataclass(frozen=True)
class GatewaySnapshot:
    name: str
    address: str
    listening: bool
    connections_opened: int
    logons: int
    logons_by_session: dict[str, int]
    orders: int
    duplicates: int
    cancels: int
    active_sessions: int
    faults: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "listening": self.listening,
            "connections_opened": self.connections_opened,
            "logons": self.logons,
            "logons_by_session": dict(self.logons_by_session),
            "orders": self.orders,
            "duplicates": self.duplicates,
            "cancels": self.cancels,
            "active_sessions": self.active_sessions,
            "faults": list(self.faults),
        }


@dataclass(frozen=True)
class VenueSnapshot:
    name: str
    gateways: list[GatewaySnapshot]
    orders: int
    duplicates: int
    open_orders: int

    def gateway(self, name: str) -> GatewaySnapshot:
        for gw in self.gateways:
            if gw.name == name:
                return gw
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gateways": [g.to_dict() for g in self.gateways],
            "orders": self.orders,
            "duplicates": self.duplicates,
            "open_orders": self.open_orders,
        }
