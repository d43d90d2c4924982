"""Who a caller is, for the per-caller rate limit of operator calls.

The limit itself is a token bucket per caller (``failover.ratelimit.PerCaller``) keyed
by the certificate's ``role/name`` with mTLS, or by the peer's host address without,
so one tool in a loop runs out of tokens while the others keep theirs.
"""

from __future__ import annotations


def peer_host(peer: str) -> str:
    """The host part of a gRPC peer string (``ipv4:127.0.0.1:5000`` -> ``127.0.0.1``)."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, _ = rest.rpartition(":")
        return host or rest
    return peer
