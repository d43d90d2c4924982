"""The lease keepalive thread moves to another etcd member when one stops answering.

A member that accepts and never answers (SIGSTOPped, a stalled link) times out an
attempt; the next attempt must go to another member, or the leader loses its lease
with two healthy members of three. The fault tier covers this with real processes
(`tests/fault/test_etcd.py::test_member_paused`); this pins the rule itself, without
timing luck about which member the renewals happen to use.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc
import pytest
from etcd3aio._protobuf import rpc_pb2  # type: ignore[attr-defined]

from coordinator.store.lease_thread import LeaseThread
from coordinator.store.types import Lease, LeaseTiming


class _Timeout(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "Deadline Exceeded"


class _Future:
    def __init__(self, member: int, silent: int, timeout: float) -> None:
        self.member, self.silent, self.timeout = member, silent, timeout

    def result(self) -> Any:
        if self.member == self.silent:
            time.sleep(self.timeout)  # accepts, never answers: the call's deadline ends it
            raise _Timeout()
        return rpc_pb2.LeaseKeepAliveResponse(ID=1, TTL=2)

    def cancel(self) -> None:
        pass


class _Channel:
    def __init__(self, member: int, silent: int, calls: list[int]) -> None:
        self.member, self.silent, self.calls = member, silent, calls

    def unary_unary(self, *_a: Any, **_k: Any) -> Any:
        channel = self

        class _Call:
            def future(self, _req: Any, timeout: float, metadata: Any) -> _Future:
                channel.calls.append(channel.member)
                return _Future(channel.member, channel.silent, timeout)

        return _Call()

    def close(self) -> None:
        pass


def test_renewals_move_off_a_member_that_stops_answering(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="coordinator.store.lease_thread")
    calls: list[int] = []
    lost = threading.Event()
    ended = threading.Event()
    # 2 s TTL, renew every 200 ms, 150 ms per attempt: the deadline (1.8 s after the last
    # answer) leaves room for several attempts; on the silent member alone it runs out.
    timing = LeaseTiming(keepalive_interval_ms=200, attempt_timeout_ms=150, margin_ms=200)
    thread = LeaseThread(
        Lease(id=1, ttl_s=2, requested_at=time.monotonic()),
        timing,
        channel=lambda i: _Channel(i, 0, calls),  # type: ignore[arg-type,return-value]
        members=3,
        first=0,  # the renewals start on the member that is silent
        alive=time.monotonic,
        stall_limit_s=10.0,
        on_request=lambda *_: None,
        on_lost=lost.set,
        on_end=ended.set,
        outcome=lambda err: type(err).__name__,
    )
    thread.start()
    try:
        ended.wait(2.5)  # past the lease's local deadline, had every renewal gone to member 0
        assert not lost.is_set(), f"the lease was given up; renewals went to members {calls}"
        assert calls[0] == 0 and set(calls[1:]) and 0 not in calls[1:], calls
        # Each failed attempt and the answer that ends the silence are logged with their member:
        # what an unexplained lease loss needs (docs/reliability.md).
        assert "to etcd member 0 failed after" in caplog.text, caplog.text
        assert "renewed by etcd member 1 after" in caplog.text, caplog.text
        assert "1 attempts failed: member 0: StoreTimeout after" in caplog.text, caplog.text
    finally:
        thread.stop()
        thread.join(5)
