"""``failover bench fanout --etcd-watch``: what sidecars watching etcd directly would see.

The alternative a user would otherwise pick: no coordinator between the
decision and the hosts, every sidecar holding an etcd watch on the routes.
After a combination's stream runs, its streams are closed and S watches are
opened on ``<prefix>routes/`` over as many connections to the etcd member
as the streams had; the same operator switches are committed (the replicas
still decide and commit, nobody streams from them) and t_commit -> each
watch's event is recorded on the same reference instant (the bench's own
``CommitWatch``).

Each watch is its own gRPC Watch stream (one watch per stream, as separate
sidecars would have), raw bytes on the wire and one ``WatchResponse`` decode
per message, the least a watcher can do to learn the revision. A watch gives
no acknowledgement and no health back: it is the one-way floor of a push,
not a replacement for the Sync stream (docs/benchmarks.md says what it lacks).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc
from etcd3aio._protobuf import rpc_pb2  # type: ignore[attr-defined]

from coordinator.store.etcd_store import prefix_end
from failover.bench.common import PATHS, BenchFailure, Cluster, progress
from failover.bench.fleet import Fleet
from failover.stats import Latency

WATCH_METHOD = "/etcdserverpb.Watch/Watch"
OPEN_BATCH = 100


class WatchFleet(Fleet):
    """S etcd watches in this process; records when each sees each route revision."""

    what = "etcd watch"
    ready_phrase = "were created"

    def __init__(self, endpoint: str, prefix: str, watches: int, connections: int) -> None:
        super().__init__(watches)
        self.endpoint = endpoint
        self.prefix = prefix + "routes/"
        self.k = max(1, min(connections, watches))
        self.held = [0] * watches

    async def open(self, timeout: float) -> None:
        for _ in range(self.k):
            # A local subchannel pool: each channel gets its own HTTP/2 connection.
            self._channels.append(
                grpc.aio.insecure_channel(self.endpoint, options=[("grpc.use_local_subchannel_pool", 1)])
            )
        key = self.prefix.encode()
        create = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=key, range_end=prefix_end(key))  # from now on
        ).SerializeToString()
        end = time.monotonic() + timeout
        for i in range(self.n):
            ch = self._channels[i % self.k]
            method: Any = ch.stream_stream(WATCH_METHOD, request_serializer=None, response_deserializer=None)
            call = method()
            self._calls.append(call)
            self._tasks.append(asyncio.create_task(self._watch(i, call, create), name=f"bench-watch-{i}"))
            if (i + 1) % OPEN_BATCH == 0 or i + 1 == self.n:
                await self._until_ready(i + 1, end, timeout)

    async def _watch(self, i: int, call: Any, create: bytes) -> None:
        eof = grpc.aio.EOF  # type: ignore[attr-defined]
        try:
            await call.write(create)
            while True:
                raw = await call.read()
                if raw is eof:
                    self.errors[i] = "watch stream ended by etcd"
                    return
                t = time.monotonic_ns()
                resp = rpc_pb2.WatchResponse.FromString(raw)
                if resp.created:
                    self._is_ready()
                if resp.canceled or resp.compact_revision:
                    self.errors[i] = f"watch cancelled: {resp.cancel_reason or resp.compact_revision}"
                    return
                for ev in resp.events:
                    rev = int(ev.kv.mod_revision)
                    if ev.type == 0 and rev > self.held[i]:  # 0: PUT
                        self.held[i] = rev
                        self._arrived(rev, t)
        except grpc.aio.AioRpcError as exc:
            self.errors[i] = f"{exc.code().name}: {exc.details()}"

    async def wait_complete(self, rev: int, timeout: float) -> list[int]:
        got = await self._await_all(rev, timeout)
        if len(got) < self.n:
            missing = [i for i in range(self.n) if self.held[i] < rev]
            errs = sorted({self.errors[i] for i in missing if i in self.errors})[:3]
            raise BenchFailure(
                f"{len(missing)}/{self.n} etcd watches did not see route revision {rev} within {timeout}s"
                + (f" ({'; '.join(errs)})" if errs else "")
            )
        return got


async def run_etcd_watch(
    cluster: Cluster,
    *,
    commit_seen: Callable[[int, float], Any],
    cpu_snapshot: Callable[[Cluster], dict[str, float]],
    watches: int,
    connections: int,
    runs: int,
    leader_addr: str,
    active: str,
    run_timeout_s: float,
    pause_s: float,
    deadline: float,
    label: str,
) -> dict[str, Any]:
    """The same switches with S etcd watches instead of S Sync streams; t_commit from
    ``commit_seen(revision, timeout)`` (the bench's own watch)."""
    label = f"{label} etcd watch"
    last = Latency(f"{label} last", "t_commit -> the last of the S etcd watches sees the route")
    first = Latency(f"{label} first", "t_commit -> the first of the S etcd watches sees the route")
    every = Latency(f"{label} all", "t_commit -> each etcd watch sees the route (S per run)")
    windows: list[dict[str, float]] = []
    wall_ms: list[float] = []
    fleet = WatchFleet(cluster.endpoints[0], cluster.prefix, watches, connections)
    try:
        t_open = time.monotonic()
        progress(f"[{label}] opening {watches} etcd watches over {fleet.k} connection(s)")
        await fleet.open(timeout=max(30.0, watches / 20))
        progress(f"[{label}] {watches} etcd watches created after {time.monotonic() - t_open:.2f}s")
        for run in range(-1, runs):  # run -1: warm-up, not recorded
            if time.monotonic() > deadline:
                raise BenchFailure(f"--max-seconds reached before etcd-watch run {run + 1} of {label}")
            cluster.check_alive()
            path = PATHS[1] if active == PATHS[0] else PATHS[0]
            cpu_before = cpu_snapshot(cluster)
            t_sent = time.monotonic_ns()
            try:
                resp = await cluster.switch(leader_addr, path, timeout=5.0)
            except grpc.aio.AioRpcError as exc:
                raise BenchFailure(f"Switch: {exc.code().name}: {exc.details()}") from exc
            rev = int(resp.decision.epoch.revision)
            active = path
            t_commit = await commit_seen(rev, run_timeout_s)
            got = await fleet.wait_complete(rev, run_timeout_s)
            cpu_after = cpu_snapshot(cluster)
            if run >= 0:
                t_last = max(got)
                last.record_ns(t_last - t_commit)
                first.record_ns(min(got) - t_commit)
                for t in got:
                    every.record_ns(t - t_commit)
                both = cpu_before.keys() & cpu_after
                windows.append({k: (cpu_after[k] - cpu_before[k]) * 1000 for k in both})
                wall_ms.append((time.monotonic_ns() - t_sent) / 1e6)
                progress(
                    f"[{label}] run {run + 1}/{runs} rev {rev}: last watch {(t_last - t_commit) / 1e6:.2f} ms"
                )
            await asyncio.sleep(pause_s)
        cpu = {k: round(sum(w.get(k, 0.0) for w in windows) / len(windows), 1) for k in windows[0]}
        return {
            "watches": watches,
            "connections": fleet.connections,
            "last_watch": last.to_json(),
            "first_watch": first.to_json(),
            "all_watches": every.to_json(),
            "mean_window": {"wall_ms": round(sum(wall_ms) / len(wall_ms), 2), "cpu_ms": cpu},
            "note": "one-way: an etcd watch gives no acknowledgement and carries no health back",
        }
    finally:
        await fleet.close()
