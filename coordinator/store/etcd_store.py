"""The etcd v3 adapter, on etcd3aio (see docs/etcd-client.md for the choice).

etcd3aio gives us the channels and typed unary calls. We keep one channel per
member and pin calls to one member (``Members``) rather than use its
round-robin channel: a member that accepts connections but never answers
(paused, or hung behind a live TCP peer) would otherwise get every third call
until gRPC keepalive notices it, seconds later. An attempt that fails there
moves the member pointer, so the next attempt (and every later call) goes to
another member. On the generated stubs we do two things ourselves: the lease
keepalive (one long-lived stream per lease, re-opened when it breaks, on the
next member when it timed out) and watches (with etcd's ``hasleader`` metadata
so a member without a leader cancels the watch instead of leaving us silently
stale). Every client error goes through ``errors.map_error``.

Each attempt of a unary call, and each keepalive round trip, is reported to
``on_request(op, outcome, seconds)`` when one is given (the coordinator's
``failover_etcd_request_duration_seconds``): ``op`` is etcd's RPC (``range``,
``txn``, ``lease_grant``, ``lease_keepalive``, ...), ``outcome`` ``ok`` or the
class of error (:func:`outcome_of`). A failed compare in a transaction is ``ok``:
etcd answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from etcd3aio import Etcd3Client
from etcd3aio._protobuf import (  # type: ignore[attr-defined]
    WatchStub,
    kv_pb2,
    rpc_pb2,
)

from coordinator.store.errors import (
    Compacted,
    LeaseLost,
    NoLeader,
    NoSpace,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    map_error,
)
from coordinator.store.lease_thread import LeaseThread
from coordinator.store.types import (
    KV,
    Compare,
    Delete,
    Event,
    EventKind,
    Get,
    Lease,
    LeaseTiming,
    Op,
    Put,
    Target,
    TxnResult,
    WatchBatch,
)
from failover import rpc
from failover.aio import cancel_and_wait
from failover.log_limit import RETRYING
from failover.tls import TlsSection

log = logging.getLogger(__name__)

LEADER_STATUS_TIMEOUT_S = 0.2  # how long each member may take to say who leads etcd

LIST_PAGE_KEYS = 100  # keys per page of a prefix listing: each page well under a MB (one etcd call timeout)
LIST_RESTARTS = 3  # a listing restarted this often after a compaction between its pages
MAX_RECEIVE_BYTES = 64 * 1024 * 1024  # one answer from etcd: a page, or a watch batch of one big txn

_CHANNEL_OPTIONS = [
    # gRPC's default of 4 MiB is below what one page of large values, or the events of
    # one transaction in a watch answer, can reach.
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    # Our own connections: never share subchannels (and their streams' fate) with
    # another channel of this process that happens to target the same members.
    ("grpc.use_local_subchannel_pool", 1),
    # Short reconnect backoff; ``min_reconnect_backoff_ms`` is gRPC core's minimum
    # *connect timeout* (see failover.rpc), so it gets the connect bound, not 100 ms.
    ("grpc.initial_reconnect_backoff_ms", rpc.RECONNECT_BACKOFF_INITIAL_MS),
    ("grpc.max_reconnect_backoff_ms", rpc.RECONNECT_BACKOFF_MAX_MS),
    ("grpc.min_reconnect_backoff_ms", rpc.CONNECT_TIMEOUT_MS),
]

# Ask etcd to refuse streams on members that have no leader.
_HASLEADER = (("hasleader", "true"),)

# Our operation -> the etcd RPC it sends (the ``op`` label of request durations).
ETCD_OPS = {
    "get": "range",
    "get_prefix": "range",
    "current_revision": "range",
    "put": "put",
    "delete": "delete_range",
    "txn": "txn",
    "grant": "lease_grant",
    "revoke": "lease_revoke",
    "keepalive": "lease_keepalive",
    "alarms": "alarm",
    "compact": "compaction",
}

OnRequest = Callable[[str, str, float], None]


def outcome_of(err: StoreError) -> str:
    """The ``outcome`` label of a failed request: a bounded class, never the message."""
    for cls, name in (
        (NoLeader, "no_leader"),
        (StoreTimeout, "timeout"),
        (StoreUnavailable, "unavailable"),
        (LeaseLost, "lease_lost"),
        (NoSpace, "nospace"),
        (Compacted, "compacted"),
    ):
        if isinstance(err, cls):
            return name
    return "error"


def _ignore(op: str, outcome: str, seconds: float) -> None:
    return None


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


class Members:
    """One etcd3aio client per member, and the member calls go to now.

    Calls stick to the current member until an attempt there fails (no answer
    in time, refused, no leader); ``failed`` then moves the pointer to the next
    member, so a silent member costs one attempt, not every third call. The
    starting member is random so replicas spread over the cluster.
    """

    def __init__(self, endpoints: Sequence[str], **client_kwargs: Any) -> None:
        """``client_kwargs``: etcd3aio's TLS options (``ca_cert``, ``cert_key``, ...)."""
        self._client_kwargs = dict(client_kwargs)
        self.clients = [Etcd3Client([ep], rpc_max_attempts=1, **client_kwargs) for ep in endpoints]
        for c in self.clients:
            # gRPC's default reconnect backoff grows to 2 minutes: a member back from a
            # restart would stay unused that long.
            c._manager.grpc_options.extend(_CHANNEL_OPTIONS)
        self.current = random.randrange(len(self.clients))

    async def connect(self) -> None:
        for c in self.clients:
            await c.connect()

    def pick(self, tried: set[int] = frozenset()) -> int:  # type: ignore[assignment]
        """The member for the next attempt: the current one unless tried, else the
        next untried one whose channel is not failing (any untried one if all are)."""
        n = len(self.clients)
        order = [(self.current + k) % n for k in range(n)]
        untried = [i for i in order if i not in tried] or order
        for i in untried:
            ch = self.clients[i]._channel
            if ch is None or ch.get_state(try_to_connect=True) != grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                return i
        return untried[0]

    def failed(self, i: int) -> None:
        """An attempt on member ``i`` got no usable answer: later calls go to the next one."""
        if self.current == i and len(self.clients) > 1:
            self.current = (i + 1) % len(self.clients)
            log.info("etcd member %d failed an attempt: moving to member %d", i, self.current, extra=RETRYING)

    async def find_leader(self, timeout_s: float) -> int | None:
        """The member that names itself etcd's raft leader, asking all at once (None if none does)."""
        statuses = await self.statuses(timeout_s)
        found = [
            i
            for i, st in enumerate(statuses)
            if st is not None and st.leader and st.leader == st.header.member_id
        ]
        return found[0] if len(found) == 1 else None

    async def statuses(self, timeout_s: float) -> list[Any]:
        """Every member's Status answer, asked at once; None for one that does not answer in time."""

        async def status(i: int) -> Any:
            try:
                return await self.clients[i].maintenance.status(timeout=timeout_s)  # type: ignore[union-attr]
            except Exception:  # silent, refused or stopping: another member answers
                return None

        return list(await asyncio.gather(*(status(i) for i in range(len(self.clients)))))

    def channel(self, i: int) -> Any:
        return self.clients[i]._channel

    def sync_channel(self, i: int) -> grpc.Channel:
        """A new synchronous channel to member ``i``, with the same options and TLS as
        its asyncio one (for the lease keepalive thread, which closes it)."""
        manager, kw = self.clients[i]._manager, self._client_kwargs
        options = list(manager.grpc_options)
        if kw.get("ca_cert") is None:
            return grpc.insecure_channel(manager.target, options=options)
        creds = grpc.ssl_channel_credentials(
            root_certificates=kw["ca_cert"],
            private_key=kw.get("cert_key"),
            certificate_chain=kw.get("cert_chain"),
        )
        if kw.get("tls_server_name"):
            options.append(("grpc.ssl_target_name_override", kw["tls_server_name"]))
        return grpc.secure_channel(manager.target, creds, options=options)

    async def close(self) -> None:
        for c in self.clients:
            with contextlib.suppress(Exception):
                await c.close()


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
        self._created_at = 0  # etcd's revision when it registered the watch; 0: not yet

    def request_progress(self) -> None:
        self._requests.put(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))

    async def started(self) -> int:
        """Until etcd has registered the watch; its revision then (call before iterating)."""
        while not self._created_at:
            resp = await self._next()
            if resp is None:
                raise StoreUnavailable("watch: stream ended")
            if resp.created:  # etcd sends it before any event of the watch
                self._created_at = int(resp.header.revision)
        return self._created_at

    async def _next(self) -> Any:
        """The next response (None at the stream's end), errors mapped to StoreError."""
        try:
            resp = await self._call.read()
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            raise map_error(exc, "watch") from exc
        if resp is grpc.aio.EOF:  # type: ignore[attr-defined]
            return None
        if resp.compact_revision:
            raise Compacted(resp.compact_revision)
        if resp.canceled:
            reason = resp.cancel_reason or "watch cancelled"
            if "no leader" in reason:
                raise NoLeader(f"watch: {reason}")
            raise StoreUnavailable(f"watch: {reason}")
        return resp

    async def __aiter__(self) -> AsyncIterator[WatchBatch]:
        while True:
            resp = await self._next()
            if resp is None:
                raise StoreUnavailable("watch: stream ended")
            if resp.created and not resp.events:
                continue
            events = tuple(
                Event(EventKind.DELETE if ev.type == kv_pb2.Event.DELETE else EventKind.PUT, _kv(ev.kv))
                for ev in resp.events
            )
            yield WatchBatch(revision=resp.header.revision, events=events)

    def cancel(self) -> None:
        self._call.cancel()
        self._requests.close()


class EtcdLeaseKeeper:
    """Keeps one lease alive from a thread of its own, with a local deadline.

    The renewals (``LeaseThread``) run on their own thread and channels, on
    schedule however late this event loop runs: under overload a renewal made on
    the loop waited for the whole ready queue several times and leases ran out
    while etcd was fine. The loop proves it runs by refreshing a monotonic time
    every ``TICK_S``; when it has not for the stall limit
    (``timing.stall_limit_s``), the thread stops renewing and the lease is lost,
    so a wedged replica cannot keep its leadership.

    ``lost`` is set when etcd answers ``TTL <= 0`` or "lease not found", when the
    local deadline passes (``timing.deadline`` of the last answered renewal: before
    etcd could have expired the lease), and when the loop stalled. Once set it
    stays set. Leaving the context stops the thread and closes its channels.
    """

    TICK_S = 0.1  # how often the loop proves it runs
    JOIN_S = 2.0  # how long leaving waits for the thread to end (it is told to, and its call cancelled)

    def __init__(
        self, members: Members, lease: Lease, timing: LeaseTiming, on_request: OnRequest = _ignore
    ) -> None:
        self._members = members
        self._on_request = on_request
        self._lease = lease
        self._timing = timing
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: LeaseThread | None = None
        self._ended: asyncio.Event | None = None
        self._alive = time.monotonic()

    @property
    def lost(self) -> bool:
        # The thread's flag is read directly: true at once, before the loop gets to the event.
        thread = self._thread
        return self._lost.is_set() or (thread is not None and thread.lost)

    @property
    def deadline(self) -> float:
        """When the lease is given up locally unless a renewal is answered first."""
        thread = self._thread
        return thread.deadline if thread is not None else 0.0

    async def wait_lost(self) -> None:
        await self._lost.wait()

    async def __aenter__(self) -> EtcdLeaseKeeper:
        loop = asyncio.get_running_loop()
        ended = asyncio.Event()

        def post(fn: Callable[..., None], *args: Any) -> None:
            """From the thread: run ``fn`` on the loop (dropped once the loop is closed)."""
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

        self._alive = time.monotonic()
        self._thread = LeaseThread(
            self._lease,
            self._timing,
            channel=self._members.sync_channel,
            members=len(self._members.clients),
            first=self._members.current,
            alive=lambda: self._alive,
            stall_limit_s=self._timing.stall_limit_s(self._lease.ttl_s),
            on_request=lambda op, outcome, s: post(self._on_request, op, outcome, s),
            on_lost=lambda: post(self._lost.set),
            on_end=lambda: post(ended.set),
            outcome=lambda err: outcome_of(map_error(err, "keepalive")),
        )
        self._thread.start()
        self._ended = ended
        self._task = asyncio.create_task(self._run(ended), name=f"lease-keepalive-{self._lease.id:x}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._task is not None:
                # Not ``cancel(); await task`` with CancelledError suppressed: that would also
                # swallow a cancel of our owner arriving meanwhile (the owner then campaigns on).
                await cancel_and_wait([self._task])
        finally:
            # Here, not in the task: a task cancelled before it first ran never runs its
            # ``finally``. Synchronous: the call in flight is cancelled, the channels closed.
            if self._thread is not None:
                self._thread.stop()
        if self._thread is not None and self._ended is not None:
            if not self._ended.is_set():
                try:
                    async with asyncio.timeout(self.JOIN_S):
                        await self._ended.wait()
                except TimeoutError:
                    log.warning(
                        "lease %x keepalive thread still runs after %.1fs", self._lease.id, self.JOIN_S
                    )
            if self._ended.is_set():
                self._thread.join(0.1)  # ``ended`` is the thread's last act: this join is immediate

    async def _run(self, ended: asyncio.Event) -> None:
        """Proves the loop runs (``_alive``) until the thread ends."""
        loop = asyncio.get_running_loop()
        ticker: asyncio.TimerHandle | None = None

        def tick() -> None:
            nonlocal ticker
            self._alive = time.monotonic()
            ticker = loop.call_later(self.TICK_S, tick)

        try:
            tick()
            await ended.wait()
        finally:
            if ticker is not None:
                ticker.cancel()


class EtcdStore:
    """The Store interface on a real etcd cluster (every member's endpoint).

    Every unary call makes at most ``rpc_attempts`` attempts of ``rpc_timeout_s``
    each (transactions and the linearizable revision read: one), so a call
    takes at most ``rpc_attempts x rpc_timeout_s``: the figure the coordinator's
    timing budget uses. Lease keepers renew as ``lease_timing`` says.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        rpc_timeout_s: float = 1.0,
        rpc_attempts: int = 2,
        lease_timing: LeaseTiming | None = None,
        tls: TlsSection | None = None,
        on_request: OnRequest | None = None,
    ) -> None:
        """``on_request(op, outcome, seconds)``: called after every request (see the module)."""
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        if rpc_attempts < 1:
            raise ValueError("rpc_attempts must be at least 1")
        self._endpoints = list(endpoints)
        self._timeout = rpc_timeout_s
        self._attempts = rpc_attempts
        self.lease_timing = lease_timing or LeaseTiming(
            attempt_timeout_ms=round(rpc_timeout_s * 1000), attempts=rpc_attempts
        )
        self._members: Members | None = None
        self._closed = False
        self._tls = tls if tls is not None and tls.enabled else None
        self._on_request: OnRequest = on_request or _ignore

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    async def _c(self) -> Members:
        if self._closed:
            # No new channels after close: nobody would close them, and grpc would finalize
            # them from the garbage collector after their event loop is gone.
            raise StoreUnavailable("etcd store is closed")
        if self._members is None:
            # Read at connect: a rotated etcd client certificate takes effect when the
            # replica restarts (etcd's PKI rotates rarely; see docs/security.md).
            m = self._tls.files().read() if self._tls is not None else None
            tls_kwargs: dict[str, Any] = {}
            if self._tls is not None and m is not None:
                tls_kwargs = {
                    "tls_server_name": self._tls.server_name or None,
                    "ca_cert": m.ca,
                    "cert_key": m.key,
                    "cert_chain": m.cert,
                }
            members = Members(self._endpoints, **tls_kwargs)
            await members.connect()
            self._members = members
        return self._members

    async def _unary(
        self, operation: str, call: Callable[[Etcd3Client], Awaitable[Any]], *, attempts: int = 0
    ) -> Any:
        """Run ``call`` (one attempt, with its own deadline) up to ``attempts`` times.

        Retries only when no member answered (unavailable, timed out, no leader),
        each time on another member; the member that failed is left for later
        calls too. The whole call is bounded by attempts x rpc_timeout_s.
        """
        attempts = attempts or self._attempts
        members = await self._c()
        tried: set[int] = set()
        op, observe = ETCD_OPS.get(operation, operation), self._on_request
        started: float | None = None  # the attempt in flight
        unknown = False  # an attempt was sent and not answered: a write may still apply
        try:
            async with asyncio.timeout(attempts * self._timeout):
                for attempt in range(1, attempts + 1):
                    member = members.pick(tried)
                    tried.add(member)
                    if len(tried) >= len(members.clients):
                        tried.clear()
                    started = time.monotonic()
                    try:
                        resp = await call(members.clients[member])
                        observe(op, "ok", time.monotonic() - started)
                        return resp
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        err = map_error(exc, operation)
                        observe(op, outcome_of(err), time.monotonic() - started)
                        started = None
                        unknown = unknown or isinstance(err, StoreTimeout)
                        if isinstance(err, StoreUnavailable):
                            members.failed(member)
                        if attempt == attempts or not isinstance(err, StoreUnavailable):
                            if unknown and not isinstance(err, StoreTimeout):
                                raise StoreTimeout(f"{err} (an earlier attempt timed out)") from exc
                            raise err from exc
                        if not isinstance(err, StoreTimeout):
                            await asyncio.sleep(0.05)  # refused at once: do not spin
        except TimeoutError as exc:
            if started is not None:  # the whole call's deadline cut this attempt
                observe(op, "timeout", time.monotonic() - started)
                members.failed(member)  # as for an attempt's own timeout: the next call goes elsewhere
            raise StoreTimeout(f"{operation}: timed out") from exc
        except asyncio.CancelledError:
            if started is not None:
                observe(op, "cancelled", time.monotonic() - started)
            raise
        raise AssertionError("unreachable")

    async def get(self, key: str) -> tuple[KV | None, int]:
        resp = await self._unary("get", lambda c: c.kv.get(key.encode(), timeout=self._timeout))  # type: ignore[union-attr]
        return (_kv(resp.kvs[0]) if resp.kvs else None), resp.header.revision

    async def get_prefix(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under ``prefix`` at one revision, read in pages of ``LIST_PAGE_KEYS``: a
        prefix of any size lists (one answer is bounded by the gRPC receive limit), and every
        page after the first is read at the first one's revision, so the listing is one
        consistent snapshot. A compaction past that revision between two pages restarts it."""
        for attempt in range(LIST_RESTARTS):
            try:
                return await self._get_prefix_paged(prefix)
            except Compacted:
                if attempt == LIST_RESTARTS - 1:
                    raise
                log.info("listing %s: its revision was compacted between pages; listing again", prefix)
        raise AssertionError("unreachable")

    async def _get_prefix_paged(self, prefix: str) -> tuple[list[KV], int]:
        start, end = prefix.encode(), prefix_end(prefix.encode())
        kvs: list[KV] = []
        revision = 0  # the first page's: every later page is read there
        while True:
            resp = await self._unary(
                "get_prefix",
                lambda c, key=start, at=revision: c.kv.get(  # type: ignore[misc, union-attr]
                    key, range_end=end, revision=at, limit=LIST_PAGE_KEYS, timeout=self._timeout
                ),
            )
            if not revision:
                revision = int(resp.header.revision)
            kvs.extend(_kv(kv) for kv in resp.kvs)
            if not resp.more or not resp.kvs:
                return kvs, revision
            start = resp.kvs[-1].key + b"\0"  # the next key after the last one read

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        resp = await self._unary(
            "put",
            lambda c: c.kv.put(key.encode(), value, lease=lease, timeout=self._timeout),  # type: ignore[union-attr]
        )
        return int(resp.header.revision)

    async def delete(self, key: str, prefix: bool = False) -> int:
        k = key.encode()
        resp = await self._unary(
            "delete",
            lambda c: c.kv.delete(k, range_end=prefix_end(k) if prefix else None, timeout=self._timeout),  # type: ignore[union-attr]
        )
        return int(resp.header.revision)

    async def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        resp = await self._unary(
            "txn",
            lambda c: c.kv.txn(  # type: ignore[union-attr]
                [_compare(x) for x in compares],
                [_op(x) for x in success],
                [_op(x) for x in failure],
                timeout=self._timeout,
            ),
            attempts=1,  # a retried transaction could report a false failure
        )
        branch = success if resp.succeeded else failure
        gets: list[KV | None] = []
        for op, r in zip(branch, resp.responses, strict=False):
            if isinstance(op, Get):
                kvs = r.response_range.kvs
                gets.append(_kv(kvs[0]) if kvs else None)
        return TxnResult(succeeded=bool(resp.succeeded), revision=int(resp.header.revision), gets=tuple(gets))

    async def grant(self, ttl_s: int) -> Lease:
        # etcd cannot expire the lease before this + TTL: the keeper counts from here.
        requested_at = time.monotonic()
        resp = await self._unary("grant", lambda c: c.lease.grant(ttl_s, timeout=self._timeout))  # type: ignore[union-attr]
        if resp.error:
            raise StoreError(f"grant: {resp.error}")
        return Lease(id=int(resp.ID), ttl_s=int(resp.TTL), requested_at=requested_at)

    async def revoke(self, lease_id: int) -> None:
        try:
            await self._unary("revoke", lambda c: c.lease.revoke(lease_id, timeout=self._timeout))  # type: ignore[union-attr]
        except LeaseLost:
            return

    @contextlib.asynccontextmanager
    async def keep_alive(self, lease: Lease) -> AsyncIterator[EtcdLeaseKeeper]:
        c = await self._c()
        keeper = EtcdLeaseKeeper(c, lease, self.lease_timing, self._on_request)
        async with keeper:
            yield keeper

    @contextlib.asynccontextmanager
    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[EtcdWatch]:
        c = await self._c()
        member = c.pick()
        w = EtcdWatch(WatchStub(c.channel(member)), prefix, start_revision)
        try:
            yield w
        except StoreUnavailable:
            c.failed(member)
            raise
        finally:
            w.cancel()

    async def current_revision(self) -> int:
        # A linearizable count-only read goes through the etcd leader's read index.
        resp = await self._unary(
            "current_revision",
            lambda c: c.kv.get(b"\0", count_only=True, timeout=self._timeout),  # type: ignore[union-attr]
            attempts=1,
        )
        return int(resp.header.revision)

    async def connected_members(self) -> Members:
        """The member clients, connected (benchmarks time calls per member with it)."""
        return await self._c()

    async def prefer_etcd_leader(self) -> None:
        """Send later calls to etcd's raft leader, if one member says it is.

        A write sent to a follower member is passed on to the leader inside etcd: one
        more hop on every commit (docs/benchmarks.md, "Writes go to the member that
        leads etcd"). Calls still move to the next member when an attempt fails.
        """
        members = await self._c()
        leader = await members.find_leader(min(self._timeout, LEADER_STATUS_TIMEOUT_S))
        if leader is not None and leader != members.current:
            log.info("etcd member %d leads etcd: sending calls there", leader)
            members.current = leader

    async def alarms(self) -> list[str]:
        resp = await self._unary("alarms", lambda c: c.maintenance.alarms(timeout=self._timeout))  # type: ignore[union-attr]
        names = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}
        return sorted({names.get(a.alarm, str(a.alarm)) for a in resp.alarms})

    async def members_answering(self, timeout_s: float) -> int:
        try:
            members = await self._c()
        except StoreError:
            return 0
        try:
            async with asyncio.timeout(timeout_s + 0.5):  # a status call that ignores its own timeout
                return sum(st is not None for st in await members.statuses(timeout_s))
        except TimeoutError:
            return 0

    async def compact(self, revision: int) -> None:
        try:
            await self._unary("compact", lambda c: c.kv.compact(revision, timeout=self._timeout))  # type: ignore[union-attr]
        except Compacted:
            return

    async def close(self) -> None:
        self._closed = True
        if self._members is not None:
            members, self._members = self._members, None
            await members.close()
