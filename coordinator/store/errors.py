"""Our store exceptions, and the one table that maps client errors to them.

Core and service code catch only these; they never see ``AioRpcError`` or
etcd3aio exceptions.
"""

from __future__ import annotations

import asyncio

import grpc


class StoreError(Exception):
    """Any failure talking to the store."""


class StoreUnavailable(StoreError):
    """No member answered (all down, partitioned, or no quorum)."""


class StoreTimeout(StoreUnavailable):
    """A call ran out of time; for writes the outcome is unknown."""


class Compacted(StoreError):
    """A watch asked for a revision that was compacted away: list again."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (compact revision {compact_revision})")
        self.compact_revision = compact_revision


class LeaseLost(StoreError):
    """The lease expired or was revoked."""


NOSPACE_ACTION = "etcd is out of space (NOSPACE alarm): compact, defragment and disarm"


class NoSpace(StoreError):
    """etcd raised its NOSPACE alarm: writes are refused until an operator clears it.

    Not a StoreUnavailable: retrying cannot succeed before compaction, defragmentation
    and disarm, so callers report it as a failed precondition naming those steps."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{NOSPACE_ACTION} ({detail})")


def is_nospace(message: str) -> bool:
    """Whether an error message (e.g. relayed from the leader) is a NoSpace refusal."""
    return NOSPACE_ACTION in message


class NoLeader(StoreUnavailable):
    """The member has no etcd leader (a partitioned or quorum-less member)."""


_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED}


def _has_status(exc: BaseException) -> bool:
    return isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None))


def map_error(exc: BaseException, operation: str) -> StoreError:
    """Translate a client-library error into a StoreError (the one mapping table)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return StoreTimeout(f"{operation}: timed out")
    cause: BaseException | None = exc
    # etcd3aio wraps AioRpcError as the __cause__ of its own errors; the lease keepalive
    # thread's synchronous calls raise the call itself (an RpcError with a code).
    while cause is not None and not _has_status(cause):
        cause = cause.__cause__
    if isinstance(cause, grpc.RpcError) and _has_status(cause):
        code, details = cause.code(), cause.details() or ""
        text = f"{operation}: {code.name} {details}".strip()
        # Answered after the proposal may have entered etcd's log: the write can still
        # apply (once a quorum is back), so its outcome is unknown, as for a timeout.
        if "request timed out" in details or "leader changed" in details:
            return StoreTimeout(text)
        if "no leader" in details:
            return NoLeader(text)
        if "mvcc: required revision has been compacted" in details:
            return Compacted(0)
        if "requested lease not found" in details:
            return LeaseLost(text)
        if "database space exceeded" in details:
            return NoSpace(text)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return StoreTimeout(text)
        if code in _UNAVAILABLE:
            return StoreUnavailable(text)
        return StoreError(text)
    name = type(exc).__name__
    if name in {"EtcdConnectionError", "EtcdTransientError"}:
        return StoreUnavailable(f"{operation}: {exc}")
    return StoreError(f"{operation}: {name}: {exc}")
