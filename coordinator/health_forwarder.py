"""Replica side of path health: hold each stream's latest report, forward it to the leader.

Every sidecar sends its full path health after each (re)connect and deltas
after that; the replica keeps the stream's whole state and forwards it, per
host, to the leader named in the election key (or straight to this replica's
own term when it leads). When a stream ends, the host's last report goes
with "gone" in the same message, so a sidecar that leaves right after
reporting (a stale replica) never has its report replaced by "gone". What
could not be delivered is kept until a newer state of the same host
replaces it. Each forwarded host carries a "forward" stage: how long ago this
replica received the report, so the leader can tell how old it is.

A report that carries a trace context (the host's detect or flip) opens a
``failover.report`` span here, from its arrival to its delivery to the leader;
the forwarded host carries that span's context on. A newer report of the
same host without a context keeps the pending one's span (it carries the
same change on); one with a context of its own ends the older span. When the
replica stops, the spans of reports never delivered end with
``failover.delivered`` false.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from opentelemetry.trace import Span, Tracer

from coordinator.peers import PeerChannels
from coordinator.view import ClusterView
from failover import rpc
from failover.aio import wait_any
from failover.telemetry import tracing
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from failover.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

RETRY_S = 0.2
FORWARD_TIMEOUT_S = 1.0


@dataclass
class _Stream:
    host: str
    site: str
    paths: list[pb.PathHealth]
    reported: bool  # False until the first report (then ``paths`` is the host's full state)
    at_ns: int  # when the last report arrived (the connect time before any)
    seq: int = 0  # this replica's sequence number of the state (``HostHealth.state_seq``)


@dataclass(frozen=True)
class _Pending:
    stream: _Stream
    at_ns: int
    gone: bool
    span: Span | None = None  # failover.report, when the report carried a trace context


class HealthForwarder:
    """``deliver_local`` hands a message to this replica's own term; False when it has none."""

    def __init__(
        self,
        replica_id: str,
        view: ClusterView,
        peers: PeerChannels,
        deliver_local: Callable[[apb.HealthForward], bool],
        tracer: Tracer | None = None,
    ) -> None:
        self._id = replica_id
        self._tracer = tracer or tracing.unexported()
        self._view = view
        self._peers = peers
        self._deliver_local = deliver_local
        self._streams: dict[int, _Stream] = {}
        # Open streams per host, so a closing stream knows in O(1) whether its host is
        # still connected (a mass disconnect of n sidecars stays O(n), not O(n^2)).
        self._per_host: dict[str, int] = {}
        self._pending: dict[str, _Pending] = {}
        self._event = asyncio.Event()
        self._closed = False  # run() ended: no report span can be delivered (or ended) any more
        self.full_sent_term = 0  # the leader term this replica last pushed its full state to
        # Numbers every state of every host, so the leader orders what this replica sends by
        # it rather than by arrival (a full state and a delta race). Starting at the wall
        # clock in ns keeps a restarted replica's numbers above its previous incarnation's.
        self._seq = itertools.count(time.time_ns())

    # --- inputs from the sync streams ----------------------------------------

    def opened(self, sid: int, host: str, site: str) -> None:
        old = self._streams.get(sid)
        if old is not None:
            self._drop_host(old.host)
        self._streams[sid] = _Stream(host, site, [], False, time.monotonic_ns(), next(self._seq))
        self._per_host[host] = self._per_host.get(host, 0) + 1

    def _drop_host(self, host: str) -> int:
        """One stream of ``host`` fewer; returns how many it still has."""
        left = self._per_host.get(host, 0) - 1
        if left > 0:
            self._per_host[host] = left
        else:
            self._per_host.pop(host, None)
        return max(0, left)

    def report(
        self, sid: int, paths: Iterable[pb.PathHealth], trace: tracing.Carrier = tracing.NO_CONTEXT
    ) -> None:
        """The stream's whole path state after a report was applied to it.

        ``trace``: the report's (checked) trace context, continued by a report span.
        """
        st = self._streams.get(sid)
        if st is None:
            return
        st.paths, st.reported, st.at_ns, st.seq = list(paths), True, time.monotonic_ns(), next(self._seq)
        span = self._span(st.host, trace) if trace[0] and not self._closed else None
        self._queue(_Pending(dataclasses.replace(st), st.at_ns, False, span))

    def ended(self, sid: int) -> None:
        st = self._streams.pop(sid, None)
        if st is None or self._drop_host(st.host):
            return  # the host is still connected through another stream
        st.seq = next(self._seq)  # "gone" is news after the last report
        self._queue(_Pending(st, st.at_ns, True))

    def _queue(self, p: _Pending) -> None:
        """``p`` replaces what is pending for its host; a report span is kept or superseded."""
        old = self._pending.get(p.stream.host)
        if old is not None and old.span is not None:
            if p.span is None:
                p = _Pending(p.stream, p.at_ns, p.gone, old.span)
            else:
                old.span.set_attribute("failover.superseded", True)
                old.span.end()
        self._pending[p.stream.host] = p
        self._event.set()

    def _span(self, host: str, trace: tracing.Carrier) -> Span:
        return self._tracer.start_span(
            "failover.report",
            context=tracing.extract(*trace),
            attributes={"failover.host": host, "failover.replica": self._id},
        )

    # --- what the leader gets --------------------------------------------------

    def _host(self, p: _Pending, now_ns: int) -> apb.HostHealth:
        age = pb.StageTiming(stage="forward", where=self._id, duration_us=max(0, now_ns - p.at_ns) // 1000)
        s = p.stream
        tp, ts = tracing.inject(p.span) if p.span is not None else tracing.NO_CONTEXT
        return apb.HostHealth(
            host_id=s.host,
            site=s.site,
            full=s.reported,
            gone=p.gone,
            paths=s.paths,
            stages=[age],
            traceparent=tp,
            tracestate=ts,
            state_seq=s.seq,
        )

    def full_state(self) -> apb.HealthForward:
        """Every host connected here now (a new leader collects this)."""
        now = time.monotonic_ns()
        hosts = {s.host: s for s in self._streams.values()}
        return apb.HealthForward(
            replica_id=self._id,
            complete=True,
            hosts=[self._host(_Pending(s, now, False), now) for _, s in sorted(hosts.items())],
        )

    async def run(self) -> None:
        batch: dict[str, _Pending] = {}
        pusher = asyncio.create_task(self._full_state_to_each_leader(), name="health-full-push")
        try:
            while True:
                await self._event.wait()
                self._event.clear()
                batch, self._pending = self._pending, {}
                now = time.monotonic_ns()
                msg = apb.HealthForward(
                    replica_id=self._id, hosts=[self._host(p, now) for p in batch.values()]
                )
                if await self._send(msg):
                    for p in batch.values():
                        if p.span is not None:
                            p.span.end()
                    batch = {}
                    continue
                for p in batch.values():  # keep what was not delivered, unless superseded
                    self._keep(p)
                batch = {}
                self._event.set()
                await wait_any(self._view.changed.wait(), timeout=RETRY_S)
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
            self._close([*batch.values(), *self._pending.values()])

    async def _full_state_to_each_leader(self) -> None:
        """Push this replica's full state to the leader of each new term, once.

        A new leader also asks for it (CollectHealth), but one that cannot reach this
        replica (its port refused or unreachable from there, while this replica reaches
        the leader) would otherwise know none of its hosts until a report changed, and
        refuse every switch: "no host reports the path up"."""
        while True:
            leader = self._view.leader
            changed = self._view.changed
            if (
                leader is None
                or leader.replica_id == self._id
                or not leader.address
                or leader.token == self.full_sent_term
            ):
                await changed.wait()
            elif await self._send_to_leader(self.full_state()):
                self.full_sent_term = leader.token
            else:
                await wait_any(changed.wait(), timeout=RETRY_S)

    def _close(self, undelivered: Iterable[_Pending]) -> None:
        """The replica stops: end the report spans of what was never delivered (no span leaks,
        and a trace viewer shows where the chain stopped); later reports open none."""
        self._closed = True
        ended: set[int] = set()
        for p in undelivered:
            if p.span is not None and id(p.span) not in ended:
                ended.add(id(p.span))
                p.span.set_attribute("failover.delivered", False)
                p.span.end()

    def _keep(self, p: _Pending) -> None:
        """Put an undelivered ``p`` back unless a newer state of its host came meanwhile."""
        newer = self._pending.get(p.stream.host)
        if newer is None:
            self._pending[p.stream.host] = p
        elif p.span is not None:
            if newer.span is None:
                self._pending[p.stream.host] = _Pending(newer.stream, newer.at_ns, newer.gone, p.span)
            else:
                p.span.set_attribute("failover.superseded", True)
                p.span.end()

    async def _send(self, msg: apb.HealthForward) -> bool:
        if self._deliver_local(msg):
            return True
        return await self._send_to_leader(msg)

    async def _send_to_leader(self, msg: apb.HealthForward) -> bool:
        """To the leader the view names (not this replica's own term, which may be ending)."""
        leader = self._view.leader
        if leader is None or not leader.address or leader.replica_id == self._id:
            return False
        try:
            stub = admin_pb2_grpc.PeerStub(self._peers.get(leader.address))
            ack = await rpc.unary(stub.ForwardHealth(msg, timeout=FORWARD_TIMEOUT_S))
            return bool(ack.is_leader)
        except grpc.aio.AioRpcError as exc:
            log.debug("forwarding health to %s failed: %s", leader.replica_id, exc.code().name)
            return False
