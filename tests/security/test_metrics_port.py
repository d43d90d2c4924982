"""The /metrics port under hostile clients: one log line, not a traceback; slow clients dropped;
a bounded number of connections.

Found from outside: 1,000 connect-and-reset connections to a coordinator's metrics port wrote
1,165 multi-line tracebacks (``ConnectionResetError`` from ``wsgiref``) into its JSON log,
and 4,000 connections that sent nothing held 4,011 threads and 4,027 descriptors for as long
as they stayed open (one thread per connection, no read timeout).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.request

import pytest

from failover.telemetry import metrics, metrics_http


@pytest.fixture
def served():  # type: ignore[no-untyped-def]
    t = metrics.build("test", "t1", listen="127.0.0.1:0")
    port = t.serve()
    yield port
    t.shutdown()


def _scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return bytes(r.read())


def test_connections_reset_mid_request_leave_no_traceback(
    served: int, capfd: pytest.CaptureFixture[str]
) -> None:
    for i in range(60):
        s = socket.create_connection(("127.0.0.1", served))
        s.sendall([b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /met"][i % 3])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST while the server writes its answer
    assert _scrape(served)
    time.sleep(0.2)  # the handler threads of the reset connections finish
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]


def test_a_silent_client_is_dropped_and_connections_are_bounded(served: int) -> None:
    held = []
    try:
        for _ in range(metrics_http.MAX_CONNECTIONS + 20):
            held.append(socket.create_connection(("127.0.0.1", served)))
        threads = threading.active_count()
        assert threads <= metrics_http.MAX_CONNECTIONS + 10, threads
        first = held[0]
        first.settimeout(metrics_http.READ_TIMEOUT_S + 5)
        t0 = time.monotonic()
        assert first.recv(1) == b""  # closed by the server
        assert time.monotonic() - t0 < metrics_http.READ_TIMEOUT_S + 3
    finally:
        for s in held:
            s.close()
    assert _scrape(served)
