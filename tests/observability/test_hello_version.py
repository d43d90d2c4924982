"""The hello's version field: bounded and printable (pure)."""

from __future__ import annotations

from coordinator.request_checks import MAX_VERSION, check_hello
from failover.telemetry.version import software_version
from failover.v1 import sync_pb2


def _hello(version: str) -> sync_pb2.Hello:
    return sync_pb2.Hello(host_id="h1", groups=["cme-orders"], version=version)


def test_a_version_is_accepted_and_optional() -> None:
    assert check_hello(_hello(software_version())) is None
    assert check_hello(_hello("")) is None


def test_a_long_or_unprintable_version_is_refused_naming_the_field() -> None:
    for bad in ("1" * (MAX_VERSION + 1), "1.0\n2"):
        problem = check_hello(_hello(bad))
        assert problem is not None and problem.startswith("hello.version:"), problem
