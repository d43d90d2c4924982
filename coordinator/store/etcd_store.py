"""The etcd v3 adapter, on etcd3aio (see docs/etcd-client.md for the choice).

etcd3aio gives us a multi-endpoint channel (round robin over every member)
and unary calls with retries. Two things we do ourselves, on its generated
stubs: the lease keepalive (one long-lived stream per lease, re-opened when it
breaks) and watches (with etcd's ``hasleader`` metadata so a member without a
leader cancels the watch instead of leaving us silently stale). Every client
error goes through ``errors.map_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from etcd3aio import Etcd3Client
from etcd3aio._protobuf import (  # type: ignore[attr-defined]
    LeaseStub,
    WatchStub,
    kv_pb2,
    rpc_pb2,
)

from coordinator.store.errors import Compacted, LeaseLost, NoLeader, StoreError, StoreUnavailable, map_error
from coordinator.store.types import (
    KV,
    Compare,
    Delete,
    Event,
    EventKind,
    Get,
    Lease,
    Op,
    Put,
    Target,
    TxnResult,
    WatchBatch,
)

log = logging.getLogger(__name__)

_CHANNEL_OPTIONS = [
    # Our own connections: never share subchannels (and their streams' fate) with
    # another channel of this process that happens to target the same members.
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

# Ask etcd to refuse streams on members that have no leader.
_HASLEADER = (("hasleader", "true"),)


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with prefix."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


def _kv(pb: Any) -> KV:
    return KV(
        key=pb.key.decode(),
        value=bytes(pb.value),
        create_revision=pb.create_revision,
        mod_revision=pb.mod_revision,
        version=pb.version,
        lease=pb.lease,
    )


_TARGETS = {
    Target.CREATE: rpc_pb2.Compare.CREATE,
    Target.MOD: rpc_pb2.Compare.MOD,
    Target.VERSION: rpc_pb2.Compare.VERSION,
    Target.VALUE: rpc_pb2.Compare.VALUE,
}


def _compare(c: Compare) -> Any:
    pb = rpc_pb2.Compare(key=c.key.encode(), result=rpc_pb2.Compare.EQUAL, target=_TARGETS[c.target])
    if c.target is Target.CREATE:
        pb.create_revision = int(c.expected)  # type: ignore[arg-type]
    elif c.target is Target.MOD:
        pb.mod_revision = int(c.expected)  # type: ignore[arg-type]
    elif c.target is Target.VERSION:
        pb.version = int(c.expected)  # type: ignore[arg-type]
    else:
        pb.value = c.expected if isinstance(c.expected, bytes) else str(c.expected).encode()
    return pb


def _op(op: Op) -> Any:
    if isinstance(op, Put):
        return rpc_pb2.RequestOp(
            request_put=rpc_pb2.PutRequest(key=op.key.encode(), value=op.value, lease=op.lease)
        )
    if isinstance(op, Delete):
        key = op.key.encode()
        return rpc_pb2.RequestOp(
            request_delete_range=rpc_pb2.DeleteRangeRequest(
                key=key, range_end=prefix_end(key) if op.prefix else b""
            )
        )
    assert isinstance(op, Get)
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=op.key.encode()))


class _Requests:
    """The request side of one client stream, ended by ``close()``.

    gRPC consumes a request iterator in a task of its own, which it cancels only
    when the call is cancelled while still running: a call that failed on its own
    (etcd unreachable) leaves that task waiting forever, and when it is collected
    its generator's ``aclose()`` fails as a "Task exception was never retrieved".
    Closing ends the iterator, so gRPC's task finishes with the call.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, request: Any) -> None:
        self._queue.put_nowait(request)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def iterate(self) -> AsyncIterator[Any]:
        while (request := await self._queue.get()) is not None:
            yield request


class EtcdWatch:
    """One watch stream; re-establishing it is the caller's job (see Mirror)."""

    def __init__(self, stub: Any, prefix: str, start_revision: int) -> None:
        self._requests = _Requests()
        key = prefix.encode()
        self._requests.put(
            rpc_pb2.WatchRequest(
                create_request=rpc_pb2.WatchCreateRequest(
                    key=key, range_end=prefix_end(key), start_revision=start_revision, progress_notify=True
                )
            )
        )
        self._cancelled = False
        self._call = stub.Watch(self._requests.iterate(), metadata=_HASLEADER)

    def request_progress(self) -> None:
        self._requests.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))

    async def __aiter__(self) -> AsyncIterator[WatchBatch]:
        try:
            async for resp in self._call:
                if resp.compact_revision:
                    raise Compacted(resp.compact_revision)
                if resp.canceled:
                    reason = resp.cancel_reason or "watch cancelled"
                    if "no leader" in reason:
                        raise NoLeader(f"watch: {reason}")
                    raise StoreUnavailable(f"watch: {reason}")
                if resp.created and not resp.events:
                    continue
                events = tuple(
                    Event(EventKind.DELETE if ev.type == kv_pb2.Event.DELETE else EventKind.PUT, _kv(ev.kv))
                    for ev in resp.events
                )
                yield WatchBatch(revision=resp.header.revision, events=events)
        except StoreError:
            raise
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            raise map_error(exc, "watch") from exc
        raise StoreUnavailable("watch: stream ended")

    def cancel(self) -> None:
        self._call.cancel()
        self._requests.close()


class EtcdLeaseKeeper:
    """One long-lived keepalive stream for one lease, sending every TTL/3."""

    def __init__(self, stub: Any, lease: Lease) -> None:
        self._stub = stub
        self._lease = lease
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    async def __aenter__(self) -> EtcdLeaseKeeper:
        self._task = asyncio.create_task(self._run(), name=f"lease-keepalive-{self._lease.id:x}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        interval = max(self._lease.ttl_s / 3.0, 0.2)
        while not self._lost.is_set():
            call = None
            requests = _Requests()
            try:
                call = self._stub.LeaseKeepAlive(requests.iterate(), metadata=_HASLEADER)
                while True:
                    requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=self._lease.id))
                    async with asyncio.timeout(interval * 2):
                        resp = await call.read()
                    if resp is grpc.aio.EOF:  # type: ignore[attr-defined]
                        raise StoreUnavailable("keepalive stream ended")
                    if resp.TTL <= 0:
                        log.warning("lease %x is gone (TTL %d)", self._lease.id, resp.TTL)
                        self._lost.set()
                        return
                    await asyncio.sleep(interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one stream broke: open another
                err = map_error(exc, "keepalive")
                if isinstance(err, LeaseLost):
                    self._lost.set()
                    return
                log.debug("keepalive stream for lease %x broke: %s", self._lease.id, err)
                await asyncio.sleep(min(0.1, interval))
            finally:
                if call is not None:
                    call.cancel()
                requests.close()


class EtcdStore:
    """The Store interface on a real etcd cluster (every member's endpoint)."""

    def __init__(self, endpoints: Sequence[str], *, rpc_timeout_s: float = 1.0) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self._endpoints = list(endpoints)
        self._timeout = rpc_timeout_s
        self._client: Etcd3Client | None = None

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    async def _c(self) -> Etcd3Client:
        if self._client is None:
            client = Etcd3Client(self._endpoints, rpc_max_attempts=3)
            # gRPC's default reconnect backoff grows to 2 minutes: a member back from a
            # restart would stay unused that long. Keep it short, and notice dead
            # members within a few seconds even when idle.
            client._manager.grpc_options.extend(_CHANNEL_OPTIONS)
            await client.connect()
            self._client = client
        return self._client

    async def _unary(self, operation: str, coro: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout * 3):
                return await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise map_error(exc, operation) from exc

    async def get(self, key: str) -> tuple[KV | None, int]:
        c = await self._c()
        resp = await self._unary("get", c.kv.get(key.encode(), timeout=self._timeout))  # type: ignore[union-attr]
        return (_kv(resp.kvs[0]) if resp.kvs else None), resp.header.revision

    async def get_prefix(self, prefix: str) -> tuple[list[KV], int]:
        c = await self._c()
        key = prefix.encode()
        resp = await self._unary(
            "get_prefix",
            c.kv.get(key, range_end=prefix_end(key), timeout=self._timeout),  # type: ignore[union-attr]
        )
        return [_kv(kv) for kv in resp.kvs], resp.header.revision

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        c = await self._c()
        resp = await self._unary("put", c.kv.put(key.encode(), value, lease=lease, timeout=self._timeout))  # type: ignore[union-attr]
        return int(resp.header.revision)

    async def delete(self, key: str, prefix: bool = False) -> int:
        c = await self._c()
        k = key.encode()
        resp = await self._unary(
            "delete",
            c.kv.delete(k, range_end=prefix_end(k) if prefix else None, timeout=self._timeout),  # type: ignore[union-attr]
        )
        return int(resp.header.revision)

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        c = await self._c()
        resp = await self._unary(
            "txn",
            c.kv.txn(  # type: ignore[union-attr]
                [_compare(x) for x in compares],
                [_op(x) for x in success],
                [_op(x) for x in failure],
                timeout=self._timeout,
                max_attempts=1,
            ),
        )
        branch = success if resp.succeeded else failure
        gets: list[KV | None] = []
        for op, r in zip(branch, resp.responses, strict=False):
            if isinstance(op, Get):
                kvs = r.response_range.kvs
                gets.append(_kv(kvs[0]) if kvs else None)
        return TxnResult(succeeded=bool(resp.succeeded), revision=int(resp.header.revision), gets=tuple(gets))

    async def grant(self, ttl_s: int) -> Lease:
        c = await self._c()
        resp = await self._unary("grant", c.lease.grant(ttl_s, timeout=self._timeout))  # type: ignore[union-attr]
        if resp.error:
            raise StoreError(f"grant: {resp.error}")
        return Lease(id=int(resp.ID), ttl_s=int(resp.TTL))

    async def revoke(self, lease_id: int) -> None:
        c = await self._c()
        try:
            await self._unary("revoke", c.lease.revoke(lease_id, timeout=self._timeout, max_attempts=2))  # type: ignore[union-attr]
        except LeaseLost:
            return

    @contextlib.asynccontextmanager
    async def keep_alive(self, lease: Lease) -> AsyncIterator[EtcdLeaseKeeper]:
        c = await self._c()
        keeper = EtcdLeaseKeeper(LeaseStub(c._channel), lease)
        async with keeper:
            yield keeper

    @contextlib.asynccontextmanager
    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[EtcdWatch]:
        c = await self._c()
        w = EtcdWatch(WatchStub(c._channel), prefix, start_revision)
        try:
            yield w
        finally:
            w.cancel()

    async def current_revision(self) -> int:
        c = await self._c()
        # A linearizable count-only read goes through the etcd leader's read index.
        resp = await self._unary(
            "current_revision",
            c.kv.get(b"\0", count_only=True, timeout=self._timeout, max_attempts=1),  # type: ignore[union-attr]
        )
        return int(resp.header.revision)

    async def alarms(self) -> list[str]:
        c = await self._c()
        resp = await self._unary("alarms", c.maintenance.alarms(timeout=self._timeout))  # type: ignore[union-attr]
        names = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}
        return sorted({names.get(a.alarm, str(a.alarm)) for a in resp.alarms})

    async def compact(self, revision: int) -> None:
        c = await self._c()
        try:
            await self._unary("compact", c.kv.compact(revision, timeout=self._timeout))  # type: ignore[union-attr]
        except Compacted:
            return

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.close()
