"""The sidecar's flip log: every change of a group's effective route, with its timeline.

A flip records detect (last sign of life -> failure declared), flip (declared or
decision received -> route changed) and, once it comes, first ack (route changed
-> first ACKED reply on the new path), plus the messages the dead path left in
doubt. Times are on the monotonic clock of the stage timings (``at_monotonic_ns``)
and, for people, the wall clock (``at_unix_ms``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from failover.v1 import sidecar_pb2 as spb
from failover.v1 import types_pb2 as pb

if TYPE_CHECKING:
    from failover_sidecar.metrics import SidecarMetrics

log = logging.getLogger("failover_sidecar.agent")

KEPT = 200


class FlipLog:
    """The last ``KEPT`` flips, newest last; ``entries`` is what status shows."""

    def __init__(self, metrics: SidecarMetrics | None = None) -> None:
        self.entries: deque[spb.Flip] = deque(maxlen=KEPT)
        self.metrics = metrics
        self._started_ns: dict[str, int] = {}  # group -> when its last flip changed the route

    def record(
        self,
        g: str,
        before: str | None,
        after: str | None,
        trigger: str,
        cause: str | None,
        detect_us: int,
        started_ns: int,
        epoch: pb.Epoch | None,
    ) -> spb.Flip:
        changed_ns = time.monotonic_ns()
        flip = spb.Flip(
            group=g,
            from_path=before or "",
            to_path=after or "",
            trigger=trigger,
            cause=cause or "",
            detect_us=detect_us,
            flip_us=(changed_ns - started_ns) // 1000,
            first_ack_us=-1,
            at_unix_ms=int(time.time() * 1000),
            at_monotonic_ns=changed_ns,
        )
        if epoch is not None:
            flip.epoch.CopyFrom(epoch)
        self.entries.append(flip)
        self._started_ns[g] = changed_ns
        return flip

    def measure(self, flip: spb.Flip) -> None:
        """The flip's instruments; the caller runs this once the route change is announced,
        so a flip's time to reach the route listeners carries no metrics work."""
        if self.metrics is not None:
            self.metrics.flipped(flip.group, flip.trigger, flip.cause or None, flip.detect_us, flip.flip_us)

    @staticmethod
    def log(flip: spb.Flip) -> None:
        """The flip's log line; the caller writes it once the route change is announced
        (off the flip's critical path) and inside the flip's span (the line gets its trace id)."""
        log.warning(
            "%s: %s -> %s (%s%s)",
            flip.group,
            flip.from_path or "-",
            flip.to_path or "-",
            flip.trigger,
            f", {flip.cause}" if flip.cause else "",
        )

    def note_in_doubt(self, g: str, path: str, count: int) -> None:
        """Messages a dead path left in doubt are charged to the flip away from it."""
        for f in reversed(self.entries):
            if f.group == g:
                if f.from_path == path:
                    f.in_doubt += count
                break

    def note_ack(self, g: str, path: str) -> None:
        """First ack on a path after a flip to it completes that flip's timeline. An ack on
        another path (an order written on the old one just before the flip) leaves the
        measurement running."""
        started = self._started_ns.get(g)
        if started is None:
            return
        for f in reversed(self.entries):
            if f.group == g:
                if f.to_path != path:
                    return
                del self._started_ns[g]
                if f.first_ack_us < 0:
                    f.first_ack_us = (time.monotonic_ns() - started) // 1000
                    if self.metrics is not None:
                        self.metrics.first_ack(g, f.cause or f.trigger, f.first_ack_us)
                return
