"""The bare fan-out floor: a grpc.aio push-with-acks with nothing of ours in it.

A child process that speaks just enough of ``failover.v1.Sync/Stream`` for the bench's
stream fleet: each stream's first message is taken as its hello and answered with an
empty snapshot; on ``Push(revision)`` (a unary call from the bench) one decision,
encoded once, is written to every stream by that stream's own writer; the acks are
read. No view, no session state, no health, no metrics, no traces, no
authorization: the coordinators' figure over this one is what they add to grpc.aio's own
per-message cost on the same machine.

    python -m failover.bench.fanout_bare --port PORT

Prints ``ready`` once it serves; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from failover import rpc
from failover.bench.common import GROUP, PATHS, BenchFailure, progress
from failover.bench.serve_child import child_main, floor_child, start_ready, until_stopped
from failover.machine import proc_cpu_s
from failover.procs import free_port
from failover.stats import Latency
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb

SERVICE = "failover.v1.Sync"
PUSH_SERVICE = "failover.bench.BareFanout"
REVISION = struct.Struct(">q")
_SNAPSHOT = sync_pb2.ReplicaMessage(snapshot=sync_pb2.Snapshot()).SerializeToString()


class BareFanout:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes]] = set()

    async def stream(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        it = requests.__aiter__()
        try:
            await it.__anext__()  # the hello
        except StopAsyncIteration:
            return
        q: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.add(q)

        async def read_acks() -> None:
            async for _raw in it:  # each ack is read (and decoded by grpc.aio), nothing more
                pass

        reader = asyncio.create_task(read_acks())
        try:
            yield _SNAPSHOT
            while not reader.done():
                yield await q.get()
        finally:
            self.queues.discard(q)
            reader.cancel()

    async def push(self, request: bytes, context: Any) -> bytes:
        (revision,) = REVISION.unpack(request)
        # About the size of a coordinator's decision (reason, leader, trigger, wall clock).
        msg = sync_pb2.ReplicaMessage(
            decision=pb.Decision(
                group=GROUP,
                paths=list(PATHS),
                epoch=pb.Epoch(era=0, revision=revision),
                leader_id="c1",
                reason="operator switch: bench",
                trigger=pb.Trigger(kind="operator", operator="bench"),
                decided_at_unix_ms=int(time.time() * 1000),
                fencing_token=revision - 1,
            )
        ).SerializeToString()
        for q in self.queues:
            q.put_nowait(msg)
        return REVISION.pack(len(self.queues))


async def run_bare_floor(
    *,
    streams: int,
    channels_per_replica: int,
    channel_per_stream: bool,
    runs: int,
    run_timeout_s: float,
    pause_s: float,
    deadline: float,
    label: str,
    log_dir: Path,
) -> dict[str, Any]:
    """The same S streams and runs against the bare floor: t_push -> each stream's receive,
    and the floor process's CPU per decision (the same window as the coordinators')."""
    from failover.bench.fanout import StreamFleet

    port = free_port()
    child = floor_child(
        "bare-fanout", "failover.bench.fanout_bare", ["--port", str(port)], log_dir / "bare-fanout.log"
    )
    last = Latency(f"{label} bare last stream", "t_push -> the last of the S streams receives the decision")
    every = Latency(f"{label} bare all streams", "t_push -> each stream receives the decision (S per run)")
    cpu_ms: list[float] = []
    fleet = None
    try:
        await start_ready(child, 30.0)
        addr = f"127.0.0.1:{port}"
        fleet = StreamFleet([addr], streams, channels_per_replica, channel_per_stream=channel_per_stream)
        progress(f"[{label}] bare floor: opening {streams} streams")
        await fleet.open(timeout=max(30.0, streams / 20))
        async with rpc.channel(addr) as ch:
            push = ch.unary_unary(
                f"/{PUSH_SERVICE}/Push", request_serializer=None, response_deserializer=None
            )
            for run in range(-1, runs):  # run -1: warm-up
                if time.monotonic() > deadline:
                    raise BenchFailure(f"--max-seconds reached before bare floor run {run + 1} of {label}")
                rev = 1_000_000 + run + 2
                cpu0 = proc_cpu_s(child.pid)
                t0 = time.monotonic_ns()
                await push(REVISION.pack(rev), timeout=5.0)
                got = await fleet.wait_complete(rev, run_timeout_s)
                cpu1 = proc_cpu_s(child.pid)
                if run >= 0:
                    last.record_ns(max(got) - t0)
                    for t in got:
                        every.record_ns(t - t0)
                    cpu_ms.append((cpu1 - cpu0) * 1000)
                    took_ms = (max(got) - t0) / 1e6
                    progress(f"[{label}] bare floor run {run + 1}/{runs}: last stream {took_ms:.2f} ms")
                await asyncio.sleep(pause_s)
    finally:
        if fleet is not None:
            await fleet.close()
        child.stop(timeout=5)
    mean_cpu = sum(cpu_ms) / len(cpu_ms) if cpu_ms else 0.0
    return {
        "last_stream": last.to_json(),
        "all_streams": every.to_json(),
        "cpu_ms_per_decision": round(mean_cpu, 2),
        "cpu_us_per_stream_per_decision": round(1000 * mean_cpu / streams, 1) if streams else 0.0,
        "note": "t_push = the bench sends Push to the floor process (one unary call, included)",
    }


async def serve(port: int) -> None:
    bare = BareFanout()
    server = rpc.make_server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Stream": grpc.stream_stream_rpc_method_handler(bare.stream)}
            ),
            grpc.method_handlers_generic_handler(
                PUSH_SERVICE, {"Push": grpc.unary_unary_rpc_method_handler(bare.push)}
            ),
        )
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        await until_stopped()
    finally:
        await server.stop(0.5)


def main(argv: list[str] | None = None) -> int:
    return child_main(__doc__ or "", "fanout_bare", {"port": int}, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
