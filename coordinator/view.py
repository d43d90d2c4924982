"""A replica's parsed, in-memory view of the cluster state in etcd.

Fed by the Mirror (list + resumable watch of the whole prefix). Everything a
replica serves, and everything the leader decides on, is read from here; the
mod revisions kept beside each value are the fenced inputs of a decision.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from coordinator.keys import Keys
from coordinator.store.types import KV
from failover.model.spec import ControlsSpec, DecisionRecord, Epoch, GroupSpec

log = logging.getLogger(__name__)

GONE_SHOWN_S = 600.0  # how long a replica that left etcd is still shown (unreachable) by status


T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Versioned(Generic[T]):
    value: T
    mod_revision: int


@dataclass(frozen=True)
class LeaderKey:
    replica_id: str
    address: str
    token: int  # mod revision of the election key (its campaign's or hand-over's write)
    lease: int = 0  # the leader's lease (the election key goes with it)


@dataclass(frozen=True)
class Candidate:
    """A replica ready to lead: its lease (a hand-over puts the election key on it)."""

    replica_id: str
    address: str
    lease: int
    mod_revision: int


@dataclass(frozen=True)
class Member:
    replica_id: str
    address: str


@dataclass
class Route:
    record: DecisionRecord
    epoch: Epoch
    mod_revision: int


@dataclass
class RestoreState:
    detected: bool = False
    era_at_detection: int = 0
    detail: str = ""


# Called with the view and the groups whose definition, controls or route changed.
Listener = Callable[["ClusterView", set[str]], None]


@dataclass
class ClusterView:
    keys: Keys
    era: Versioned[int] = field(default_factory=lambda: Versioned(0, 0))
    leader: LeaderKey | None = None
    groups: dict[str, Versioned[GroupSpec]] = field(default_factory=dict)
    controls: dict[str, Versioned[ControlsSpec]] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    # Replicas whose members key went away (their lease expired or was revoked), with when:
    # still asked by GetStatus for a while, so one that stopped answering stays visible.
    members_gone: dict[str, tuple[Member, float]] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)
    history_keys: dict[str, set[str]] = field(default_factory=dict)
    revision: int = 0
    restore: RestoreState = field(default_factory=RestoreState)
    proof_key: bytes = b""  # signs pushed epochs (coordinator/core/epoch_proof.py)
    listeners: list[Listener] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def recently_gone(self, within_s: float = GONE_SHOWN_S) -> dict[str, tuple[Member, float]]:
        """Replicas registered in the last ``within_s`` and not now: (member, seconds ago)."""
        now = time.monotonic()
        for rid in [r for r, (_, at) in self.members_gone.items() if now - at > within_s]:
            del self.members_gone[rid]
        return {rid: (m, now - at) for rid, (m, at) in self.members_gone.items()}

    def epoch_of(self, group: str) -> Epoch | None:
        r = self.routes.get(group)
        return r.epoch if r else None

    def apply(self, data: dict[str, KV], changed_keys: set[str], revision: int) -> None:
        """Re-parse the changed keys from the mirror's data, then notify listeners."""
        self.revision = revision
        touched_groups: set[str] = set()
        k = self.keys
        for key in changed_keys:
            kv = data.get(key)
            if key == k.era:
                self._apply_era(kv)
            elif key == k.proof_key:
                self.proof_key = _proof_key(kv)
            elif key == k.leader:
                self.leader = _leader(kv)
            elif (name := k.tail(key, "groups/")) is not None:
                _put_versioned(self.groups, name, kv, GroupSpec)
                touched_groups.add(name)
            elif (name := k.tail(key, "controls/")) is not None:
                _put_versioned(self.controls, name, kv, ControlsSpec)
                touched_groups.add(name)
            elif (name := k.tail(key, "routes/")) is not None:
                self._apply_route(name, kv)
                touched_groups.add(name)
            elif (name := k.tail(key, "members/")) is not None:
                m = _member(kv)
                if m is None:
                    old = self.members.pop(name, None)
                    if old is not None:
                        self.members_gone[name] = (old, time.monotonic())
                else:
                    self.members[name] = m
                    self.members_gone.pop(name, None)
            elif (name := k.tail(key, "election/candidates/")) is not None:
                cand = _candidate(kv)
                if cand is None or cand.replica_id != name:
                    self.candidates.pop(name, None)
                else:
                    self.candidates[name] = cand
            elif key.startswith(k.prefix + "history/"):
                group = key[len(k.prefix + "history/") :].split("/", 1)[0]
                hk = self.history_keys.setdefault(group, set())
                if kv is None:
                    hk.discard(key)
                else:
                    hk.add(key)
        for listener in list(self.listeners):
            listener(self, touched_groups)
        self.changed.set()
        self.changed = asyncio.Event()

    def _apply_era(self, kv: KV | None) -> None:
        era = 0
        if kv is not None:
            try:
                era = int(json.loads(kv.value)["era"])
            except (ValueError, KeyError, TypeError):
                log.error("unreadable era value %r", kv.value[:100])
        self.era = Versioned(era, kv.mod_revision if kv else 0)
        if self.restore.detected and era > self.restore.era_at_detection:
            log.warning("era bumped to %d: restore handled, decisions resume", era)
            self.restore = RestoreState()

    def _apply_route(self, name: str, kv: KV | None) -> None:
        if kv is None:
            self.routes.pop(name, None)
            return
        try:
            rec = DecisionRecord.model_validate_json(kv.value)
        except ValidationError as exc:
            log.error("unreadable route %s: %s", name, exc)
            return
        self.routes[name] = Route(rec, Epoch(rec.era, kv.mod_revision), kv.mod_revision)

    def mark_restore(self, detail: str) -> None:
        if not self.restore.detected:
            log.error("etcd restore detected (%s): no decisions until `failover era bump`", detail)
        self.restore = RestoreState(True, self.era.value, detail)


def _put_versioned(target: dict[str, Versioned[M]], name: str, kv: KV | None, model: type[M]) -> None:
    if kv is None:
        target.pop(name, None)
        return
    try:
        target[name] = Versioned(model.model_validate_json(kv.value), kv.mod_revision)
    except ValidationError as exc:
        log.error("unreadable %s %s: %s", model.__name__, name, exc)


def _proof_key(kv: KV | None) -> bytes:
    if kv is None:
        return b""
    try:
        return bytes.fromhex(str(json.loads(kv.value)["key"]))
    except (ValueError, KeyError, TypeError):
        log.error("unreadable epoch proof key: pushed epochs go unsigned")
        return b""


def _leader(kv: KV | None) -> LeaderKey | None:
    if kv is None:
        return None
    try:
        d = json.loads(kv.value)
        return LeaderKey(str(d["id"]), str(d["address"]), kv.mod_revision, kv.lease)
    except (ValueError, KeyError, TypeError):
        return LeaderKey("?", "", kv.mod_revision, kv.lease)


def _candidate(kv: KV | None) -> Candidate | None:
    if kv is None or not kv.lease:
        return None
    try:
        d = json.loads(kv.value)
        return Candidate(str(d["id"]), str(d["address"]), kv.lease, kv.mod_revision)
    except (ValueError, KeyError, TypeError):
        return None


def _member(kv: KV | None) -> Member | None:
    if kv is None:
        return None
    try:
        d = json.loads(kv.value)
        return Member(str(d["id"]), str(d["address"]))
    except (ValueError, KeyError, TypeError):
        return None
