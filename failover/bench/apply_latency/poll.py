"""Polling each sidecar's GetStatus until it shows a decision, and the sidecars' own log times."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from failover.bench.apply_latency.system import GROUP
from failover.bench.report import BenchFailure


@dataclass
class Seen:
    """When one sidecar's GetStatus first showed a revision above the one held before the switch."""

    revision: int
    reply_ns: int  # upper bound of the apply
    prev_sent_ns: int  # send time of the poll before it: lower bound
    polls: int
    poll_gaps_ns: list[int]  # between the starts of successive polls
    poll_rtts_ns: list[int]  # GetStatus sent -> reply


class Poller:
    """GetStatus of every sidecar over its unix socket, one task per sidecar, ``interval_s`` between polls."""

    def __init__(self, sockets: dict[str, str], interval_s: float) -> None:
        from failover import rpc

        self.interval_s = interval_s
        self.channels = {h: rpc.channel(f"unix:{s}") for h, s in sockets.items()}

    async def status(self, host: str, timeout: float = 5.0) -> Any:
        from failover.v1 import sidecar_pb2 as spb
        from failover.v1 import sidecar_pb2_grpc

        stub = sidecar_pb2_grpc.SidecarStub(self.channels[host])
        return await stub.GetStatus(spb.SidecarStatusRequest(), timeout=timeout)

    @staticmethod
    def revision(st: Any) -> int:
        for r in st.routes:
            if r.group == GROUP:
                return int(r.epoch.revision)
        return 0

    async def until_above(self, host: str, held: int, end: float) -> Seen:
        """Poll until the route's revision is above ``held``: a poll every interval (at once if late)."""
        prev_sent = time.monotonic_ns()
        polls = 0
        gaps: list[int] = []
        rtts: list[int] = []
        due = time.monotonic()
        while True:
            sent = time.monotonic_ns()
            if polls:
                gaps.append(sent - prev_sent)
            st = await self.status(host, timeout=2.0)
            reply = time.monotonic_ns()
            rtts.append(reply - sent)
            polls += 1
            rev = self.revision(st)
            if rev > held:
                return Seen(rev, reply, prev_sent, polls, gaps, rtts)
            prev_sent = sent
            if time.monotonic() > end:
                raise BenchFailure(f"sidecar {host} still holds revision {rev} (<= {held}) after the switch")
            due = max(due + self.interval_s, time.monotonic())
            await asyncio.sleep(due - time.monotonic())

    async def close(self) -> None:
        for ch in self.channels.values():
            with contextlib.suppress(Exception):
                await ch.close(None)


_LOG_DECISION = re.compile(rf"^(\S+Z) .*\bdecision {re.escape(GROUP)} (\d+):(\d+) -> ")


class LogTimes:
    """When each sidecar logged applying each decision (``Agent.on_decision`` logs it as it applies).

    A cross-check free of the polling resolution: the log line's UTC timestamp (microseconds)
    against the watcher's wall clock, both read from this host's CLOCK_REALTIME.
    """

    def __init__(self, logs: dict[str, Path]) -> None:
        self.logs = logs
        self._offsets = dict.fromkeys(logs, 0)
        self.applied: dict[tuple[str, int], int] = {}  # (host, revision) -> wall ns

    def scan(self) -> None:
        for host, path in self.logs.items():
            with contextlib.suppress(OSError), open(path, "rb") as f:
                f.seek(self._offsets[host])
                data = f.read()
                end = data.rfind(b"\n") + 1  # whole lines only
                self._offsets[host] += end
                for line in data[:end].decode(errors="replace").splitlines():
                    m = _LOG_DECISION.match(line)
                    if m is None:
                        continue
                    t = datetime.datetime.fromisoformat(m[1].replace("Z", "+00:00"))
                    ns = int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
                    self.applied.setdefault((host, int(m[3])), ns)
