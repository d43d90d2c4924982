"""Shared fixtures: a real 3-member etcd cluster on loopback (tmpfs data); Hypothesis profiles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from failover.etcdproc import EtcdCluster

# `make test` (the README's command, and CI's) runs with --hypothesis-profile=ci: the same
# examples on every run, so a red build is a real regression, never a new random draw; a
# failure prints the blob that reproduces it (@reproduce_failure). `make test-explore` runs
# `explore`: random seeds and more examples, to look for new counterexamples on purpose.
# Registered here, at conftest import, before any test module builds its own settings
# (those inherit the loaded profile's derandomize and deadline).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    derandomize=False,
    deadline=None,
    print_blob=True,
    max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="session")
def etcd_cluster() -> Iterator[EtcdCluster]:
    """One cluster for the session; tests isolate themselves with a unique key prefix."""
    cluster = EtcdCluster(3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def own_etcd() -> Iterator[EtcdCluster]:
    """A fresh cluster the test may break (kill members, lose quorum)."""
    cluster = EtcdCluster(3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def prefix() -> str:
    return f"/t-{uuid.uuid4().hex[:10]}/"
