"""The replica's server keepalive follows its heartbeat interval, and the ping timeout is set.

gRPC core bounds an unanswered ping by ``grpc.http2.ping_timeout_ms`` (60 s when unset), not by
``grpc.keepalive_timeout_ms``: a server without it kept serving a sidecar it could not hear
(tests/integration/test_deaf_replica.py).
"""

from __future__ import annotations

from coordinator.config import MIN_KEEPALIVE_MS, MIN_PING_TIMEOUT_MS, StreamSection
from failover import rpc


def test_keepalive_follows_the_heartbeat_interval() -> None:
    assert StreamSection().keepalive_ms() == (1000, 2000)
    assert StreamSection(heartbeat_interval_ms=5000).keepalive_ms() == (5000, 10_000)


def test_keepalive_has_floors_for_short_heartbeats() -> None:
    assert StreamSection(heartbeat_interval_ms=20).keepalive_ms() == (MIN_KEEPALIVE_MS, MIN_PING_TIMEOUT_MS)


def test_server_options_carry_the_ping_timeout_only_when_asked() -> None:
    opts = dict(rpc.server_options(keepalive_time_ms=700, ping_timeout_ms=1400))
    assert opts["grpc.keepalive_time_ms"] == 700
    assert opts["grpc.http2.ping_timeout_ms"] == 1400
    assert opts["grpc.keepalive_timeout_ms"] == 1400
    # Clients' pings stay welcome: the policy for pings the server receives is unchanged.
    assert opts["grpc.http2.max_ping_strikes"] == 0
    assert "grpc.http2.ping_timeout_ms" not in dict(rpc.server_options())
