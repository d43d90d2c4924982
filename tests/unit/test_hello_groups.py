"""A hello naming one group twice is refused, as the sidecar's own config refuses it.

Found from outside: a hello listing a group three times was accepted (the replica kept
one), so a hand-written client learnt nothing about its mistake while every sidecar
config with the same list is refused at start."""

from __future__ import annotations

from coordinator.request_checks import check_hello
from failover.v1 import sync_pb2


def test_a_group_named_twice_in_a_hello_is_refused_naming_it() -> None:
    h = sync_pb2.Hello(host_id="h1", groups=["a", "cme", "cme", "cme"])
    assert check_hello(h) == "hello.groups.2: duplicate group 'cme'"


def test_distinct_groups_still_pass() -> None:
    assert check_hello(sync_pb2.Hello(host_id="h1", groups=["a", "cme"])) is None


def test_an_instance_is_optional_and_bounded() -> None:
    assert check_hello(sync_pb2.Hello(host_id="h1", groups=["a"], instance="0f3a9c11d2e4")) is None
    for bad in ("x" * 65, "a\nb"):
        problem = check_hello(sync_pb2.Hello(host_id="h1", groups=["a"], instance=bad))
        assert problem is not None and problem.startswith("hello.instance:"), problem
