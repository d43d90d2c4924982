"""The sidecar's one stream to the coordinators.

Stays on one replica until the stream breaks, the replica says it is stale,
or the replica goes silent; then moves to the next address and resumes from
the epochs it holds, so no decision is missed and none is applied twice (only
strictly newer epochs are applied). The data path never waits on this: if
every replica is gone, the sidecar keeps its last route and its warm paths.

Silence is found two ways. HTTP/2 keepalive pings on the channel (answered by
the replica's gRPC core, no Python work per stream there) fail the stream when
the replica answers nothing for ``stream.dead_after_ms``: killed, SIGSTOPped,
a stalled link, either direction lost. The replica's own heartbeat is rare
(``stream.heartbeat_interval_ms``, 10 s by default) and catches a replica whose
event loop is wedged while its gRPC core still answers pings: no message for 3
of its intervals (never under ``dead_after_ms``) ends the stream too.

When a whole round of replicas gave no healthy stream (all down, or all stale
during an etcd quorum loss), the next round waits a jittered exponential
backoff (50 ms doubling to 2 s), reset by a stream that stayed healthy; the
log says when that state begins and ends, not every attempt.

Each host starts at its own place in the list (a rotation fixed by its
host id, see :func:`start_order`), so a fleet whose sidecars all list the
replicas in the same order spreads over them instead of piling onto the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import grpc

from failover import rpc
from failover.telemetry.version import software_version
from failover.tls import TlsSection
from failover.v1 import sync_pb2, sync_pb2_grpc
from failover.v1 import types_pb2 as pb

log = logging.getLogger(__name__)


@dataclass
class LinkStatus:
    replica: str = ""
    connected: bool = False
    replica_id: str = ""
    stale_reason: str = ""
    moves: int = 0
    last_message_monotonic: float = 0.0


def start_order(addresses: list[str], host_id: str) -> list[str]:
    """``addresses`` rotated by a stable hash of ``host_id``.

    A rotation, not a shuffle: after its first replica each host still moves
    through the list in the configured order, and the same host always starts
    at the same replica (restarts land where they were), while different hosts
    start evenly across the replicas.
    """
    if not addresses:
        return []
    k = zlib.crc32(host_id.encode()) % len(addresses)
    return addresses[k:] + addresses[:k]


class Backoff:
    """Jittered exponential delay: ``initial_s`` doubling to ``cap_s``, each +-``jitter``."""

    def __init__(
        self,
        initial_s: float = 0.05,
        cap_s: float = 2.0,
        jitter: float = 0.2,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._initial = initial_s
        self._cap = cap_s
        self._jitter = jitter
        self._rand = rand
        self._next = initial_s

    def next(self) -> float:
        base = self._next
        self._next = min(self._cap, base * 2)
        return base * (1 - self._jitter + 2 * self._jitter * self._rand())

    def reset(self) -> None:
        self._next = self._initial


# A stream that stayed fresh this long counts as healthy: the backoff starts over.
_HEALTHY_AFTER_S = 1.0


class CoordinatorLink:
    """Callbacks run on the event loop; they must not block.

    ``on_decision`` returns the epoch now held for the group (acked as is).
    ``full_health`` returns every path's current health, sent after each connect.
    """

    def __init__(
        self,
        *,
        host_id: str,
        site: str,
        groups: list[str],
        addresses: list[str],
        held: Callable[[], dict[str, pb.Epoch]],
        on_definition: Callable[[pb.GroupDefinition], None],
        on_decision: Callable[[pb.Decision, list[pb.StageTiming]], tuple[int, int]],
        full_health: Callable[[], sync_pb2.HealthReport],
        dead_after_ms: int = 3000,
        retry_ms: int = 100,
        tls: TlsSection | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        on_replace_held: Callable[[str], None] | None = None,
    ) -> None:
        self._host_id = host_id
        # Hello.instance: tells this sidecar from another process given the same host id.
        self.instance = secrets.token_hex(6)
        self._site = site
        self._groups = groups
        self._addresses = start_order(addresses, host_id)
        self._held = held
        self._on_definition = on_definition
        self._on_decision = on_decision
        self._on_replace_held = on_replace_held
        self._full_health = full_health
        self._dead_after = dead_after_ms / 1000
        self._channel_options = rpc.liveness_options(dead_after_ms)
        self._retry = retry_ms / 1000
        self._tls = tls
        self._interceptors = tuple(interceptors)  # rpc.client.duration: one sample per stream
        self._out: asyncio.Queue[sync_pb2.SidecarMessage | None] | None = None
        self._backoff = Backoff(initial_s=max(0.01, retry_ms / 2000), cap_s=2.0)
        self._fresh_since = 0.0  # when the current stream got a fresh snapshot (0: not yet)
        self._quiet = False  # a whole round failed: per-attempt lines go to debug
        self.status = LinkStatus()
        self._unknown: set[str] = set()  # groups the last snapshot said the cluster lacks (warned)
        # Replicas last seen stale: logged when one turns stale, not on every retry.
        self._stale: set[str] = set()
        # Replicas whose heartbeat interval raised this stream's dead-after (logged once each).
        self._raised: set[str] = set()

    def report(self, report: sync_pb2.HealthReport) -> None:
        """Queue a health delta (dropped when disconnected: full state follows every connect)."""
        if self._out is not None:
            self._out.put_nowait(sync_pb2.SidecarMessage(health=report))

    async def run(self) -> None:
        i = 0
        failed_in_round = 0
        while True:
            address = self._addresses[i % len(self._addresses)]
            self._fresh_since = 0.0
            try:
                await self._session(address)
            except grpc.aio.AioRpcError as exc:
                self._note("stream to %s ended: %s %s", address, exc.code().name, exc.details())
            except (TimeoutError, OSError) as exc:
                self._note("stream to %s ended: %s", address, exc or type(exc).__name__)
            finally:
                self._out = None
                if self.status.connected:
                    self.status.moves += 1
                self.status.connected = False
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                # A cancel of this task that the gRPC call swallowed (it can end as a
                # failed call): the stream ended because we are being stopped.
                raise asyncio.CancelledError
            i += 1
            if self._fresh_since and time.monotonic() - self._fresh_since >= _HEALTHY_AFTER_S:
                self._backoff.reset()
                failed_in_round = 0
                continue
            failed_in_round += 1
            if failed_in_round >= len(self._addresses):
                failed_in_round = 0
                if not self._quiet:
                    self._quiet = True
                    log.warning(
                        "no coordinator gave a healthy stream in a whole round (%s): "
                        "retrying with backoff up to %.1fs",
                        self.status.stale_reason or "unreachable",
                        self._backoff._cap,
                    )
                await asyncio.sleep(self._backoff.next())

    def _note(self, msg: str, *args: object, level: int = logging.INFO) -> None:
        """Log an attempt's outcome; during a backoff these are debug (the state change was logged)."""
        log.log(logging.DEBUG if self._quiet else level, msg, *args)

    async def _session(self, address: str) -> None:
        out: asyncio.Queue[sync_pb2.SidecarMessage | None] = asyncio.Queue()
        hello = sync_pb2.Hello(
            host_id=self._host_id,
            site=self._site,
            groups=self._groups,
            version=software_version(),
            instance=self.instance,
        )
        for g, epoch in self._held().items():
            hello.held[g].CopyFrom(epoch)
        out.put_nowait(sync_pb2.SidecarMessage(hello=hello))

        async def requests() -> AsyncIterator[sync_pb2.SidecarMessage]:
            while (msg := await out.get()) is not None:
                yield msg

        # A channel per connection: its credentials are read from the files now, so a
        # rotated certificate is used from the next connection on.
        async with rpc.channel(
            address, tls=self._tls, options=self._channel_options, interceptors=self._interceptors
        ) as channel:
            call = sync_pb2_grpc.SyncStub(channel).Stream(requests())
            dead_after = self._dead_after + 1  # until the snapshot says how often it heartbeats
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel
                # that lands with a message, and the link would outlive a SIGTERM.
                async with asyncio.timeout(dead_after):
                    first = await call.read()
                if first is grpc.aio.EOF or first.WhichOneof("kind") != "snapshot":  # type: ignore[attr-defined]
                    return
                self._out = out
                self.status = LinkStatus(
                    replica=address,
                    connected=True,
                    moves=self.status.moves,
                    last_message_monotonic=time.monotonic(),
                )
                dead_after = self._dead_after_for(address, first.snapshot.freshness)
                self._apply_snapshot(first.snapshot, out, first=True)
                out.put_nowait(sync_pb2.SidecarMessage(health=self._full_health()))
                if first.snapshot.freshness.stale:
                    self.status.stale_reason = first.snapshot.freshness.stale_reason
                    self._note(
                        "replica %s is stale (%s): moving on",
                        address,
                        self.status.stale_reason,
                        level=logging.DEBUG if address in self._stale else logging.WARNING,
                    )
                    self._stale.add(address)
                    return
                self._stale.discard(address)
                self._fresh_since = time.monotonic()
                if self._quiet:
                    self._quiet = False
                    log.warning("streaming from coordinator %s: the backoff is over", address)
                else:
                    log.info("streaming from coordinator %s", address)
                while True:
                    async with asyncio.timeout(dead_after):
                        msg = await call.read()
                    if msg is grpc.aio.EOF:  # type: ignore[attr-defined]
                        return
                    self.status.last_message_monotonic = time.monotonic()
                    if not self._handle(msg, out):
                        return
            except TimeoutError:
                self._note(
                    "no message from %s for %.1fs (its event loop stalled?): the stream is dead, moving on",
                    address,
                    dead_after,
                    level=logging.WARNING,
                )
            finally:
                out.put_nowait(None)  # ends the request generator before the call goes
                call.cancel()
                with contextlib.suppress(Exception):
                    await channel.close(None)

    def _dead_after_for(self, address: str, freshness: sync_pb2.Freshness) -> float:
        """How long this stream may go without a message: 3 of the heartbeat intervals the
        replica announces, never under ``stream.dead_after_ms``. Pings find a silent replica
        within ``dead_after_ms``; this finds one whose event loop no longer runs."""
        floor = 3 * freshness.heartbeat_interval_ms / 1000
        if floor > self._dead_after:
            if address not in self._raised:
                self._raised.add(address)
                log.debug(
                    "replica %s heartbeats every %d ms: a stream with no message for %.1fs is dead "
                    "(pings find a silent replica within stream.dead_after_ms %.1fs)",
                    address,
                    freshness.heartbeat_interval_ms,
                    floor,
                    self._dead_after,
                )
            return floor
        return self._dead_after

    def _apply_snapshot(
        self,
        snap: sync_pb2.Snapshot,
        out: asyncio.Queue[sync_pb2.SidecarMessage | None],
        first: bool = False,
    ) -> None:
        self.status.replica_id = snap.freshness.replica_id
        if first:  # (a later piece of a split snapshot does not say)
            unknown = set(snap.unknown_groups)
            if unknown - self._unknown:
                log.warning(
                    "coordinator %s does not define groups %s: orders for them get no path until "
                    "they are defined (a typo in this sidecar's groups?)",
                    snap.freshness.replica_id,
                    ",".join(sorted(unknown)),
                )
            self._unknown = unknown
        for g in snap.groups:
            self._on_definition(g)
        replace = set(snap.replace_held)
        for d in snap.decisions:
            if d.group in replace and self._on_replace_held is not None:
                self._on_replace_held(d.group)  # what we hold is no epoch a replica made
            self._apply(d, out)

    def _apply(self, d: pb.Decision, out: asyncio.Queue[sync_pb2.SidecarMessage | None]) -> None:
        received = time.monotonic_ns()
        stages: list[pb.StageTiming] = []
        held = self._on_decision(d, stages)
        apply_us = (time.monotonic_ns() - received) // 1000
        stages.append(pb.StageTiming(stage="apply", where=self._host_id, duration_us=apply_us))
        out.put_nowait(
            sync_pb2.SidecarMessage(
                ack=sync_pb2.Ack(group=d.group, epoch=pb.Epoch(era=held[0], revision=held[1]), stages=stages)
            )
        )

    def _handle(
        self, msg: sync_pb2.ReplicaMessage, out: asyncio.Queue[sync_pb2.SidecarMessage | None]
    ) -> bool:
        kind = msg.WhichOneof("kind")
        if kind == "decision":
            self._apply(msg.decision, out)
        elif kind == "group":
            self._on_definition(msg.group)
        elif kind == "heartbeat":
            f = msg.heartbeat.freshness
            if f.stale:
                self.status.stale_reason = f.stale_reason
                self._stale.add(self.status.replica)
                self._note(
                    "replica %s says it is stale (%s): moving on",
                    self.status.replica,
                    f.stale_reason,
                    level=logging.WARNING,
                )
                return False
        elif kind == "health_request":
            out.put_nowait(sync_pb2.SidecarMessage(health=self._full_health()))
        elif kind == "snapshot":
            self._apply_snapshot(msg.snapshot, out)
        return True
