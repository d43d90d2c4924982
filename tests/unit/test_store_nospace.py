"""etcd's NOSPACE refusal maps to NoSpace with a message that says what to do, and is
recognisable after the leader relays it as text (the admin service's FAILED_PRECONDITION)."""

from __future__ import annotations

import grpc
import pytest

from coordinator.store.errors import NOSPACE_ACTION, NoSpace, StoreUnavailable, is_nospace, map_error


class _RpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


def test_database_space_exceeded_is_nospace_naming_the_steps() -> None:
    exc = map_error(
        _RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"), "txn"
    )
    assert isinstance(exc, NoSpace) and not isinstance(exc, StoreUnavailable)
    assert str(exc).startswith(NOSPACE_ACTION), str(exc)
    assert "database space exceeded" in str(exc)
    assert is_nospace(f"{exc} (via leader c2)")


@pytest.mark.parametrize("details", ["etcdserver: no leader", "connection refused"])
def test_other_refusals_are_not_nospace(details: str) -> None:
    exc = map_error(_RpcError(grpc.StatusCode.UNAVAILABLE, details), "txn")
    assert not isinstance(exc, NoSpace) and not is_nospace(str(exc))
