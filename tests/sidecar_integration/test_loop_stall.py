"""A stalled sidecar event loop is not taken for dead venues (the loop-lag guard).

In-process: a SidecarApp (config, agent, order path, local gRPC server on a unix
socket) and a Venue on the same event loop, no coordinator (its address refuses:
the link retries in the background, which is harmless). The decision is given
to the agent directly. A callback then blocks the loop with ``time.sleep(0.3)``:
longer than the silence limit (3 heartbeat intervals), so without the guard
every path would be declared SILENT on the first tick after the stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from failover_sidecar.app import SidecarApp
from failover_sidecar.config import DataPlaneSection, ListenSection, SidecarConfig
from failover_sidecar.path import PathSession
from failover_sidecar.route import RouteState
from failover_sidecar.status import PathState

from failover.model.spec import GroupSpec, PathSpec
from failover.procs import free_port
from failover.v1 import types_pb2 as pb
from failover.venue.config import GatewayConfig, VenueConfig
from failover.venue.faults import FaultKind
from failover.venue.server import Venue
from failover.wire import protocol as p
from tests.sidecar_integration.harness import GROUP, STRATEGY, short_dir

WAIT_S = 5.0
STALL_S = 0.3


@dataclass
class Rig:
    venue: Venue
    app: SidecarApp
    dead: list[tuple[str, str, float]] = field(default_factory=list)  # (group, path, monotonic)
    routes: list[tuple[str | None, float]] = field(default_factory=list)

    @property
    def route(self) -> RouteState:
        return self.app.agent.routes[GROUP]

    def session(self, path: str) -> PathSession:
        return self.app.agent.sessions[(GROUP, path)]


async def _poll(pred, what: str, timeout: float = WAIT_S) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():  # noqa: ASYNC110 - in-memory state with no event of its own
                await asyncio.sleep(0.002)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


@contextlib.asynccontextmanager
async def rig(tmp_path, heartbeat_ms: int, **data_plane: float) -> AsyncIterator[Rig]:
    venue = Venue(
        VenueConfig(gateways=[GatewayConfig(name=g, listen="127.0.0.1:0") for g in ("primary", "backup")])
    )
    await venue.start()
    sock_dir = short_dir("stall")
    task: asyncio.Task[None] | None = None
    try:
        gws = venue.gateway_addresses
        spec = GroupSpec(
            name=GROUP,
            paths=[PathSpec(name=p, endpoints={"default": gws[p]}) for p in ("primary", "backup")],
        )
        cfg = SidecarConfig(
            host_id="h1",
            groups=[GROUP],
            coordinators=[f"127.0.0.1:{free_port()}"],
            state_file=str(tmp_path / "h1.state.json"),
            strategies=[STRATEGY],
            listen=ListenSection(socket=str(sock_dir / "h1.sock")),
            data_plane=DataPlaneSection(heartbeat_interval_ms=heartbeat_ms, **data_plane),
            bootstrap=[spec],
        )
        app = SidecarApp(cfg)
        task = asyncio.create_task(app.run(), name="sidecar")
        async with asyncio.timeout(WAIT_S):
            await app.ready.wait()
        r = Rig(venue, app)
        agent = app.agent
        agent.path_dead_listeners.append(lambda g, p: r.dead.append((g, p, time.monotonic())))
        agent.route_listeners.append(lambda g: r.routes.append((agent.routes[g].effective, time.monotonic())))
        agent.on_decision(
            pb.Decision(
                group=GROUP, paths=["primary", "backup"], epoch=pb.Epoch(era=0, revision=1), reason="t"
            ),
            [],
        )
        await _poll(
            lambda: (
                r.route.effective == "primary" and all(r.session(p).can_send for p in ("primary", "backup"))
            ),
            "both paths logged on and the route on primary",
        )
        yield r
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await venue.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.mark.parametrize("heartbeat_ms", [10, 50])
async def test_a_stalled_loop_does_not_kill_healthy_paths(tmp_path, heartbeat_ms: int) -> None:
    async with rig(tmp_path, heartbeat_ms) as r:
        agent = r.app.agent
        assert 3 * heartbeat_ms < STALL_S * 1000  # longer than the silence limit
        # Let a few heartbeats flow first, so the lines are demonstrably alive and watched.
        await _poll(
            lambda: all(len(r.session(p).rtt) >= 3 for p in ("primary", "backup")), "heartbeat replies"
        )
        flips_before = list(agent.flips)
        seq_before = {p: r.session(p).status.seq for p in ("primary", "backup")}
        lags_before = agent.guard.lags

        loop = asyncio.get_running_loop()
        stalled: asyncio.Future[float] = loop.create_future()

        def block() -> None:
            time.sleep(STALL_S)  # the whole loop stops: no heartbeat sent, no reply read
            stalled.set_result(time.monotonic())

        loop.call_soon(block)
        stall_end = await stalled
        silent_s = 3 * heartbeat_ms / 1000

        # Until every line has demonstrably been heard from after the stall (silence limit
        # passed since the stall ended and no line silent now): a wrong verdict would have
        # come on the first ticks after the stall, well before this.
        def heard_again() -> bool:
            now = time.monotonic()
            return now > stall_end + silent_s and all(
                r.session(p).silent_at(now) is False for p in ("primary", "backup")
            )

        await _poll(heard_again, "every line heard from after the stall")

        assert agent.guard.lags > lags_before, "the heartbeat checker did not notice the stall"
        assert r.dead == [], f"paths declared dead by a stalled loop: {r.dead}"
        assert {p: r.session(p).status.seq for p in ("primary", "backup")} == seq_before, (
            "a path changed state"
        )
        assert all(r.session(p).status.state is PathState.UP for p in ("primary", "backup"))
        assert list(agent.flips) == flips_before, list(agent.flips)
        assert r.route.effective == "primary" and [e for e, _ in r.routes if e != "primary"] == []

        # The guard does not hide real silence: a stalled gateway is still declared dead.
        t0 = time.monotonic()
        await r.venue.inject_fault("primary", None, FaultKind.STALL)
        await _poll(lambda: r.route.effective == "backup", "the route to leave a really stalled primary")
        took = time.monotonic() - t0
        assert [(g, p) for g, p, _ in r.dead] == [(GROUP, "primary")], r.dead
        flip = agent.flips[-1]
        assert (flip.from_path, flip.to_path, flip.cause) == ("primary", "backup", "silent"), flip
        assert took < 10 * heartbeat_ms / 1000 + 0.2, (
            f"silent primary noticed only after {took * 1000:.0f} ms"
        )


async def test_a_stalled_loop_with_an_order_probe_out_keeps_the_path(tmp_path) -> None:
    """The order-probe path has the guard too: a probe out across a stall is asked again."""
    # A 50 ms probe timeout: the probe of a 20 ms reply is still out when the test blocks the loop.
    async with rig(tmp_path, 50, probe_timeout_floor_ms=50.0) as r:
        primary = r.session("primary")
        await _poll(lambda: len(primary.rtt) >= 3, "heartbeat replies")
        await r.venue.inject_fault("primary", None, FaultKind.SLOW, delay_ms=20)  # every order is probed
        loop = asyncio.get_running_loop()
        for i in range(2):
            assert primary.send(p.new_order(f"stall-{i}", "x"))
            await _poll(lambda: primary.replies.probing, "a probe of the owed order")
            stalled: asyncio.Future[float] = loop.create_future()

            def block(fut: asyncio.Future[float] = stalled) -> None:
                time.sleep(STALL_S)  # the probe's echo sits unread; no timer runs
                fut.set_result(time.monotonic())

            loop.call_soon(block)
            await stalled
            await _poll(lambda: len(primary.replies) == 0 or bool(r.dead), "the order answered")
        assert r.dead == [], f"paths declared dead by a stalled loop: {r.dead}"
        assert primary.status.state is PathState.UP and r.route.effective == "primary"


async def test_a_slow_but_alive_line_under_order_flow_keeps_its_orders(tmp_path) -> None:
    """Every reply 10 ms late, orders every ms, limits 10 ms (order) + 5 ms (probe): no flip.

    The probe's echo comes 10 ms after the probe, past its 5 ms deadline, but the replies to
    the orders written before it keep coming inside it: a line that is delivering is not
    silent. The same line stalled is still declared dead under the same flow.
    """
    async with rig(tmp_path, 50, order_timeout_floor_ms=10.0, probe_timeout_floor_ms=5.0) as r:
        primary = r.session("primary")
        await _poll(lambda: len(primary.rtt) >= 3, "heartbeat replies")
        await r.venue.inject_fault("primary", None, FaultKind.SLOW, delay_ms=10)
        for i in range(150):
            assert primary.send(p.new_order(f"slow-{i}", "x")), f"primary refused order {i}: {r.dead}"
            await asyncio.sleep(0.001)
        await _poll(lambda: len(primary.replies) == 0 or bool(r.dead), "every order answered")
        assert r.dead == [], f"a slow but alive line was declared dead: {r.dead}"
        assert primary.replies.probes_sent >= 1, "the 10 ms replies never got the line probed"
        assert primary.status.state is PathState.UP and r.route.effective == "primary"

        await r.venue.inject_fault("primary", None, FaultKind.STALL)

        async def flow() -> None:
            i = 0
            while not r.dead:
                primary.send(p.new_order(f"stalled-{i}", "x"))
                i += 1
                await asyncio.sleep(0.001)

        sender = asyncio.create_task(flow())
        try:
            await _poll(lambda: r.route.effective == "backup", "the route to leave the stalled primary")
        finally:
            await sender
        assert "order_timeout" in primary.status.detail, primary.status.detail
