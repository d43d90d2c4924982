"""What a path session reports (pure data, no asyncio): warmth, state, cause of failure, ``PathStatus``.

Kept apart from ``path`` so the route logic, status views and the health stream can
use these types without pulling in the session machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Warmth(StrEnum):
    LOGGED_ON = "logged_on"  # connected, session up, heartbeating (the default)
    CONNECTED = "connected"  # TCP up, no session (venues that allow one logged-on session)
    COLD = "cold"  # nothing until asked


class PathState(StrEnum):
    UP = "up"
    DOWN = "down"
    CONNECTING = "connecting"


class Cause(StrEnum):
    """Why a path is DOWN; names match ``failover.v1.FailureCause`` (``FAILURE_CAUSE_<NAME>``)."""

    RESET = "reset"  # connection reset or closed by the venue (at any stage), or framing broke
    REFUSED = "refused"  # the connect failed (refused, unreachable, timed out)
    LOGON_LOST = "logon_lost"  # the venue ended a logged-on session (an unrequested logout_ack)
    LOGON_REFUSED = "logon_refused"  # logon_reject
    SILENT = "silent"  # nothing received for silent_after intervals (or no logon answer in logon_timeout_ms)


@dataclass(frozen=True, slots=True)
class PathStatus:
    """One state of a path session; ``seq`` grows with every change, ``at`` is the session clock then.

    ``cause`` is the last failure (kept while CONNECTING again after it; None once UP).
    ``detect_us`` (DOWN only): for SILENT, the time from the last byte received to
    the declaration (at most how long the failure went unnoticed); for REFUSED, the
    connect attempt's duration; for other hard failures 0, since the connection itself
    reported them. ``warmth`` is the warmth the session keeps (UP means reached).
    """

    group: str
    path: str
    state: PathState
    cause: Cause | None
    rtt_p50_us: float | None
    rtt_p99_us: float | None
    warmth: Warmth
    detect_us: int | None
    seq: int
    at: float
    detail: str = ""
    session: str = ""  # venue session id while logged on
