"""A sidecar whose start fails part-way stops what it had started: the gRPC server, the
framed listener and their socket files, before the event loop closes.

Before, anything raised between the server's start and the main loop (the agent's start,
the framed listener) left the server to the garbage collector ("Exception ignored in
Server.__del__ ... Event loop is closed" at exit) and both socket files on disk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from failover_sidecar.app import SidecarApp
from failover_sidecar.config import ListenSection, SidecarConfig

from failover.model.spec import GroupSpec, PathSpec
from failover.procs import free_port
from tests.sidecar_integration.harness import short_dir

GROUP = "g1"


class Boom(RuntimeError):
    pass


async def test_a_failed_start_stops_the_server_and_removes_the_sockets(tmp_path: Path, monkeypatch) -> None:
    sock_dir = short_dir("startfail")
    try:
        grpc_socket, framed_socket = sock_dir / "h1.sock", sock_dir / "h1.framed"
        cfg = SidecarConfig(
            host_id="h1",
            groups=[GROUP],
            coordinators=[f"127.0.0.1:{free_port()}"],
            state_file=str(tmp_path / "h1.state.json"),
            strategies=["s1"],
            listen=ListenSection(socket=str(grpc_socket), framed_socket=str(framed_socket)),
            bootstrap=[
                GroupSpec(
                    name=GROUP,
                    paths=[
                        PathSpec(name=p, endpoints={"default": f"127.0.0.1:{free_port()}"})
                        for p in ("a", "b")
                    ],
                )
            ],
        )
        app = SidecarApp(cfg)
        stopped: list[str] = []
        real_stop = app.framed.stop

        async def failing_start() -> None:
            assert grpc_socket.exists() and framed_socket.exists()  # both were serving
            raise Boom("the agent could not start")

        async def recording_stop() -> None:
            stopped.append("framed")
            await real_stop()

        monkeypatch.setattr(app.agent, "start", failing_start)
        monkeypatch.setattr(app.framed, "stop", recording_stop)
        with pytest.raises(Boom):
            await app.run()
        assert stopped == ["framed"]
        assert not grpc_socket.exists(), "the gRPC socket file was left behind"
        assert not framed_socket.exists(), "the framed socket file was left behind"
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
