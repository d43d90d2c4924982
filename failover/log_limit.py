"""Lines that outside input causes are limited per kind.

Kept apart from :mod:`failover.logs` (structlog, OpenTelemetry) so that every module that
answers outside input can mark its lines without importing the log rendering.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from failover.ratelimit import PerCaller

OUTSIDE_INPUT = {"outside_input": True}
"""``extra=`` of a line that outside input causes (a request that does not parse, a
denied or rate-limited caller): :class:`OutsideInputLimit` limits such lines."""

RETRYING = OUTSIDE_INPUT
"""``extra=`` of a retry loop's failure line: a lasting outage (etcd gone) repeats it many
times a second, so it is limited per kind like outside input."""

OUTSIDE_BURST = 10
OUTSIDE_EVERY_S = 10.0


class OutsideInputLimit(logging.Filter):
    """Limits the lines that outside input causes, per kind (logger and message template).

    A scanner, or a client in a loop, would otherwise write one line per request, on the
    event loop that also flips paths, onto the disk the log lands on. The first ``burst``
    lines of a kind pass; the next says that the kind is limited; then one line per
    ``every_s`` passes, carrying how many like it were not logged meanwhile. Lines not
    marked with :data:`OUTSIDE_INPUT` pass untouched.
    """

    def __init__(
        self,
        burst: int = OUTSIDE_BURST,
        every_s: float = OUTSIDE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._buckets = PerCaller(rate=1.0 / every_s, burst=burst, max_callers=1024)
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()  # gRPC's threads log too
        self._held: dict[str, int] = {}  # kinds being limited -> lines not logged since the last

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "outside_input", False):
            return True
        key = f"{record.name}\0{record.msg}"
        with self._lock:
            if self._buckets.allow(key, self._clock()):
                held = self._held.pop(key, None)
                if not held:  # not limited, or nothing held back since the last line
                    return True
                self._held[key] = 0  # still limited: no second announcement
                note = f" ({held} more like this not logged since the last)"
            elif key in self._held:
                self._held[key] += 1
                return False
            else:
                self._held[key] = 0
                note = f" (more lines like this: at most one per {self._every_s:g} s, with a count)"
        record.msg, record.args = record.getMessage() + note, None
        return True
