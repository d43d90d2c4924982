"""An in-process sidecar (SidecarApp with its framed socket on) and a venue, over real sockets.

No coordinator (its address refuses; the link retries in the background): the decision
``[primary, backup]`` is given to the agent directly, as tests/sidecar_integration/test_loop_stall.py does.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from failover_sidecar.app import SidecarApp
from failover_sidecar.config import ListenSection, SidecarConfig

from failover.model.spec import GroupSpec, PathSpec
from failover.procs import free_port
from failover.v1 import types_pb2 as pb
from failover.venue.config import GatewayConfig, VenueConfig
from failover.venue.server import Venue
from tests.sidecar_integration.harness import GROUP, STRATEGY, short_dir

WAIT_S = 5.0


@dataclass
class FramedRig:
    venue: Venue
    app: SidecarApp
    grpc_socket: str
    framed_socket: str


async def poll(pred: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():  # noqa: ASYNC110 - in-memory state with no event of its own
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[FramedRig]:
    """``@pytest.mark.parametrize("rig", [{"orders": {...}}], indirect=True)``: extra config sections."""
    extra = dict(getattr(request, "param", {}))
    listen_extra = extra.pop("listen", {})
    venue = Venue(
        VenueConfig(gateways=[GatewayConfig(name=g, listen="127.0.0.1:0") for g in ("primary", "backup")])
    )
    await venue.start()
    sock_dir = short_dir("framed")
    task: asyncio.Task[None] | None = None
    try:
        gws = venue.gateway_addresses
        spec = GroupSpec(
            name=GROUP, paths=[PathSpec(name=p, endpoints={"default": gws[p]}) for p in ("primary", "backup")]
        )
        grpc_socket, framed_socket = str(sock_dir / "h1.sock"), str(sock_dir / "h1.framed")
        cfg = SidecarConfig(
            host_id="h1",
            groups=[GROUP],
            coordinators=[f"127.0.0.1:{free_port()}"],
            state_file=str(tmp_path / "h1.state.json"),
            strategies=[STRATEGY, "s2"],
            listen=ListenSection(socket=grpc_socket, framed_socket=framed_socket, **listen_extra),
            bootstrap=[spec],
            **extra,
        )
        app = SidecarApp(cfg)
        task = asyncio.create_task(app.run(), name="sidecar")
        async with asyncio.timeout(WAIT_S):
            await app.ready.wait()
        agent = app.agent
        agent.on_decision(
            pb.Decision(
                group=GROUP, paths=["primary", "backup"], epoch=pb.Epoch(era=0, revision=1), reason="t"
            ),
            [],
        )
        await poll(
            lambda: (
                agent.routes[GROUP].effective == "primary"
                and all(agent.sessions[(GROUP, p)].can_send for p in ("primary", "backup"))
            ),
            "both paths logged on and the route on primary",
        )
        yield FramedRig(venue, app, grpc_socket, framed_socket)
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await venue.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


def swallow_venue_acks(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now until ``monkeypatch.undo()``, the venue books orders but sends no ack: a line
    that stays up (heartbeats answered) and never answers an order."""
    from failover.venue import session as venue_session

    send = venue_session.Connection.send

    def swallow_acks(self: venue_session.Connection, msg: dict[str, object]) -> None:
        if msg.get("t") != "ack":
            send(self, msg)

    monkeypatch.setattr(venue_session.Connection, "send", swallow_acks)
