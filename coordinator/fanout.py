"""What to send to sidecars, encoded once: decisions, definitions, heartbeats.

Each committed decision is serialised once per replica, each definition once
per site, each heartbeat once per tick; every stream then writes the same
bytes through a pass-through serialiser. A snapshot is stitched together from
those pre-encoded pieces with protobuf's length-delimited wire format, so a
reconnecting sidecar costs no re-encoding either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coordinator.core.epoch_proof import prove
from coordinator.view import ClusterView
from failover.model.convert import decision_pb, group_pb
from failover.model.spec import DecisionRecord, Epoch
from failover.v1 import sync_pb2

# Field numbers in failover.v1.ReplicaMessage and failover.v1.Snapshot.
_RM_SNAPSHOT, _RM_GROUP, _RM_DECISION, _RM_HEARTBEAT = 1, 2, 3, 4
_SNAP_GROUPS, _SNAP_DECISIONS, _SNAP_FRESHNESS, _SNAP_REPLACE_HELD, _SNAP_UNKNOWN = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class SnapshotGroup:
    """One group's part of a snapshot, pre-encoded (None: nothing to send for it)."""

    name: str
    definition: bytes | None
    decision: bytes | None
    replace_held: bool = False


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2)."""
    return _varint((num << 3) | 2) + _varint(len(payload)) + payload


@dataclass(frozen=True)
class EncodedDecision:
    epoch: Epoch
    body: bytes  # a serialised failover.v1.Decision
    message: bytes  # the ReplicaMessage carrying it
    paths: tuple[str, ...]
    signed: bool = False  # carries a proof (false only before the replica knew the key)


# Called once per decision encoded: returns the trace context (traceparent, tracestate)
# the encoded decision carries down (this replica's push span).
PushHook = Callable[[DecisionRecord, Epoch], tuple[str, str]]


class EncodedCache:
    def __init__(self, view: ClusterView, on_push: PushHook | None = None) -> None:
        self._view = view
        self._on_push = on_push
        self.decisions: dict[str, EncodedDecision] = {}
        self._groups: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.decision_encodes = 0
        self.group_encodes = 0

    def refresh(self, group: str) -> bool:
        """Re-encode the group's decision if its epoch changed; True when it did."""
        route = self._view.routes.get(group)
        if route is None:
            return self.decisions.pop(group, None) is not None
        cur = self.decisions.get(group)
        key = self._view.proof_key
        if cur is not None and cur.epoch == route.epoch and (cur.signed or not key):
            return False
        msg = decision_pb(route.record, route.epoch)
        msg.epoch.proof = prove(key, group, route.epoch.era, route.epoch.revision)
        if self._on_push is not None:
            msg.traceparent, msg.tracestate = self._on_push(route.record, route.epoch)
        body = msg.SerializeToString()
        self.decision_encodes += 1
        self.decisions[group] = EncodedDecision(
            route.epoch, body, field(_RM_DECISION, body), tuple(route.record.paths), bool(key)
        )
        return True

    def group_body(self, group: str, site: str) -> tuple[int, bytes] | None:
        """(mod revision, serialised GroupDefinition for the site), encoded once per version."""
        g = self._view.groups.get(group)
        if g is None:
            return None
        cached = self._groups.get((group, site))
        if cached is not None and cached[0] == g.mod_revision:
            return cached
        body = group_pb(g.value, g.mod_revision, site).SerializeToString()
        self.group_encodes += 1
        self._groups[(group, site)] = (g.mod_revision, body)
        return g.mod_revision, body

    @staticmethod
    def group_message(body: bytes) -> bytes:
        return field(_RM_GROUP, body)

    @staticmethod
    def heartbeat_message(freshness: sync_pb2.Freshness, sent_unix_ms: int) -> bytes:
        return field(
            _RM_HEARTBEAT,
            sync_pb2.Heartbeat(freshness=freshness, sent_unix_ms=sent_unix_ms).SerializeToString(),
        )

    @staticmethod
    def snapshot_messages(
        groups: list[SnapshotGroup], freshness: sync_pb2.Freshness, limit: int, unknown: Sequence[str] = ()
    ) -> list[bytes]:
        """The snapshot as one message, or as several that each stay within ``limit`` bytes
        (a sidecar's receive limit): every piece carries the freshness and whole groups (a
        group's definition, decision and replace-held mark travel together), and a sidecar
        applies each as it comes. A group larger than ``limit`` alone goes in a piece of its own."""
        fresh = field(_SNAP_FRESHNESS, freshness.SerializeToString())
        margin = 16  # the ReplicaMessage tag and length
        pieces: list[bytes] = []
        current = [field(_SNAP_UNKNOWN, g.encode()) for g in unknown]
        size = len(fresh) + margin + sum(len(u) for u in current)
        for g in groups:
            parts = [
                *((field(_SNAP_GROUPS, g.definition),) if g.definition is not None else ()),
                *((field(_SNAP_DECISIONS, g.decision),) if g.decision is not None else ()),
                *((field(_SNAP_REPLACE_HELD, g.name.encode()),) if g.replace_held else ()),
            ]
            extra = sum(len(p) for p in parts)
            if current and size + extra > limit:
                pieces.append(field(_RM_SNAPSHOT, b"".join([*current, fresh])))
                current, size = [], len(fresh) + margin
            current.extend(parts)
            size += extra
        pieces.append(field(_RM_SNAPSHOT, b"".join([*current, fresh])))
        return pieces
