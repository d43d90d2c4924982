"""Operator calls timed from their own thread and event loop (``fanout --operator-during-fanout``).

The bench's main loop is busy with the S streams' reads and acks while a
decision fans out: a reply timed there would include the bench's own queue.
Here every Switch is sent and its reply timestamped on a loop that does
nothing else, so what is measured is the coordinator's answer.

Per run: an idle commit (a Switch of ``QUIET``, a group no stream subscribes
to, with nothing in progress), then the Switch of the streams' group that
causes the fan-out, and a second Switch of ``QUIET`` fired when the first
stream receives that decision: while the replica is pushing it to the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc

from failover import rpc
from failover.bench.common import GROUP, PATHS, BenchFailure
from failover.bench.tls_variant import BenchPki
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc

QUIET = "bench-quiet"


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
    """A thread with its own loop and channel to the leader, for timed Switch calls."""

    def __init__(
        self, leader_address: str, pki: BenchPki | None, quiet_active: str, timeout_s: float
    ) -> None:
        self._address = leader_address
        self._tls = pki.operator() if pki is not None else None
        self._timeout = timeout_s
        self._active = {QUIET: quiet_active}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-operator", daemon=True)
        self._stub: Any = None
        self._channel: grpc.aio.Channel | None = None
        self.during: Future[Call] | None = None

    def start(self) -> None:
        self._thread.start()
        self._submit(self._open()).result(10.0)

    async def _open(self) -> None:
        self._channel = rpc.channel(self._address, tls=self._tls)
        self._stub = admin_pb2_grpc.AdminStub(self._channel)

    def _submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _switch(self, group: str, path: str | None) -> Call:
        if path is None:
            path = PATHS[1] if self._active.get(group) == PATHS[0] else PATHS[0]
        req = apb.SwitchRequest(group=group, path=path, reason="bench", operator="bench", force=True)
        sent_wall_ms = time.time() * 1000
        sent = time.monotonic_ns()
        try:
            resp = await self._stub.Switch(req, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise BenchFailure(f"Switch of {group} to {path}: {exc.code().name}: {exc.details()}") from exc
        reply = time.monotonic_ns()
        if list(resp.decision.paths)[:1] != [path]:
            raise BenchFailure(f"Switch of {group} to {path} answered {list(resp.decision.paths)}")
        self._active[group] = path
        d = resp.decision
        queued = next((st.duration_us for st in d.stages if st.stage == "decide"), 0)
        decided = int(d.decided_at_unix_ms - sent_wall_ms)
        return Call(group, path, sent, reply, int(d.epoch.revision), queued, decided)

    async def idle_commit(self) -> Call:
        """A Switch of QUIET with nothing else in progress."""
        return await asyncio.wrap_future(self._submit(self._switch(QUIET, None)))

    async def fanout_switch(self, path: str) -> Call:
        """The Switch of the streams' group: its commit starts the fan-out."""
        return await asyncio.wrap_future(self._submit(self._switch(GROUP, path)))

    def fire(self) -> None:
        """Send the during-fan-out Switch of QUIET now (once per arming)."""
        if self.during is None:
            self.during = self._submit(self._switch(QUIET, None))

    async def take_during(self, timeout_s: float) -> Call:
        fut = self.during
        if fut is None:
            raise BenchFailure("the during-fan-out Switch was never fired (no stream received the decision)")
        self.during = None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
        except TimeoutError:
            raise BenchFailure(
                f"the Switch sent during the fan-out got no reply within {timeout_s}s"
            ) from None

    async def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(self._submit(self._channel.close(None)))
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 10.0)
        with contextlib.suppress(Exception):
            self._loop.close()
