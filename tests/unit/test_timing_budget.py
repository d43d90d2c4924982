"""The coordinator's timing budget is computed from what the runtime really uses.

The lease keeper renews at the configured keepalive interval (a third of the
granted TTL when 0), gives each renewal ``etcd.rpc_attempts`` attempts of
``etcd.rpc_timeout_ms``, and gives the lease up locally ``election.lease_margin_ms``
before the earliest moment etcd may expire it. The budget adds exactly those.
"""

from __future__ import annotations

import pytest

from coordinator.config import CoordinatorConfig
from coordinator.store.types import LeaseTiming
from failover.config_source import ConfigError, load


def _cfg(**sections: dict[str, int]) -> CoordinatorConfig:
    return load(CoordinatorConfig, None, dict(sections))


def test_the_keeper_is_given_the_configured_interval_attempts_and_timeout() -> None:
    cfg = _cfg(
        election={"lease_ttl_s": 5, "keepalive_interval_ms": 700, "lease_margin_ms": 300},
        etcd={"rpc_timeout_ms": 400, "rpc_attempts": 3},
    )
    t = cfg.lease_timing
    assert t == LeaseTiming(keepalive_interval_ms=700, attempt_timeout_ms=400, attempts=3, margin_ms=300)
    # The interval the keeper really waits between renewals, whatever TTL etcd grants.
    assert t.interval_s(granted_ttl_s=5) == pytest.approx(0.7)
    assert t.interval_s(granted_ttl_s=9) == pytest.approx(0.7)
    assert t.budget_ms(5) == 700 + 3 * 400 + 300


def test_interval_zero_means_a_third_of_the_granted_ttl() -> None:
    t = _cfg().lease_timing
    assert t.keepalive_interval_ms == 0
    assert t.interval_s(granted_ttl_s=2) == pytest.approx(2 / 3)
    assert t.interval_s(granted_ttl_s=6) == pytest.approx(2.0)
    # Defaults: 666 + 2 x 500 + 200 fits in 2000.
    assert t.budget_ms(2) == 666 + 2 * 500 + 200 <= 2000


def test_the_local_deadline_is_before_the_earliest_expiry() -> None:
    t = LeaseTiming(keepalive_interval_ms=0, attempt_timeout_ms=500, attempts=2, margin_ms=250)
    # A renewal sent at t=100 s cannot make etcd expire the lease before 100 + TTL.
    assert t.deadline(sent_at=100.0, granted_ttl_s=2) == pytest.approx(101.75)


def test_a_config_whose_attempts_do_not_fit_is_refused_naming_every_field() -> None:
    # 666 + 3 x 400 + 200 = 2066 > 2000: three attempts of 400 ms do not fit in a 2 s lease.
    with pytest.raises(ConfigError) as err:
        _cfg(etcd={"rpc_timeout_ms": 400, "rpc_attempts": 3})
    msg = str(err.value)
    assert "timing budget" in msg
    for name in (
        "election.keepalive_interval_ms",
        "etcd.rpc_attempts",
        "etcd.rpc_timeout_ms",
        "election.lease_margin_ms",
        "election.lease_ttl_s",
    ):
        assert name in msg, (name, msg)
    assert "2066" in msg


def test_a_configured_keepalive_interval_counts_in_the_budget() -> None:
    # 1500 + 2 x 100 + 200 = 1900 fits; 1700 + 200 + 200 = 2100 does not.
    _cfg(election={"keepalive_interval_ms": 1500}, etcd={"rpc_timeout_ms": 100})
    with pytest.raises(ConfigError, match=r"keepalive_interval_ms \(1700\)"):
        _cfg(election={"keepalive_interval_ms": 1700}, etcd={"rpc_timeout_ms": 100})


def test_stream_hello_and_ack_timeouts_are_configurable() -> None:
    s = _cfg(stream={"hello_timeout_ms": 300, "ack_timeout_ms": 700}).stream
    assert (s.hello_timeout_ms, s.ack_timeout_ms) == (300, 700)
    d = _cfg().stream
    assert (d.hello_timeout_ms, d.ack_timeout_ms) == (10_000, 5_000)
    with pytest.raises(ConfigError, match="ack_timeout_ms"):
        _cfg(stream={"ack_timeout_ms": 0})
