"""Plain values crossing the store interface: no etcd or gRPC types leak out."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KV:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int = 1
    lease: int = 0


class EventKind(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    kv: KV


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events of one watch response; ``revision`` is the store revision it reflects."""

    revision: int
    events: tuple[Event, ...]


class Target(enum.Enum):
    CREATE = "create"
    MOD = "mod"
    VERSION = "version"
    VALUE = "value"


@dataclass(frozen=True, slots=True)
class Compare:
    """``target(key) == expected``. An absent key compares as revision/version 0."""

    key: str
    target: Target
    expected: int | bytes

    @staticmethod
    def create(key: str, revision: int) -> Compare:
        return Compare(key, Target.CREATE, revision)

    @staticmethod
    def mod(key: str, revision: int) -> Compare:
        return Compare(key, Target.MOD, revision)

    @staticmethod
    def absent(key: str) -> Compare:
        return Compare(key, Target.CREATE, 0)


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Get:
    key: str


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    # KVs returned by Get ops of the branch that ran, in op order (None: absent).
    gets: tuple[KV | None, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Lease:
    id: int
    ttl_s: int
