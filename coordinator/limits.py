"""Per-caller rate limits (pure: the caller passes the clock).

One token bucket per identity (the certificate's ``role/name`` with mTLS, the
peer's host address without), so one tool in a loop runs out of tokens while
the others keep theirs. The table is bounded: the least recently used bucket
is dropped first (a dropped caller starts again with a full bucket).
"""

from __future__ import annotations

from failover.ratelimit import PerCaller, TokenBucket

__all__ = ["PerCaller", "TokenBucket", "peer_host"]


def peer_host(peer: str) -> str:
    """The host part of a gRPC peer string (``ipv4:127.0.0.1:5000`` -> ``127.0.0.1``)."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, _ = rest.rpartition(":")
        return host or rest
    return peer
