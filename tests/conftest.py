"""Shared fixtures: a real 3-member etcd cluster on loopback (tmpfs data)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from failover.etcdproc import EtcdCluster


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
