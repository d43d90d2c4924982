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
