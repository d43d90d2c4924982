"""Shared fixtures: a real 3-member etcd cluster on loopback (tmpfs data); Hypothesis profiles."""

from __future__ import annotations

import gc
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """One rerun for a failed test of real processes, sockets and timing; never for unit or
    property tests (a property failure is a finding, and they run derandomized).

    A rerun is not a pass: pytest-rerunfailures shows it as ``R`` and counts it in the
    summary line, the first failure is printed in full (in CI, at once), and each one is
    a flake to fix (docs/testing.md, "Reruns"). It keeps a starved CI machine from
    blocking a landing on a timing bound that holds everywhere else.
    """
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return
    for item in items:
        in_unit = item.path.is_relative_to(Path(__file__).parent / "unit")
        hypothesis = getattr(getattr(item, "obj", None), "is_hypothesis_test", False)
        if in_unit or hypothesis or item.get_closest_marker("flaky") or item.get_closest_marker("fault"):
            continue
        item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=1))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    if rep.failed and os.environ.get("CI"):
        # Printed at once in CI: if the process dies later (a crash in an extension module),
        # the failure that led to it is still in the log, not lost with the summary.
        print(
            f"\n== FAILED {item.nodeid} ({rep.when}; rerun once if marked flaky)\n{rep.longreprtext}",
            file=sys.__stderr__,
            flush=True,
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A failed test's frames (kept by pytest in ``sys.last_*``) hold its gRPC channels and
    calls; freed later, during another test, they would be finalized after their event loop
    closed. Free them now, while the failed test's loop still exists."""
    rep = getattr(item, "rep_call", None)
    if rep is not None and rep.failed:
        for name in ("last_type", "last_value", "last_traceback", "last_exc"):
            if hasattr(sys, name):
                delattr(sys, name)
        gc.collect()
