"""What strangers send cannot flood a process's log.

Every request that does not parse, every framed connection that opens wrong, every
venue line that is not the protocol was logged once each: a scanner or a client in a
loop wrote one line per request, at the cost of the process's CPU (a JSON line costs
tens of µs of the event loop that also flips paths) and of the disk the log lands on.
Lines caused by outside input are now limited per kind: the first few are logged, then
at most one per interval, carrying how many like it were not logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

import grpc
import pytest
from failover_client.api import OutcomeKind

from tests.sidecar_integration.harness import OrderFlow, standard, system
from tests.sidecar_integration.test_undecodable_requests import GARBAGE

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

FLOOD = 400
# The limit: a burst, one line announcing the limit, and a few more over the flood's seconds.
MAX_LINES = 30


async def _garbage_calls(channel: grpc.aio.Channel, method: str, n: int) -> None:
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)

    async def one() -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await call(GARBAGE, timeout=5)

    for start in range(0, n, 50):
        await asyncio.gather(*(one() for _ in range(min(50, n - start))))


async def _bad_framed_opens(path: str, n: int) -> None:
    """Connect, send a frame that is not RelayRequest{open}, read until closed."""
    body = b"\x12\x00"  # RelayRequest with an empty message (field 2), not open
    for _ in range(n):
        r, w = await asyncio.open_unix_connection(path)
        w.write(struct.pack(">I", len(body)) + body)
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(2):
                while await r.read(65536):
                    pass
        w.close()


def _count(log: str, needle: str) -> int:
    return sum(1 for line in log.splitlines() if needle in line)


async def test_a_flood_of_bad_input_logs_a_bounded_number_of_lines(tmp_path, etcd_cluster, prefix) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        framed = str(s.sock_dir / "h1.framed.sock")
        sock = str(s.sock_dir / "h1.sock")
        await standard(s, ("h1",), replicas=1, sidecar={"listen": {"socket": sock, "framed_socket": framed}})
        coordinator = next(iter(s.coordinator_addrs.values()))
        await _garbage_calls(s.channel(coordinator), "/failover.v1.Admin/Switch", FLOOD)
        await _garbage_calls(s.channel(f"unix:{sock}"), "/failover.v1.Sidecar/GetStatus", FLOOD)
        await _garbage_calls(
            s.channel(s.venues["venue"].control), "/failover.v1.VenueControl/GetCounters", FLOOD
        )
        await _bad_framed_opens(framed, FLOOD)

        # Still serving, orders still flow.
        s.check_alive()
        flow = OrderFlow("h1", sock)
        await flow.open()
        try:
            assert (await flow.send_one()).kind == OutcomeKind.ACKED
        finally:
            await flow.close()

        c_log = next(iter(s.coordinators.values())).log()
        sc_log = s.sidecars["h1"].proc.log()
        v_log = s.venues["venue"].proc.log()
        seen = {
            "coordinator: Admin/Switch garbage": _count(c_log, "Admin/Switch: a request that does not parse"),
            "sidecar: GetStatus garbage": _count(sc_log, "Sidecar/GetStatus: a request that does not parse"),
            "venue: GetCounters garbage": _count(v_log, "GetCounters: a request that does not parse"),
            "sidecar: framed opens": _count(sc_log, "framed connection closed"),
        }
        for what, n in seen.items():
            assert 1 <= n <= MAX_LINES, (what, n, seen)
        # The lines that were not logged are counted in one that was.
        assert "not logged" in c_log or "at most one" in c_log, c_log[-2000:]
        for log in (c_log, sc_log, v_log):
            assert "Traceback" not in log
