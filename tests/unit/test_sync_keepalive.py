"""The replica's server keepalive follows stream.ping_interval_ms, and the ping timeout is set.

gRPC core bounds an unanswered ping by ``grpc.http2.ping_timeout_ms`` (60 s when unset), not by
``grpc.keepalive_timeout_ms``: a server without it kept serving a sidecar it could not hear
(tests/integration/test_deaf_replica.py).
"""

from __future__ import annotations

from coordinator.config import MIN_KEEPALIVE_MS, MIN_PING_TIMEOUT_MS, StreamSection
from failover import rpc


def test_keepalive_follows_the_ping_interval_not_the_heartbeat() -> None:
    assert StreamSection().keepalive_ms() == (5000, 10_000)
    assert StreamSection(ping_interval_ms=1000).keepalive_ms() == (1000, 2000)
    # The heartbeat only checks the replica's event loop: it does not slow the pings.
    assert StreamSection(heartbeat_interval_ms=30_000, ping_interval_ms=1000).keepalive_ms() == (1000, 2000)


def test_keepalive_has_floors_for_short_intervals() -> None:
    assert StreamSection(ping_interval_ms=MIN_KEEPALIVE_MS).keepalive_ms() == (
        MIN_KEEPALIVE_MS,
        MIN_PING_TIMEOUT_MS,
    )


def test_server_options_carry_the_ping_timeout_only_when_asked() -> None:
    opts = dict(rpc.server_options(keepalive_time_ms=700, ping_timeout_ms=1400))
    assert opts["grpc.keepalive_time_ms"] == 700
    assert opts["grpc.http2.ping_timeout_ms"] == 1400
    assert opts["grpc.keepalive_timeout_ms"] == 1400
    # Clients' pings stay welcome: the policy for pings the server receives is unchanged.
    assert opts["grpc.http2.max_ping_strikes"] == 0
    assert "grpc.http2.ping_timeout_ms" not in dict(rpc.server_options())
