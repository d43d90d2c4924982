"""Whether two sidecar processes use one host id (pure: times in, instances out).

Two sidecars configured with the same ``host_id`` (a copied config, a host cloned from
an image) log on to the venue in each other's slot: each logon closes the other's
session, and both hosts flip back and forth while the cluster shows one healthy host.

Every sidecar process sends a random instance in its hello. A sidecar that reconnects
keeps its instance; a restarted one gets a new instance, but its old stream goes silent
(its process is gone) even while a replica still holds it. So the sign is two instances
of one host *both heard from* after the newer of their streams opened: one process
cannot send on a stream of another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSeen:
    """One stream of a host, times on one clock (any unit, any origin)."""

    instance: str
    opened: int
    heard: int  # the last message received on it; the hello counts (heard >= opened)


def live_instances(streams: Iterable[StreamSeen]) -> list[str]:
    """The instances heard from since the newest stream of the host opened, when that is
    more than one (two sidecars share the host id); otherwise []. Streams without an
    instance (older sidecars) are never counted."""
    known = [s for s in streams if s.instance]
    if len({s.instance for s in known}) < 2:
        return []
    newest = max(s.opened for s in known)
    live = sorted({s.instance for s in known if s.heard > newest})
    return live if len(live) > 1 else []
