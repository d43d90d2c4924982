"""Which answers from a leader make a forwarding replica send the copy again.

Sent again (the request id makes that safe): the leader went away under the call (its
port refused, its server stopped, it says it does not lead). Passed on at once: anything
else, in particular an outage the operator must see now (etcd without quorum), which
names "no leader elected" inside a longer message.
"""

from __future__ import annotations

import grpc
import pytest

from coordinator.admin_service import _leader_gone


def _err(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(
    ("code", "details"),
    [
        (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; last error: ..."),
        (grpc.StatusCode.UNAVAILABLE, "Cancelling all calls"),
        (grpc.StatusCode.UNAVAILABLE, "GOAWAY received; Error code: 0; Debug Text: Server shutdown"),
        (grpc.StatusCode.UNAVAILABLE, "not the leader: replica c1 does not lead and will not forward ..."),
        (grpc.StatusCode.UNAVAILABLE, "no leader elected right now; retry"),
        (grpc.StatusCode.UNAVAILABLE, "replica shutting down; retry another"),
        (grpc.StatusCode.CANCELLED, "Cancelled"),
    ],
)
def test_a_leader_that_went_away_is_asked_again(code: grpc.StatusCode, details: str) -> None:
    assert _leader_gone(_err(code, details))


@pytest.mark.parametrize(
    ("code", "details"),
    [
        (
            grpc.StatusCode.UNAVAILABLE,
            "etcd has no quorum (1 of 3 configured members answer): no leader elected right now; retry",
        ),
        (grpc.StatusCode.UNAVAILABLE, "txn: etcd unavailable"),
        (grpc.StatusCode.FAILED_PRECONDITION, "etcd is out of space (NOSPACE alarm): ..."),
        (grpc.StatusCode.INVALID_ARGUMENT, "group: unknown group 'x'"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
    ],
)
def test_any_other_answer_is_passed_on(code: grpc.StatusCode, details: str) -> None:
    assert not _leader_gone(_err(code, details))
