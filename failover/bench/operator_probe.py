"""Operator calls timed from a process of their own (``fanout --operator-during-fanout``).

The bench's main loop is busy with the S streams' reads and acks while a
decision fans out: a reply timed there would include the bench's own queue,
and so would one timed on another thread of the bench (every step of its call
waits for the interpreter lock, up to a switch interval of 5 ms each time,
while the bench's streams keep it busy). Here every Switch is sent and its reply
timestamped by a child process that does nothing else, so what is measured is
the coordinator's answer. Both processes read the same system-wide monotonic
clock, so the child's timestamps compare with the bench's.

Per run: an idle commit (a Switch of ``QUIET``, a group no stream subscribes
to, with nothing in progress), then the Switch of the streams' group that
causes the fan-out, and a second Switch of ``QUIET`` fired when the first
stream receives that decision: while the replica is pushing it to the rest. At
that same moment the child also times a bare etcd transaction of a commit's shape
(``failover.bench.floor_txn``): what etcd alone answers in while the fan-out
loads the machine, the floor the during-fan-out Switch is read against.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import grpc

from coordinator.store.etcd_store import EtcdStore
from failover import rpc
from failover.bench.common import GROUP, PATHS, BenchFailure
from failover.bench.floor_txn import FloorTxn
from failover.bench.tls_variant import BenchPki
from failover.tls import TlsSection
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc

QUIET = "bench-quiet"
FLOOR = "@floor"  # the child's command for one floor transaction


@dataclass(frozen=True)
class Call:
    group: str
    path: str
    sent_ns: int
    reply_ns: int
    revision: int
    # From the reply: how long the request queued at the leader before its commit began,
    # and when (wall clock) the leader decided, relative to the send.
    queued_us: int = 0
    decided_after_send_ms: int = 0

    @property
    def latency_ns(self) -> int:
        return self.reply_ns - self.sent_ns


class OperatorProbe:
    """A child process with its own channel to the leader, for timed Switch calls.

    One line per call each way: ``<id> <group> <path>`` to the child, the ``Call``
    as JSON (or an error) back.
    """

    def __init__(
        self,
        leader_address: str,
        pki: BenchPki | None,
        quiet_active: str,
        timeout_s: float,
        etcd_endpoints: list[str] | None = None,
    ) -> None:
        self._args = {
            "address": leader_address,
            "tls": pki.operator().model_dump() if pki is not None else None,
            "timeout_s": timeout_s,
            "etcd": list(etcd_endpoints or []),  # with endpoints: the floor txn beside each fire()
        }
        self._active = {QUIET: quiet_active}
        self._proc: asyncio.subprocess.Process | None = None
        self._replies: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Call]] = {}
        self._ids = itertools.count(1)
        self.during: asyncio.Future[Call] | None = None
        self.floor: asyncio.Future[Call] | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "failover.bench.operator_probe",
            json.dumps(self._args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        try:
            ready = await asyncio.wait_for(self._proc.stdout.readline(), 30.0)
        except TimeoutError:
            ready = b""
        if ready.strip() != b"ready":
            await self.close()
            raise BenchFailure(f"the operator probe process did not start ({ready!r})")
        self._replies = asyncio.create_task(self._read_replies(), name="bench-operator-replies")

    async def _read_replies(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            msg = json.loads(line)
            fut = self._pending.pop(msg["id"], None)
            if fut is None or fut.done():
                continue
            if "error" in msg:
                fut.set_exception(BenchFailure(msg["error"]))
            else:
                fut.set_result(Call(**msg["call"]))
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(BenchFailure("the operator probe process ended"))

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _switch(self, group: str, path: str | None) -> asyncio.Future[Call]:
        """Send a Switch now (the child times it); the future has its ``Call``."""
        if self._proc is None or self._proc.stdin is None:
            raise BenchFailure("the operator probe is not running")
        if path is None:
            path = PATHS[1] if self._active.get(group) == PATHS[0] else PATHS[0]
        self._active[group] = path
        rid = next(self._ids)
        fut: asyncio.Future[Call] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._proc.stdin.write(f"{rid} {group} {path}\n".encode())
        return fut

    async def idle_commit(self) -> Call:
        """A Switch of QUIET with nothing else in progress."""
        return await self._switch(QUIET, None)

    async def fanout_switch(self, path: str) -> Call:
        """The Switch of the streams' group: its commit starts the fan-out."""
        return await self._switch(GROUP, path)

    def fire(self) -> None:
        """Send the during-fan-out Switch of QUIET now, and the floor transaction beside it
        when the probe has etcd's endpoints (once per arming)."""
        if self.during is None:
            self.during = self._switch(QUIET, None)
            if self._args["etcd"]:
                self.floor = self._switch(FLOOR, "-")

    async def take_floor(self, timeout_s: float) -> Call | None:
        """The floor transaction fired with the last during-fan-out Switch (None without etcd)."""
        fut, self.floor = self.floor, None
        if fut is None:
            return None
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            raise BenchFailure(f"the floor transaction got no answer within {timeout_s}s") from None

    async def take_during(self, timeout_s: float) -> Call:
        fut = self.during
        if fut is None:
            raise BenchFailure("the during-fan-out Switch was never fired (no stream received the decision)")
        self.during = None
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            raise BenchFailure(
                f"the Switch sent during the fan-out got no reply within {timeout_s}s"
            ) from None

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.stdin is not None:
            proc.stdin.close()  # the child ends at end of input
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._replies is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._replies, 5.0)


# --- the child ---------------------------------------------------------------


async def _child(args: dict[str, Any]) -> None:
    tls = TlsSection.model_validate(args["tls"]) if args["tls"] else None
    timeout = float(args["timeout_s"])
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()
    etcd = EtcdStore(args["etcd"], rpc_timeout_s=timeout, rpc_attempts=1) if args["etcd"] else None
    floor = FloorTxn(etcd) if etcd is not None else None

    def answer(msg: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    async def floor_txn(rid: int) -> None:
        assert floor is not None
        sent = time.monotonic_ns()
        try:
            dt = await floor.once()
        except Exception as exc:
            answer({"id": rid, "error": f"the floor transaction: {exc}"})
            return
        answer({"id": rid, "call": asdict(Call(FLOOR, "-", sent, sent + dt, 0))})

    async def switch(stub: Any, rid: int, group: str, path: str) -> None:
        req = apb.SwitchRequest(group=group, path=path, reason="bench", operator="bench", force=True)
        sent_wall_ms = time.time() * 1000
        sent = time.monotonic_ns()
        try:
            resp = await stub.Switch(req, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            answer({"id": rid, "error": f"Switch of {group} to {path}: {exc.code().name}: {exc.details()}"})
            return
        reply = time.monotonic_ns()
        if list(resp.decision.paths)[:1] != [path]:
            answer({"id": rid, "error": f"Switch of {group} to {path} answered {list(resp.decision.paths)}"})
            return
        d = resp.decision
        queued = next((st.duration_us for st in d.stages if st.stage == "decide"), 0)
        decided = int(d.decided_at_unix_ms - sent_wall_ms)
        call = Call(group, path, sent, reply, int(d.epoch.revision), queued, decided)
        answer({"id": rid, "call": asdict(call)})

    async with rpc.channel(args["address"], tls=tls) as channel:
        stub = admin_pb2_grpc.AdminStub(channel)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while line := await reader.readline():
            rid, group, path = line.decode().split()
            if group == FLOOR:
                task = asyncio.create_task(floor_txn(int(rid)))
            else:
                task = asyncio.create_task(switch(stub, int(rid), group, path))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout + 1.0)
    if etcd is not None:
        await etcd.close()  # in this loop: a channel left to the garbage collector can crash at exit


if __name__ == "__main__":
    asyncio.run(_child(json.loads(sys.argv[1])))
