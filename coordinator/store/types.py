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
    """A granted lease. etcd cannot expire it before ``requested_at + ttl_s``.

    ``requested_at`` is the monotonic time (``time.monotonic()``) the grant was
    sent; 0 when unknown (the keeper then counts from when it starts).
    """

    id: int
    ttl_s: int
    requested_at: float = 0.0


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How a lease keeper renews a lease and when it gives the lease up locally.

    Modelled on etcd's client (client/v3/lease.go): a renewal every
    ``keepalive_interval_ms`` (0: a third of the granted TTL), each attempt
    waiting ``attempt_timeout_ms`` for its reply before the stream is reopened
    and the renewal sent again. A renewal sent at ``t`` and answered with a
    positive TTL means etcd cannot expire the lease before ``t + TTL``; the
    keeper declares it lost at ``t + TTL - margin_ms`` (its local deadline)
    unless a later renewal is answered first, and at once when etcd answers
    ``TTL <= 0``. ``attempts`` is how many attempts the timing budget
    guarantees fit between a renewal's due time and the deadline; the keeper
    keeps trying until the deadline either way.

    The renewals run on a thread of their own, so a late event loop does not
    starve them; ``loop_stall_limit_ms`` (0: the granted TTL) is how long the
    owner's event loop may go without running before the keeper stops renewing
    and declares the lease lost, so a wedged replica does not lead forever.
    """

    keepalive_interval_ms: int = 0
    attempt_timeout_ms: int = 500
    attempts: int = 2
    margin_ms: int = 200
    loop_stall_limit_ms: int = 0

    def stall_limit_s(self, granted_ttl_s: int) -> float:
        """Seconds the event loop may not run before the lease is given up."""
        if self.loop_stall_limit_ms:
            return self.loop_stall_limit_ms / 1000
        return float(granted_ttl_s)

    def interval_s(self, granted_ttl_s: int) -> float:
        """Seconds from one renewal to the next."""
        if self.keepalive_interval_ms:
            return self.keepalive_interval_ms / 1000
        return granted_ttl_s / 3

    def interval_ms(self, ttl_s: int) -> int:
        """The interval in whole milliseconds (for the budget and messages)."""
        return self.keepalive_interval_ms or ttl_s * 1000 // 3

    def deadline(self, sent_at: float, granted_ttl_s: int) -> float:
        """Monotonic time after which the lease is given up if nothing renewed it."""
        return sent_at + granted_ttl_s - self.margin_ms / 1000

    def budget_ms(self, ttl_s: int) -> int:
        """Worst case from the last answered renewal until the next is answered, plus the margin."""
        return self.interval_ms(ttl_s) + self.attempts * self.attempt_timeout_ms + self.margin_ms
