"""The replica's server keepalive follows stream.ping_interval_ms, and the ping timeout is set.

gRPC core bounds an unanswered ping by ``grpc.http2.ping_timeout_ms`` (60 s when unset), not by
``grpc.keepalive_timeout_ms``: a server without it kept serving a sidecar it could not hear
(tests/integration/test_deaf_replica.py).
"""

from __future__ import annotations

from coordinator.config import MIN_KEEPALIVE_MS, MIN_PING_TIMEOUT_MS, StreamSection
from failover import rpc


def test_keepalive_follows_the_ping_interval_not_the_heartbeat() -> None:
    assert StreamSection().keepalive_ms() == (10_000, 20_000)
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


def test_sidecar_pings_find_a_silent_replica_within_dead_after() -> None:
    assert dict(rpc.liveness_options(3000))["grpc.keepalive_time_ms"] == 2000
    for dead_after in (100, 333, 1000, 2999, 3000, 10_000, 60_000):
        opts = dict(rpc.liveness_options(dead_after))
        every, timeout = opts["grpc.keepalive_time_ms"], opts["grpc.http2.ping_timeout_ms"]
        assert every + timeout == dead_after
        assert timeout >= dead_after // 3 and timeout <= every  # the longer part between pings
        assert opts["grpc.keepalive_timeout_ms"] == timeout
        assert opts["grpc.keepalive_permit_without_calls"] == 1
        # The replicas never answer these pings with GOAWAY too_many_pings.
        assert dict(rpc.server_options())["grpc.http2.max_ping_strikes"] == 0
