"""A test client speaking failover.v1.Sync: hello, acks, health; records what it gets."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import grpc

from failover import rpc
from failover.v1 import sync_pb2, sync_pb2_grpc
from failover.v1 import types_pb2 as pb


@dataclass
class SyncClient:
    host_id: str
    groups: list[str]
    site: str = "default"
    instance: str = ""  # Hello.instance
    auto_ack: bool = True
    held: dict[str, tuple[int, int]] = field(default_factory=dict)
    # The proof a replica pushed with each held epoch (sent back in the hello, as a sidecar does).
    proofs: dict[str, bytes] = field(default_factory=dict)
    decisions: list[pb.Decision] = field(default_factory=list)
    definitions: list[pb.GroupDefinition] = field(default_factory=list)
    snapshots: list[sync_pb2.Snapshot] = field(default_factory=list)
    heartbeats: list[sync_pb2.Heartbeat] = field(default_factory=list)
    health_requests: int = 0
    # every message in arrival order: a kind, or "stale"/"fresh" for a heartbeat
    arrivals: list[str] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._out: asyncio.Queue[sync_pb2.SidecarMessage | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None

    async def connect(self, address: str) -> None:
        self._channel = rpc.channel(address)
        stub = sync_pb2_grpc.SyncStub(self._channel)
        hello = sync_pb2.Hello(
            host_id=self.host_id, site=self.site, groups=self.groups, instance=self.instance
        )
        for g, (era, rev) in self.held.items():
            hello.held[g].CopyFrom(pb.Epoch(era=era, revision=rev, proof=self.proofs.get(g, b"")))
        self._out.put_nowait(sync_pb2.SidecarMessage(hello=hello))
        call = stub.Stream(self._requests())
        self._task = asyncio.create_task(self._read(call))

    async def _requests(self):  # type: ignore[no-untyped-def]
        while True:
            msg = await self._out.get()
            if msg is None:
                return
            yield msg

    def _accept(self, d: pb.Decision) -> None:
        epoch = (d.epoch.era, d.epoch.revision)
        if epoch > self.held.get(d.group, (0, 0)):
            self.held[d.group] = epoch
            self.proofs[d.group] = d.epoch.proof
            self.decisions.append(d)
        if self.auto_ack:
            self.ack(d.group, self.held[d.group])

    async def _read(self, call) -> None:  # type: ignore[no-untyped-def]
        try:
            async for msg in call:
                kind = msg.WhichOneof("kind")
                if kind == "heartbeat":
                    self.arrivals.append("stale" if msg.heartbeat.freshness.stale else "fresh")
                else:
                    self.arrivals.append(kind)
                if kind == "snapshot":
                    self.snapshots.append(msg.snapshot)
                    self.definitions.extend(msg.snapshot.groups)
                    for d in msg.snapshot.decisions:
                        self._accept(d)
                elif kind == "decision":
                    self._accept(msg.decision)
                elif kind == "group":
                    self.definitions.append(msg.group)
                elif kind == "heartbeat":
                    self.heartbeats.append(msg.heartbeat)
                elif kind == "health_request":
                    self.health_requests += 1
                self.changed.set()
                self.changed = asyncio.Event()
        except grpc.aio.AioRpcError as exc:
            self.error = exc
        finally:
            self.changed.set()

    def ack(self, group: str, epoch: tuple[int, int]) -> None:
        self._out.put_nowait(
            sync_pb2.SidecarMessage(
                ack=sync_pb2.Ack(group=group, epoch=pb.Epoch(era=epoch[0], revision=epoch[1]))
            )
        )

    def report(self, states: dict[tuple[str, str], int], full: bool = True) -> None:
        paths = [
            pb.PathHealth(
                group=g, path=p, state=st, cause=pb.FAILURE_CAUSE_RESET if st == pb.PATH_STATE_DOWN else 0
            )
            for (g, p), st in states.items()
        ]
        self._out.put_nowait(sync_pb2.SidecarMessage(health=sync_pb2.HealthReport(full=full, paths=paths)))

    @property
    def stale(self) -> bool:
        return bool(self.heartbeats) and self.heartbeats[-1].freshness.stale

    async def wait(self, pred, timeout: float, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
        try:
            async with asyncio.timeout(timeout):
                while not pred():
                    if self._task is not None and self._task.done():
                        # Nothing more can arrive; waiting on the set event would spin without
                        # ever yielding, so the timeout could never fire.
                        raise AssertionError(
                            f"{self.host_id}: the stream ended ({self.error}) while waiting for {what}"
                        )
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.host_id}: timed out after {timeout}s waiting for {what}") from None

    async def close(self) -> None:
        self._out.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            await self._channel.close()


class RoamingClient:
    """Like a sidecar: stays on a replica until its stream breaks or it says it is stale."""

    def __init__(self, host_id: str, groups: list[str], addresses: list[str]) -> None:
        self.host_id = host_id
        self.groups = groups
        self.addresses = addresses
        self.held: dict[str, tuple[int, int]] = {}
        self.proofs: dict[str, bytes] = {}
        self.decisions: list[pb.Decision] = []
        self.moves: list[str] = []
        self.current: SyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        i = 0
        while True:
            c = SyncClient(self.host_id, self.groups, held=dict(self.held), proofs=dict(self.proofs))
            self.current = c
            await c.connect(self.addresses[i])
            self.moves.append(self.addresses[i])
            seen = 0
            try:
                while c.error is None:
                    await c.wait(
                        lambda c=c, seen=seen: c.error is not None or len(c.decisions) > seen or c.stale, 3600
                    )
                    self.decisions.extend(c.decisions[seen:])
                    seen = len(c.decisions)
                    self.held.update(c.held)
                    self.proofs.update(c.proofs)
                    if c.stale:
                        break
            finally:
                await c.close()
            i = (i + 1) % len(self.addresses)
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
