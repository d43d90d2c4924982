"""Bytes that are not TLS, sent to an mTLS port, leave no line per connection in the log.

gRPC's C core logged ``Handshake failed with error SSL_ERROR_SSL ...`` for every such
connection, as a raw glog line (``I1202 11:37:20 ... ssl_transport_security.cc``) among
the process's JSON lines: a scanner wrote one unparseable log line per connection. The
CLI now starts every process with ``GRPC_VERBOSITY=ERROR`` unless the environment says
otherwise; the refusals stay visible as RPC metrics and to the caller.
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from tests.procs import Proc, coordinator_config
from tests.security.pki import Pki

pytestmark = pytest.mark.cluster

POKES = 30


def _poke(address: str, n: int) -> None:
    host, _, port = address.rpartition(":")
    for _ in range(n):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(os.urandom(300))
            s.settimeout(2)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass


async def test_garbage_on_an_mtls_port_is_not_logged_per_connection(
    tmp_path, etcd_cluster, prefix, pki: Pki
) -> None:
    tls = pki.tls("replica-c1").model_dump(mode="json")
    cfg, addr = coordinator_config(tmp_path, "c1", etcd_cluster.endpoints, prefix, tls=tls)
    proc = Proc("c1", ["coordinator", "--config", str(cfg)], tmp_path)
    assert proc.env is not None
    proc.env.pop("GRPC_VERBOSITY", None)  # the default is what is tested
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_log, "elected leader", 30)
        await asyncio.to_thread(_poke, addr, POKES)
        assert proc.alive, proc.log()[-2000:]
    finally:
        proc.stop()
    log = proc.log()
    assert "Handshake failed" not in log, log[-2000:]
    assert "Traceback" not in log
