"""``failover bench fanout``: commit -> decision on every sidecar stream.

For one (streams S, replicas R) combination: a 1-member etcd, R coordinator
processes, and S failover.v1.Sync streams opened by this process (spread
evenly over the replicas, a few channels per replica, many streams per
channel), each acknowledging every decision like a sidecar. Each run commits
one operator switch; the reference instant t_commit is when this process's
own etcd watch on ``<prefix>routes/`` delivers the new route revision. Per
run: t_commit -> the last stream that receives that decision ("last stream"),
and t_commit -> each stream ("all streams").

The client does as little as it can per message: the ReplicaMessage kind is
read from its first byte (heartbeats and definitions are not parsed), only
decisions and snapshots are decoded, and acks are encoded once per epoch and
shared by every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from failover_sidecar.config import StreamSection as SidecarStream

from coordinator.store.etcd_store import EtcdStore
from coordinator.store.types import EventKind
from failover import rpc
from failover.bench.common import GROUP, PATHS, BenchFailure, Cluster, progress
from failover.bench.cores import halves, pin
from failover.bench.fleet import Fleet
from failover.bench.operator_probe import QUIET, OperatorProbe
from failover.bench.tls_variant import BenchPki
from failover.bench.tls_variant import label as label_of
from failover.machine import proc_cpu_s
from failover.stats import Latency
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb

METHOD = "/failover.v1.Sync/Stream"
# First byte of a ReplicaMessage: (field number << 3) | 2 (length-delimited).
TAG_SNAPSHOT = (1 << 3) | 2
TAG_DECISION = (3 << 3) | 2
GIL_SWITCH_INTERVAL_S = 0.0002
OPEN_BATCH = 50
# After the idle commit, before the fan-out Switch: let its view change settle.
PROBE_SETTLE_S = 0.02


class CommitWatch:
    """This process's own etcd watch on the routes: when each route revision became visible.

    The watch runs on its own event loop in its own thread (still this process,
    still ``EtcdStore.watch``): on the main loop its response would queue behind
    the burst of stream messages it is the reference for, and its timestamp
    would come late by however long the client takes to work through them.
    """

    def __init__(self, endpoints: list[str], prefix: str) -> None:
        self.endpoints = endpoints
        self.prefix = prefix + "routes/"
        self.seen: dict[int, int] = {}  # route revision -> monotonic ns (written by the watch thread)
        self.error: BaseException | None = None
        self._main: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[int, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self, timeout: float = 10.0) -> None:
        self._main = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._thread_main, name="bench-commit-watch", daemon=True)
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, timeout)
        if self.error is not None:
            raise BenchFailure(f"the bench's etcd watch failed to start: {self.error!r}")
        if not self._ready.is_set():
            raise BenchFailure(f"the bench's etcd watch did not start within {timeout}s")

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._watch())
        except BaseException as exc:  # reported to the main loop's waiters
            self.error = exc
        finally:
            self._ready.set()
            if self._main is not None and not self._main.is_closed():
                with contextlib.suppress(RuntimeError):
                    self._main.call_soon_threadsafe(self._wake_all)

    async def _watch(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = EtcdStore(self.endpoints, rpc_timeout_s=2.0)
        try:
            # From etcd's revision now, registered before ready (docs/reliability.md: a watch
            # from a passed revision waits for etcd's 100 ms catch-up loop).
            async with store.watch(self.prefix, 0) as w:
                await w.started()
                self._ready.set()
                it = w.__aiter__()
                while not self._stop.is_set():
                    nxt = asyncio.ensure_future(it.__anext__())
                    stop = asyncio.ensure_future(self._stop.wait())
                    try:
                        await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stop.cancel()
                    if not nxt.done():
                        nxt.cancel()
                        with contextlib.suppress(BaseException):
                            await nxt
                        return
                    batch = nxt.result()
                    now = time.monotonic_ns()
                    for ev in batch.events:
                        if ev.kind is EventKind.PUT:
                            self.seen.setdefault(ev.kv.mod_revision, now)
                            assert self._main is not None
                            self._main.call_soon_threadsafe(self._wake, ev.kv.mod_revision)
        finally:
            await store.close()
            # Let gRPC deliver the completions of the cancelled watch to this loop before
            # asyncio.run closes it (else grpc logs "Event loop is closed" from its poller).
            await asyncio.sleep(0.2)

    def _wake(self, rev: int) -> None:
        waiter = self._waiters.pop(rev, None)
        if waiter is not None:
            waiter.set()

    def _wake_all(self) -> None:
        for w in self._waiters.values():
            w.set()

    async def wait(self, rev: int, timeout: float) -> int:
        if rev not in self.seen and self.error is None:
            waiter = self._waiters.setdefault(rev, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout)
            self._waiters.pop(rev, None)
        if rev not in self.seen:
            if self.error is not None or (self._thread is not None and not self._thread.is_alive()):
                raise BenchFailure(f"the bench's etcd watch ended: {self.error!r}")
            raise BenchFailure(f"the bench's etcd watch did not see route revision {rev} within {timeout}s")
        return self.seen[rev]

    async def close(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)


class StreamFleet(Fleet):
    """S Sync streams in this process; records when each receives each decision."""

    what = "stream"
    ready_phrase = "got their snapshot"

    def __init__(
        self,
        addresses: list[str],
        streams: int,
        channels_per_replica: int,
        as_sidecars: bool = False,
        *,
        pki: BenchPki | None = None,
        channel_per_stream: bool = False,
        track_gaps: bool = False,
    ) -> None:
        super().__init__(streams)
        self.addresses = addresses
        # With a PKI every stream presents its own sidecar certificate (bench-NNNNN), so it
        # needs its own connection; ``channel_per_stream`` gives plaintext the same shape.
        self.pki = pki
        self.channel_per_stream = channel_per_stream or pki is not None
        # Report health as a real sidecar does: its full path health once the snapshot is
        # applied, and the effective route after applying each decision.
        self.as_sidecars = as_sidecars
        self.channels_per_replica = max(1, min(channels_per_replica, streams))
        self.held: list[tuple[int, int]] = [(0, 0)] * streams
        self.replica_of: list[str] = [addresses[i % len(addresses)] for i in range(streams)]
        self._acks: dict[tuple[str, int, int], bytes] = {}
        # The keepalive pings a sidecar's channel sends at its default stream.dead_after_ms.
        self._options = [
            ("grpc.use_local_subchannel_pool", 1),
            *rpc.liveness_options(SidecarStream().dead_after_ms),
        ]
        self._changed = asyncio.Event()
        # Called with the revision when the first stream receives a new decision.
        self.on_first: Callable[[int], None] | None = None
        # With ``track_gaps``: per stream, when it last received anything (monotonic ns, 0:
        # nothing yet) and its longest silence since its snapshot (what a sidecar's
        # stream.dead_after_ms would judge).
        self.last_rx: list[int] | None = [0] * streams if track_gaps else None
        self.max_gap_ns: list[int] = [0] * streams
        self.max_gap_end_ns: list[int] = [0] * streams  # when that silence ended

    def _name(self, i: int) -> str:
        return f"stream {i} to {self.replica_of[i]}"

    def _ack(self, group: str, era: int, rev: int) -> bytes:
        key = (group, era, rev)
        raw = self._acks.get(key)
        if raw is None:
            raw = self._acks[key] = sync_pb2.SidecarMessage(
                ack=sync_pb2.Ack(group=group, epoch=pb.Epoch(era=era, revision=rev))
            ).SerializeToString()
        return raw

    async def open(self, timeout: float) -> None:
        r = len(self.addresses)
        per_replica: list[list[grpc.aio.Channel]] = []
        for addr in self.addresses:
            chans = []
            for _ in range(0 if self.channel_per_stream else self.channels_per_replica):
                # A local subchannel pool: each channel gets its own HTTP/2 connection.
                ch = rpc.channel(addr, options=self._options)
                chans.append(ch)
                self._channels.append(ch)
            per_replica.append(chans)
        end = time.monotonic() + timeout
        # One connection per stream: opened OPEN_BATCH at a time (each batch's snapshots
        # awaited), so the bench measures pushes, not a storm of simultaneous handshakes.
        batch = OPEN_BATCH if self.channel_per_stream else self.n
        for i in range(self.n):
            if self.channel_per_stream:
                tls = self.pki.section("sidecar", _host(i)) if self.pki is not None else None
                ch = rpc.channel(self.replica_of[i], options=self._options, tls=tls)
                self._channels.append(ch)
            else:
                ch = per_replica[i % r][(i // r) % self.channels_per_replica]
            # Raw bytes both ways; called without a request iterator: we write() ourselves.
            method: Any = ch.stream_stream(METHOD, request_serializer=None, response_deserializer=None)
            call = method()
            self._calls.append(call)
            self._tasks.append(asyncio.create_task(self._stream(i, call), name=f"bench-stream-{i}"))
            if (i + 1) % batch == 0 or i + 1 == self.n:
                await self._until_ready(i + 1, end, timeout)

    async def _stream(self, i: int, call: Any) -> None:
        hello = sync_pb2.SidecarMessage(
            hello=sync_pb2.Hello(host_id=_host(i), site="default", groups=[GROUP])
        ).SerializeToString()
        eof = grpc.aio.EOF  # type: ignore[attr-defined]
        try:
            await call.write(hello)
            while True:
                raw = await call.read()
                if raw is eof:
                    self.errors[i] = "stream ended by the replica"
                    return
                if self.last_rx is not None:
                    now_ns = time.monotonic_ns()
                    if self.last_rx[i] and now_ns - self.last_rx[i] > self.max_gap_ns[i]:
                        self.max_gap_ns[i] = now_ns - self.last_rx[i]
                        self.max_gap_end_ns[i] = now_ns
                    self.last_rx[i] = now_ns
                tag = raw[0]
                if tag == TAG_DECISION:
                    t = time.monotonic_ns()
                    d = sync_pb2.ReplicaMessage.FromString(raw).decision
                    era, rev = d.epoch.era, d.epoch.revision
                    if (era, rev) > self.held[i]:
                        self.held[i] = (era, rev)
                        if len(self._arrived(rev, t)) == 1 and self.on_first is not None:
                            self.on_first(rev)
                    await call.write(self._ack(d.group, era, rev))
                    if self.as_sidecars:
                        await call.write(_effective_report(d.group, d.paths[0] if d.paths else ""))
                elif tag == TAG_SNAPSHOT:
                    snap = sync_pb2.ReplicaMessage.FromString(raw).snapshot
                    for d in snap.decisions:
                        era, rev = d.epoch.era, d.epoch.revision
                        self.held[i] = max(self.held[i], (era, rev))
                        await call.write(self._ack(d.group, era, rev))
                    if self.as_sidecars:
                        await call.write(_full_report(snap))
                    self._is_ready()
                # heartbeats, definitions, health requests: not decoded
        except grpc.aio.AioRpcError as exc:
            self.errors[i] = f"{exc.code().name}: {exc.details()}"
        finally:
            self._changed.set()

    async def wait_complete(self, rev: int, timeout: float) -> list[int]:
        got = await self._await_all(rev, timeout)
        if len(got) < self.n:
            missing = [i for i in range(self.n) if self.held[i][1] < rev]
            lines = [
                f"stream {i} (bench-{i:05d}) on {self.replica_of[i]}: holds revision {self.held[i][1]}"
                + (f", stream error {self.errors[i]}" if i in self.errors else "")
                for i in missing[:10]
            ]
            more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise BenchFailure(
                f"{len(missing)}/{self.n} streams did not receive the decision at revision {rev} "
                f"within {timeout}s:\n  " + "\n  ".join(lines) + more
            )
        return got


def _host(i: int) -> str:
    return f"bench-{i:05d}"


def _effective_report(group: str, path: str) -> bytes:
    rep = sync_pb2.HealthReport()
    rep.effective[group] = path
    return sync_pb2.SidecarMessage(health=rep).SerializeToString()


def _full_report(snap: sync_pb2.Snapshot) -> bytes:
    """Every path of every group UP, the decision's first path in use (a healthy host)."""
    rep = sync_pb2.HealthReport(full=True)
    for d in snap.decisions:
        rep.effective[d.group] = d.paths[0] if d.paths else ""
        for path in d.paths:
            rep.paths.append(pb.PathHealth(group=d.group, path=path, state=pb.PATH_STATE_UP, seq=1))
    return sync_pb2.SidecarMessage(health=rep).SerializeToString()


def _cpu_snapshot(cluster: Cluster) -> dict[str, float]:
    """CPU seconds used so far by this process and by every process of the cluster."""
    snap = {"bench": time.process_time()}
    for p in cluster.procs:
        snap[p.replica_id] = proc_cpu_s(p.pid)
    if cluster.etcd is not None:
        for m in cluster.etcd.members:
            if m.proc is not None:
                snap[f"etcd-{m.name}"] = proc_cpu_s(m.proc.pid)
    return snap


def _split_cores(cluster: Cluster, probe: OperatorProbe | None, label: str) -> dict[str, list[int]]:
    """Pin etcd, the campaigning replicas and the operator probe to one half of the CPUs,
    the stream-only replicas and this process (the streams) to the other.

    This process gets its CPUs back in ``run_combination``'s ``finally`` (its later
    rows, and whatever else runs in it, e.g. a test session, must not stay on half)."""
    control, fanout = halves()
    assert cluster.etcd is not None
    control_pids = [m.proc.pid for m in cluster.etcd.members if m.proc is not None]
    control_pids += [p.pid for p in cluster.procs[: cluster.n]]
    if probe is not None and probe.pid is not None:
        control_pids.append(probe.pid)
    fanout_pids = [p.pid for p in cluster.procs[cluster.n :]] + [os.getpid()]
    for pid in control_pids:
        pin(pid, control)
    for pid in fanout_pids:
        pin(pid, fanout)
    progress(
        f"[{label}] cores split: etcd, the campaigning replicas and the operator probe on CPU "
        f"{sorted(control)}; the stream-only replicas and the bench's streams on CPU {sorted(fanout)}"
    )
    return {"control_plane": sorted(control), "fanout": sorted(fanout)}


async def measure_idle(cluster: Cluster, streams: int, seconds: float, label: str) -> dict[str, Any]:
    """Coordinator CPU while the S streams are open and nothing is decided.

    Read from /proc/<pid>/stat of each replica over ``seconds`` (after 1 s to settle):
    what keeping idle streams alive costs (heartbeats, keepalives, timers).
    """
    await asyncio.sleep(1.0)
    before, t0 = _cpu_snapshot(cluster), time.monotonic()
    await asyncio.sleep(seconds)
    after, wall = _cpu_snapshot(cluster), time.monotonic() - t0
    per_replica = {
        p.replica_id: round((after[p.replica_id] - before[p.replica_id]) * 1000 / wall, 2)
        for p in cluster.procs
    }
    total = sum(per_replica.values())
    per_1000 = round(total * 1000 / streams, 2)
    bench_ms = (after["bench"] - before["bench"]) * 1000 / wall
    progress(
        f"[{label}] idle {wall:.1f}s: coordinators {total:.1f} ms CPU per second "
        f"({per_1000:.1f} ms/s per 1,000 streams); bench {bench_ms:.1f} ms/s"
    )
    return {
        "wall_s": round(wall, 3),
        "coordinator_cpu_ms_per_s": per_replica,
        "coordinator_cpu_ms_per_s_total": round(total, 2),
        "coordinator_cpu_ms_per_s_per_1000_streams": per_1000,
        "bench_cpu_ms_per_s": round(bench_ms, 2),
    }


async def run_combination(
    cluster: Cluster,
    *,
    streams: int,
    runs: int,
    channels_per_replica: int,
    run_timeout_s: float,
    pause_s: float,
    deadline: float,
    label: str,
    as_sidecars: bool = False,
    channel_per_stream: bool = False,
    idle_seconds: float = 0.0,
    operator_during_fanout: bool = False,
    etcd_watch: bool = False,
    bare_floor: bool = False,
    split_cores: bool = False,
) -> dict[str, Any]:
    last = Latency(f"{label} last stream", "t_commit -> the last of the S streams receives the decision")
    first = Latency(f"{label} first stream", "t_commit -> the first of the S streams receives the decision")
    every = Latency(f"{label} all streams", "t_commit -> each stream receives the decision (S per run)")
    to_commit = Latency(f"{label} switch -> commit", "Switch sent to the leader -> t_commit")
    to_reply = Latency(
        f"{label} switch reply", "Switch sent to the leader -> its committed reply received (operator view)"
    )
    idle_commit = Latency(
        f"{label} idle commit", f"Switch of {QUIET} (no stream subscribes) with nothing in progress -> reply"
    )
    during = Latency(
        f"{label} switch during fan-out",
        f"Switch of {QUIET} sent when the first stream had the decision -> reply",
    )
    during_floor = Latency(
        f"{label} etcd txn during fan-out",
        "a bare etcd transaction of a commit's shape, sent with the during-fan-out Switch -> answer",
    )
    during_in_progress = 0
    per_run: list[dict[str, Any]] = []
    watch: CommitWatch | None = None
    fleet: StreamFleet | None = None
    probe: OperatorProbe | None = None
    switch_interval = sys.getswitchinterval()
    own_cpus: set[int] | None = None  # with split_cores: this process's CPUs before the split
    # The watch thread must get the GIL promptly while the main thread works through
    # a burst of stream messages (default: it may wait 5 ms per hand-over).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        cluster.start()
        await cluster.wait_ready(timeout=60)
        st = await cluster.status(cluster.procs[0].address)
        leader_id, leader_addr = str(st.leader.replica_id), str(st.leader.address)
        active = next(str(g.decision.paths[0]) for g in st.groups if g.definition.name == GROUP)
        watch = CommitWatch(cluster.endpoints, cluster.prefix)
        await watch.start()
        fleet = StreamFleet(
            cluster.stream_addresses,
            streams,
            channels_per_replica,
            as_sidecars,
            pki=cluster.pki,
            channel_per_stream=channel_per_stream,
        )
        t_open = time.monotonic()
        progress(f"[{label}] opening {streams} streams over {len(fleet.addresses)} replica(s)")
        await fleet.open(timeout=max(30.0, streams / 20))
        progress(f"[{label}] {streams} streams have their snapshot after {time.monotonic() - t_open:.2f}s")
        idle = await measure_idle(cluster, streams, idle_seconds, label) if idle_seconds > 0 else None
        armed = False
        if operator_during_fanout:
            quiet = next((g for g in st.groups if g.definition.name == QUIET), None)
            quiet_active = str(quiet.decision.paths[0]) if quiet is not None and quiet.decision.paths else ""
            probe = OperatorProbe(
                leader_addr,
                cluster.pki,
                quiet_active,
                timeout_s=5.0,
                etcd_endpoints=cluster.endpoints if cluster.pki is None else None,
            )
            await probe.start()

            def on_first(_rev: int) -> None:
                nonlocal armed
                if armed and probe is not None:
                    armed = False
                    probe.fire()

            fleet.on_first = on_first
        if split_cores:
            own_cpus = os.sched_getaffinity(0)
            cores = _split_cores(cluster, probe, label)
        else:
            cores = None
        cpu0 = _cpu_snapshot(cluster)
        wall0 = time.monotonic()
        for run in range(-1, runs):  # run -1: warm-up, not recorded
            if time.monotonic() > deadline:
                raise BenchFailure(f"--max-seconds reached before run {run + 1} of {label}")
            cluster.check_alive()
            path = PATHS[1] if active == PATHS[0] else PATHS[0]
            idle_call = probe_call = floor_call = None
            if probe is not None:
                idle_call = await probe.idle_commit()
                await asyncio.sleep(PROBE_SETTLE_S)
            cpu_before = _cpu_snapshot(cluster)
            if probe is not None:
                armed = True
                call = await probe.fanout_switch(path)
                t_sent, t_reply, rev = call.sent_ns, call.reply_ns, call.revision
            else:
                t_sent = time.monotonic_ns()
                try:
                    resp = await cluster.switch(leader_addr, path, timeout=5.0)
                except grpc.aio.AioRpcError as exc:
                    raise BenchFailure(
                        f"Switch via leader {leader_id}: {exc.code().name}: {exc.details()}"
                    ) from exc
                if list(resp.decision.paths)[:1] != [path]:
                    raise BenchFailure(f"Switch to {path} answered {list(resp.decision.paths)}")
                t_reply = time.monotonic_ns()
                rev = int(resp.decision.epoch.revision)
            active = path
            t_commit = await watch.wait(rev, run_timeout_s)
            got = await fleet.wait_complete(rev, run_timeout_s)
            if probe is not None:
                probe_call = await probe.take_during(run_timeout_s)
                floor_call = await probe.take_floor(run_timeout_s)
            cpu_after = _cpu_snapshot(cluster)
            if run < 0:
                progress(f"[{label}] warm-up switch delivered to all {streams} streams")
                await asyncio.sleep(pause_s)
                continue
            t_last, t_first = max(got), min(got)
            to_commit.record_ns(t_commit - t_sent)
            to_reply.record_ns(t_reply - t_sent)
            last.record_ns(t_last - t_commit)
            first.record_ns(t_first - t_commit)
            for t in got:
                every.record_ns(t - t_commit)
            probe_fields: dict[str, Any] = {}
            if idle_call is not None and probe_call is not None:
                idle_commit.record_ns(idle_call.latency_ns)
                during.record_ns(probe_call.latency_ns)
                if floor_call is not None:
                    during_floor.record_ns(floor_call.latency_ns)
                in_progress = probe_call.sent_ns < t_last
                during_in_progress += in_progress
                probe_fields = {
                    "idle_commit_us": idle_call.latency_ns // 1000,
                    "during_switch_us": probe_call.latency_ns // 1000,
                    "during_floor_txn_us": floor_call.latency_ns // 1000 if floor_call is not None else None,
                    "during_sent_ns": probe_call.sent_ns,
                    "during_reply_ns": probe_call.reply_ns,
                    "t_last_ns": t_last,
                    "during_queued_at_leader_us": probe_call.queued_us,
                    "during_decided_after_send_ms": probe_call.decided_after_send_ms,
                    # When the during-fan-out Switch left, relative to t_commit (signed), and
                    # whether the last stream still lacked the decision then.
                    "during_sent_after_commit_us": (probe_call.sent_ns - t_commit) // 1000,
                    "during_sent_before_last_stream": in_progress,
                    "during_reply_after_last_stream_us": (probe_call.reply_ns - t_last) // 1000,
                    "fanout_reply_after_last_stream_us": (t_reply - t_last) // 1000,
                }
            per_run.append(
                {
                    "run": run + 1,
                    "revision": rev,
                    "first_stream_us": (t_first - t_commit) // 1000,
                    "last_stream_us": (t_last - t_commit) // 1000,
                    "switch_sent_to_commit_us": (t_commit - t_sent) // 1000,
                    "switch_sent_to_reply_us": (t_reply - t_sent) // 1000,
                    # Absolute CLOCK_MONOTONIC instants, to line up with other observers.
                    "t_sent_ns": t_sent,
                    "t_commit_ns": t_commit,
                    **probe_fields,
                    # From just before the Switch until every stream had the decision (+ a
                    # little bookkeeping): CPU ms per process, next to the wall ms.
                    "window_wall_ms": round((time.monotonic_ns() - t_sent) / 1e6, 2),
                    "window_cpu_ms": {
                        k: round((cpu_after[k] - v) * 1000, 1)
                        for k, v in cpu_before.items()
                        if k in cpu_after
                    },
                }
            )
            extra = (
                f"; replies: idle commit {probe_fields['idle_commit_us'] / 1000:.2f} ms, fan-out switch "
                f"{(t_reply - t_sent) / 1e6:.2f} ms, switch during fan-out "
                f"{probe_fields['during_switch_us'] / 1000:.2f} ms"
                if probe_fields
                else ""
            )
            progress(
                f"[{label}] run {run + 1}/{runs} rev {rev}: last stream {(t_last - t_commit) / 1e6:.2f} ms, "
                f"first {(t_first - t_commit) / 1e6:.2f} ms{extra}"
            )
            await asyncio.sleep(pause_s)
        wall = time.monotonic() - wall0
        cpu1 = _cpu_snapshot(cluster)
        cpu = {k: round(cpu1[k] - v, 3) for k, v in cpu0.items() if k in cpu1}
        windows = [r["window_cpu_ms"] for r in per_run]
        mean_window = {k: round(sum(w.get(k, 0.0) for w in windows) / len(windows), 1) for k in cpu0}
        connections = fleet.connections
        fleet_addresses = fleet.replica_of
        etcd_variant = None
        if etcd_watch or bare_floor:
            # The streams' CPU must not weigh on the side-by-side variant's runs.
            await fleet.close()
            fleet = None
            if probe is not None:
                await probe.close()
                probe = None
        if etcd_watch:
            from failover.bench.fanout_etcd import run_etcd_watch

            etcd_variant = await run_etcd_watch(
                cluster,
                commit_seen=watch.wait,
                cpu_snapshot=_cpu_snapshot,
                watches=streams,
                connections=connections,
                runs=runs,
                leader_addr=leader_addr,
                active=active,
                run_timeout_s=run_timeout_s,
                pause_s=pause_s,
                deadline=deadline,
                label=label,
            )
        bare = None
        if bare_floor:
            from failover.bench.fanout_bare import run_bare_floor

            bare = await run_bare_floor(
                streams=streams,
                channels_per_replica=channels_per_replica,
                channel_per_stream=channel_per_stream,
                runs=runs,
                run_timeout_s=run_timeout_s,
                pause_s=pause_s,
                deadline=deadline,
                label=label,
                log_dir=cluster.log_dir,
            )
        return {
            "streams": streams,
            "replicas": len(cluster.procs),
            "stream_only_replicas": cluster.streams_only,
            "cores": cores,
            "tls": label_of(cluster.pki is not None),
            "connections": connections,
            "etcd_members": cluster.etcd_members,
            "leader": leader_id,
            "last_stream": last.to_json(),
            "first_stream": first.to_json(),
            "all_streams": every.to_json(),
            "switch_to_commit": to_commit.to_json(),
            "switch_reply": to_reply.to_json(),
            "streams_per_replica": {
                p.replica_id: sum(1 for a in fleet_addresses if a == p.address) for p in cluster.procs
            },
            "runs": per_run,
            "idle": idle,
            "operator": (
                {
                    "idle_commit": idle_commit.to_json(),
                    "switch_during_fanout": during.to_json(),
                    "etcd_txn_during_fanout": during_floor.to_json(),
                    "during_sent_before_last_stream": during_in_progress,
                    "note": "timed on the bench's own operator thread and loop; the fan-out Switch "
                    "reply is switch_reply",
                }
                if probe is not None
                else None
            ),
            "etcd_watch": etcd_variant,
            "bare_floor": bare,
            "cpu_seconds_during_runs": {"wall": round(wall, 3), **cpu},
            "mean_window": {
                "wall_ms": round(sum(r["window_wall_ms"] for r in per_run) / len(per_run), 2),
                "cpu_ms": mean_window,
            },
        }
    except Exception:
        cluster.failed = True
        raise
    finally:
        sys.setswitchinterval(switch_interval)
        if own_cpus is not None:
            pin(os.getpid(), own_cpus)
        if probe is not None:
            await probe.close()
        if fleet is not None:
            await fleet.close()
        if watch is not None:
            await watch.close()
        await cluster.aclose()
        cluster.stop()
