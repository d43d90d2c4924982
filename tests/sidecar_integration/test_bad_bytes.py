"""Bytes that are not the port's protocol, sent to every port of every process we run.

A scanner, a health checker pointed at the wrong port, a client speaking TLS to a
plaintext port: each connection must be refused or closed on its own, the process must
log no traceback, and orders must keep flowing (the data path never depends on what
strangers send to the control ports). Idle connections left open while the system
works must not block it either.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from failover_client.api import OutcomeKind

from tests.sidecar_integration.harness import OrderFlow, standard, system

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

_RNG = random.Random(1202)
PAYLOADS = {
    "connect and close": b"",
    "random bytes": _RNG.randbytes(4096),
    "HTTP/1.1 request": b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/1.1 request, no end": b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n" + b"a" * 1000,
    "HTTP/2 preface then junk": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _RNG.randbytes(512),
    "TLS client hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + _RNG.randbytes(500),
    "huge length prefix": b"\xff\xff\xff\xff" + b"x" * 100,
    "one long line": b"A" * 200_000,
}
IDLE_PER_PORT = 10


async def _open(target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if target.startswith("unix:"):
        return await asyncio.open_unix_connection(target[5:])
    host, _, port = target.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _poke(target: str, data: bytes) -> None:
    """Send ``data``, read what comes back until the peer closes or 1 s passes, close."""
    r, w = await _open(target)
    try:
        if data:
            w.write(data)
            with contextlib.suppress(ConnectionError):
                await w.drain()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(1.0):
                while await r.read(65536):
                    pass
    finally:
        w.close()
        with contextlib.suppress(Exception):
            await w.wait_closed()


async def _scrape(target: str) -> bytes:
    r, w = await _open(target)
    try:
        w.write(b"GET /metrics HTTP/1.0\r\n\r\n")
        async with asyncio.timeout(5):
            return await r.read()
    finally:
        w.close()


async def test_bad_bytes_on_every_port_close_that_connection_only(tmp_path, etcd_cluster, prefix) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        coord_metrics, sidecar_tcp, sidecar_metrics = (f"127.0.0.1:{p}" for p in s.ports(3))
        sock, framed = str(s.sock_dir / "h1.sock"), str(s.sock_dir / "h1.framed.sock")
        await standard(
            s,
            ("h1",),
            replicas=1,
            sidecar={
                "listen": {"socket": sock, "tcp": sidecar_tcp, "framed_socket": framed},
                "metrics_listen": sidecar_metrics,
            },
            coordinator={"metrics_listen": coord_metrics},
        )
        v = s.venues["venue"]
        ports = {
            "coordinator gRPC": s.coordinator_addrs["c1"],
            "coordinator metrics": coord_metrics,
            "sidecar gRPC (unix)": f"unix:{sock}",
            "sidecar gRPC (tcp)": sidecar_tcp,
            "sidecar framed relay": f"unix:{framed}",
            "sidecar metrics": sidecar_metrics,
            "venue control": v.control,
            **{f"venue gateway {gw}": addr for gw, addr in v.gateways.items()},
        }
        idle = [await _open(t) for t in ports.values() for _ in range(IDLE_PER_PORT)]
        flow = OrderFlow("h1", sock)
        await flow.open()
        try:
            for name, target in ports.items():
                for what, data in PAYLOADS.items():
                    try:
                        await _poke(target, data)
                    except OSError as exc:
                        raise AssertionError(f"{name} ({target}) after {what!r}: {exc}\n{s.logs()}") from exc
                s.check_alive()
                o = await flow.send_one()
                assert o.kind == OutcomeKind.ACKED, (name, o)
            c = await s.counters()
            assert c.duplicates == 0, c
            for target in (coord_metrics, sidecar_metrics):  # scrapes still answered, idle ones open
                assert (await _scrape(target)).startswith(b"HTTP/1.0 200"), target
        finally:
            await flow.close()
            for _, w in idle:
                w.close()
        for p in [*s.coordinators.values(), s.sidecars["h1"].proc, v.proc]:
            log = p.log()
            assert "Traceback" not in log, f"{p.name}:\n{log[-4000:]}"
