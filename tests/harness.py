"""In-process coordinator replicas on a real etcd, for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from coordinator.config import CoordinatorConfig
from coordinator.replica import Replica
from failover import rpc
from failover.aio import cancel_until_done
from failover.procs import free_port
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.procs import group


def config(replica_id: str, endpoints: list[str], prefix: str, **overrides: Any) -> CoordinatorConfig:
    data: dict[str, Any] = {
        "replica_id": replica_id,
        "listen": f"127.0.0.1:{free_port()}",
        "etcd": {"endpoints": endpoints, "prefix": prefix},
        "groups": [group()],
    }
    data.update(overrides)
    return CoordinatorConfig(**data)


class ReplicaSet:
    """N replicas running as tasks of the test's event loop."""

    def __init__(self, endpoints: list[str], prefix: str, n: int = 3, **overrides: Any) -> None:
        self.configs = [config(f"c{i + 1}", endpoints, prefix, **overrides) for i in range(n)]
        self.replicas: list[Replica | None] = [None] * n
        self.tasks: list[asyncio.Task[None] | None] = [None] * n

    async def start(self, i: int) -> Replica:
        r = Replica(self.configs[i])
        self.replicas[i] = r
        self.tasks[i] = asyncio.create_task(r.run(), name=f"replica-{i}")
        async with asyncio.timeout(10):
            await r.ready.wait()
        return r

    async def start_all(self) -> None:
        for i in range(len(self.configs)):
            await self.start(i)

    async def stop(self, i: int) -> None:
        t = self.tasks[i]
        if t is not None:
            # Cancelled again until it ends (a cancel can be lost on 3.11), and bounded: a
            # replica that does not stop fails the test with its stack, not a hang.
            if not await cancel_until_done(t, limit_s=30):
                for other in asyncio.all_tasks():
                    other.print_stack()
                r = self.replicas[i]
                if r is not None:
                    # Its channels closed now, in this loop: left to the garbage collector
                    # they would be finalized during a later test (a crash in grpc).
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(5):
                            await r.peers.close()
                            await r.store.close()
                raise AssertionError(f"replica {i} did not stop within 30 s of being cancelled")
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.tasks[i] = None
        self.replicas[i] = None

    async def stop_all(self) -> None:
        """Stop every replica, also after one failed to stop (then raise its error): a
        replica left running keeps its gRPC channels past the test's event loop."""
        failure: BaseException | None = None
        for i in range(len(self.configs)):
            try:
                await self.stop(i)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def running(self) -> list[Replica]:
        return [r for r in self.replicas if r is not None]

    def leaders(self) -> list[Replica]:
        return [r for r in self.running() if r.election.is_leader]

    async def wait_leader(self, timeout: float = 10.0, not_id: str | None = None) -> Replica:
        async with asyncio.timeout(timeout):
            while True:
                ls = [
                    r
                    for r in self.leaders()
                    if r.cfg.replica_id != not_id and r.leader.leadership is not None
                ]
                if len(ls) == 1:
                    return ls[0]
                await asyncio.sleep(0.01)

    def address(self, i: int) -> str:
        return self.configs[i].listen


@contextlib.asynccontextmanager
async def never_listing(endpoints: list[str], prefix: str, replica_id: str = "c2") -> AsyncIterator[Replica]:
    """A replica whose first etcd listing never completes: it serves, its view stays empty.
    Yielded once its server is up; cancelled on exit."""
    late = Replica(config(replica_id, endpoints, prefix))
    listing = asyncio.Event()

    async def never_lists(_prefix: str) -> Any:
        listing.set()
        await asyncio.Event().wait()

    late.store.get_prefix = never_lists  # type: ignore[method-assign]
    task = asyncio.create_task(late.run())
    try:
        async with asyncio.timeout(10):
            await listing.wait()
        await wait_for(lambda: late.port != 0, 10, f"{replica_id} serving")
        yield late
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a cheap in-memory predicate (state changes have no event to await here)."""
    try:
        async with asyncio.timeout(timeout):
            while not pred():  # noqa: ASYNC110 - no event exists for arbitrary state
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


@contextlib.asynccontextmanager
async def admin(address: str) -> AsyncIterator[admin_pb2_grpc.AdminStub]:
    ch = rpc.channel(address)
    try:
        yield admin_pb2_grpc.AdminStub(ch)
    finally:
        await ch.close()


async def switch(
    address: str, grp: str, path: str, reason: str = "test", force: bool = True
) -> apb.ControlResponse:
    """An operator switch; forced by default (these tests often run without sidecars reporting health)."""
    async with admin(address) as stub:
        resp: apb.ControlResponse = await stub.Switch(
            apb.SwitchRequest(group=grp, path=path, reason=reason, operator="test", force=force), timeout=10
        )
        return resp


def code_of(exc: BaseException) -> grpc.StatusCode | None:
    return exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None


async def leader_of(
    addresses: list[str], timeout: float = 15.0, not_id: str | None = None
) -> tuple[str, str]:
    """(leader id, an address that answered) by polling GetStatus over grpc.aio (never mix in sync gRPC)."""
    last: Exception | None = None
    async with asyncio.timeout(timeout):
        while True:
            for a in addresses:
                try:
                    async with admin(a) as stub:
                        st = await stub.GetStatus(apb.GetStatusRequest(), timeout=3)
                except grpc.aio.AioRpcError as exc:
                    last = exc
                    continue
                if st.leader.replica_id and st.leader.replica_id != not_id:
                    return st.leader.replica_id, a
            await asyncio.sleep(0.01)
    raise AssertionError(f"no leader ({last})")


# Keys replicas write on their own whenever they (re)start or lose a campaign: their
# presence and their candidacy. A test that checks "nothing was written" leaves them out.
SELF_WRITTEN = ("/members/", "/election/candidates/")


async def kv_snapshot(store: Any, prefix: str) -> dict[str, tuple[bytes, int]]:
    """key -> (value, mod revision) under ``prefix``, but the keys replicas write on their own."""
    kvs, _ = await store.get_prefix(prefix)
    return {kv.key: (kv.value, kv.mod_revision) for kv in kvs if not any(p in kv.key for p in SELF_WRITTEN)}
