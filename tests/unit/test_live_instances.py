"""The rule that names two sidecar processes sharing a host id (failover.model.instances)."""

from __future__ import annotations

from failover.model.instances import StreamSeen, live_instances


def test_two_instances_both_heard_after_the_newer_opened_share_the_host() -> None:
    a = StreamSeen("a", opened=0, heard=50)
    b = StreamSeen("b", opened=10, heard=40)
    assert live_instances([a, b]) == ["a", "b"]


def test_a_restarted_sidecars_old_stream_that_went_silent_is_not_a_second_process() -> None:
    old = StreamSeen("a", opened=0, heard=9)  # last heard before the new one opened
    new = StreamSeen("b", opened=10, heard=500)
    assert live_instances([old, new]) == []


def test_a_reconnect_keeps_its_instance_and_is_one_process() -> None:
    assert live_instances([StreamSeen("a", 0, 50), StreamSeen("a", 10, 60)]) == []


def test_a_new_stream_not_heard_since_its_hello_is_not_counted_yet() -> None:
    assert live_instances([StreamSeen("a", 0, 50), StreamSeen("b", 10, 10)]) == []


def test_streams_without_an_instance_are_never_counted() -> None:
    assert live_instances([StreamSeen("", 0, 50), StreamSeen("b", 10, 60)]) == []
    assert live_instances([StreamSeen("", 0, 50), StreamSeen("", 10, 60)]) == []
