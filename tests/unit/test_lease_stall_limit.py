"""The event-loop stall limit of the lease keeper: its default and its floor."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coordinator.config import CoordinatorConfig
from coordinator.store.types import LeaseTiming


def test_the_stall_limit_defaults_to_the_lease_ttl() -> None:
    assert LeaseTiming().stall_limit_s(2) == 2.0
    assert LeaseTiming(loop_stall_limit_ms=1500).stall_limit_s(2) == 1.5


def test_the_configured_stall_limit_reaches_the_keeper() -> None:
    cfg = CoordinatorConfig(replica_id="c1", election={"loop_stall_limit_ms": 1200})
    assert cfg.lease_timing.stall_limit_s(cfg.election.lease_ttl_s) == 1.2


def test_a_stall_limit_under_the_floor_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="loop_stall_limit_ms"):
        CoordinatorConfig(replica_id="c1", election={"loop_stall_limit_ms": 100})
