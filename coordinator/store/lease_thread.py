"""A lease's renewals on a thread of its own, with its own channels (synchronous gRPC).

A renewal made on the replica's event loop passes through that loop several times (the
timer's wake-up, the request, the reply); under overload every pass waits for the whole
ready queue, and leases ran out while etcd was fine. This thread renews on schedule
whatever the loop does. It must not give a wedged replica eternal leadership, so the
loop proves it runs: ``alive()`` is a monotonic time the loop refreshes often, and
once it is older than the stall limit the thread stops renewing and declares the lease
lost. Every other rule is the in-loop keeper's: the local deadline (``timing.deadline``
of the last answered renewal, before etcd could expire the lease), ``TTL <= 0`` or
"lease not found" from etcd, and once lost, lost.

Each renewal is one short call on the LeaseKeepAlive method: one request, then the
client's half-close, which etcd's handler answers before it sees the end of the stream
(it receives, renews, sends, then receives again). On the wire that is the unary call
made here, so gRPC's own deadline bounds every attempt and ``stop`` can cancel it; a
stream per renewal costs an HTTP/2 stream on a live connection, not a connection.

The callbacks run on this thread: the owner makes them thread-safe (the keeper posts
them to its loop with ``call_soon_threadsafe``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from etcd3aio._protobuf import rpc_pb2  # type: ignore[attr-defined]

from coordinator.store.errors import LeaseLost, StoreTimeout, StoreUnavailable, map_error
from coordinator.store.types import Lease, LeaseTiming

log = logging.getLogger(__name__)

_METHOD = "/etcdserverpb.Lease/LeaseKeepAlive"
# Ask etcd to refuse the call on a member that has no leader.
_HASLEADER = (("hasleader", "true"),)

Outcome = Callable[[BaseException], str]


class LeaseThread(threading.Thread):
    """Renews one lease until it is lost or ``stop`` is called; then closes its channels."""

    def __init__(
        self,
        lease: Lease,
        timing: LeaseTiming,
        *,
        channel: Callable[[int], grpc.Channel],
        members: int,
        first: int,
        alive: Callable[[], float],
        stall_limit_s: float,
        on_request: Callable[[str, str, float], None],
        on_lost: Callable[[], None],
        on_end: Callable[[], None],
        outcome: Outcome,
    ) -> None:
        """``channel(i)``: a new channel to member ``i``; ``alive()``: when the owner's loop
        last ran; ``outcome(err)``: the metric label of a failed renewal."""
        super().__init__(name=f"lease-keepalive-{lease.id:x}", daemon=True)
        self._lease = lease
        self._timing = timing
        self._new_channel = channel
        self._n = members
        self._member = first
        self._alive = alive
        self.stall_limit_s = stall_limit_s
        self._on_request = on_request
        self._on_lost = on_lost
        self._on_end = on_end
        self._outcome = outcome
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # guards the channels and the call in flight
        self._channels: dict[int, grpc.Channel] = {}
        self._inflight: Any = None
        self.channels_closed = False
        self.lost = False
        self.deadline = timing.deadline(lease.requested_at or time.monotonic(), lease.ttl_s)

    def stop(self) -> None:
        """Ends the thread soon (the call in flight is cancelled) and closes its channels.
        Safe from any thread, any number of times."""
        self._stopping.set()
        with self._lock:
            if self._inflight is not None:
                self._inflight.cancel()
        self._close_channels()

    def run(self) -> None:
        try:
            self._renew_until_lost()
        except BaseException as exc:  # a bug here must not leave a lease nobody renews unnoticed
            log.exception("lease %x keepalive thread failed", self._lease.id)
            self._give_up(f"keepalive thread failed: {exc!r}")
        finally:
            self._close_channels()
            self._on_end()

    def _give_up(self, why: str) -> None:
        if self.lost:
            return
        self.lost = True
        log.warning("lease %x is lost: %s", self._lease.id, why)
        self._on_lost()

    def _renew_until_lost(self) -> None:
        t, limit = self._timing, self.stall_limit_s
        ttl = self._lease.ttl_s
        answered_at = self._lease.requested_at or time.monotonic()
        due = time.monotonic()  # renew at once: the grant's reply may have been slow
        failed: list[str] = []  # attempts since the last answer: "member N: outcome after S s"
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= self.deadline:
                self._give_up(
                    f"no keepalive answered for {now - answered_at:.2f}s: local deadline "
                    f"{t.margin_ms} ms before etcd could expire it (TTL {ttl}s); "
                    f"{_attempts(failed)}"
                )
                return
            stalled = now - self._alive()
            if stalled > limit:
                self._give_up(
                    f"the event loop has not run for {stalled:.2f}s (stall limit {limit:.2f}s): "
                    "renewals stop, a wedged replica must not keep its lease"
                )
                return
            if now < due:
                self._stopping.wait(min(due, self.deadline, self._alive() + limit + 0.001) - now)
                continue
            sent = time.monotonic()
            try:
                resp = self._renew(max(0.0, min(t.attempt_timeout_ms / 1000, self.deadline - sent)))
            except Exception as exc:  # no reply in time, refused, stream broken: next attempt
                if self._stopping.is_set():
                    return
                err = map_error(exc, "keepalive")
                took, outcome = time.monotonic() - sent, self._outcome(err)
                self._on_request("lease_keepalive", outcome, took)
                if isinstance(err, LeaseLost):
                    self._give_up(str(err))
                    return
                failed.append(f"member {self._member}: {outcome} after {took:.2f}s")
                # Bounded: a lease has a few seconds of attempts before its local deadline.
                log.info(
                    "keepalive for lease %x to etcd member %d failed after %.3fs: %s; renewing again",
                    self._lease.id,
                    self._member,
                    took,
                    err,
                )
                if isinstance(err, StoreUnavailable) and self._n > 1:
                    self._member = (self._member + 1) % self._n
                if not isinstance(err, StoreTimeout):  # refused at once: do not spin
                    self._stopping.wait(max(0.0, min(0.05, self.deadline - time.monotonic())))
                due = time.monotonic()
                continue
            self._on_request(
                "lease_keepalive", "ok" if resp.TTL > 0 else "lease_lost", time.monotonic() - sent
            )
            if resp.TTL <= 0:
                self._give_up(f"etcd says it is gone (TTL {resp.TTL})")
                return
            ttl = int(resp.TTL)
            if failed:
                log.info(
                    "lease %x renewed by etcd member %d after %.2fs without an answer (%s)",
                    self._lease.id,
                    self._member,
                    time.monotonic() - answered_at,
                    _attempts(failed),
                )
                failed.clear()
            answered_at = sent
            self.deadline = t.deadline(sent, ttl)
            due = sent + t.interval_s(ttl)

    def _renew(self, timeout: float) -> Any:
        member = self._member
        ch = self._channels.get(member)  # only this thread adds channels
        if ch is None:
            ch = self._new_channel(member)  # outside the lock: ``stop`` must never wait for it
            with self._lock:
                if not self.channels_closed:
                    self._channels[member] = ch
            if self._channels.get(member) is not ch:
                ch.close()
                raise StoreUnavailable("keepalive: stopped")
        call = ch.unary_unary(
            _METHOD,
            request_serializer=rpc_pb2.LeaseKeepAliveRequest.SerializeToString,
            response_deserializer=rpc_pb2.LeaseKeepAliveResponse.FromString,
        )
        with self._lock:
            if self.channels_closed:
                raise StoreUnavailable("keepalive: stopped")
            fut = self._inflight = call.future(
                rpc_pb2.LeaseKeepAliveRequest(ID=self._lease.id), timeout=timeout, metadata=_HASLEADER
            )
        try:
            return fut.result()
        finally:
            with self._lock:
                self._inflight = None

    def _close_channels(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
            self.channels_closed = True
        for ch in channels:
            try:
                ch.close()
            except Exception as exc:  # closing is best effort; the thread is ending
                log.debug("closing a keepalive channel: %r", exc)


def _attempts(failed: list[str]) -> str:
    """The failed attempts since the last answer, for the line that ends or heals the silence."""
    if not failed:
        return "no attempt failed (none made in time)"
    shown = failed if len(failed) <= 8 else [*failed[:3], f"... {len(failed) - 6} more ...", *failed[-3:]]
    return f"{len(failed)} attempts failed: " + "; ".join(shown)
