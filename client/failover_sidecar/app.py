"""Runs one sidecar: the agent, the order path, the coordinator link, the local server."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import socket
import stat
from pathlib import Path

import grpc
from grpc_health.v1._async import HealthServicer as AioHealthServicer

from failover import rpc, tls
from failover.aio import finish, run_until_failure
from failover.config_source import ConfigError
from failover.telemetry import metrics as telemetry
from failover.telemetry import tracing
from failover.v1 import sidecar_pb2_grpc
from failover_sidecar import state_file
from failover_sidecar.agent import Agent
from failover_sidecar.config import SidecarConfig
from failover_sidecar.framed import FramedServer
from failover_sidecar.metrics import SidecarMetrics
from failover_sidecar.orders import OrderPath
from failover_sidecar.service import SidecarService

log = logging.getLogger(__name__)
SERVICES = ["failover.v1.Sidecar"]
STOP_DRAIN_S = 1.0
"""How long a stop waits for the venue's replies to messages already written (a venue
answers in well under a millisecond; a stalled line's messages end IN_DOUBT after it)."""


class SocketError(ConfigError):
    """The strategy socket cannot be used safely (a config problem: exit 2)."""


def prepare_socket(path: str, key: str = "listen.socket") -> None:
    """Refuse a socket path that is a symlink or belongs to someone else; clear our own stale one.

    ``key`` names the config field in the error (the gRPC socket or the framed one).
    """
    p = Path(path)
    if not p.parent.is_dir():
        raise SocketError(f"{key}: directory {str(p.parent)!r} does not exist")
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise SocketError(f"{key}: {path} is a symlink; refusing to use it")
    if st.st_uid != os.getuid():
        raise SocketError(f"{key}: {path} belongs to uid {st.st_uid}, not us; refusing to use it")
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketError(f"{key}: {path} exists and is not a socket")
    if _answers(path):
        # Another process serves it (a second copy of this sidecar, or another one configured
        # with the same path): removing it would cut every strategy off from that process.
        raise SocketError(
            f"{key}: {path} is in use: another process is listening on it; refusing to replace it"
        )
    p.unlink()


def _answers(path: str) -> bool:
    """Whether a process accepts connections on the Unix socket ``path`` (a stale one refuses)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except TimeoutError:
        return True  # a full backlog: someone listens, and is busy (or paused)
    except OSError:
        return False  # ECONNREFUSED: nobody listens
    finally:
        probe.close()
    return True


def socket_gid(group: str) -> int:
    """The gid of ``listen.socket_group`` (-1: none); checked before anything is started."""
    if not group:
        return -1
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise SocketError(f"listen.socket_group: no such group {group!r}") from None


def secure_socket(path: str, group: str) -> None:
    os.chmod(path, 0o660)
    gid = socket_gid(group)
    if gid >= 0:
        os.chown(path, -1, gid)


class SidecarApp:
    def __init__(
        self,
        cfg: SidecarConfig,
        tel: telemetry.Telemetry | None = None,
        traces: tracing.Tracing | None = None,
    ) -> None:
        self.cfg = cfg
        # Metrics: the config's endpoints unless the caller brings its own provider (tests).
        self.telemetry = tel or telemetry.build(
            "failover-sidecar",
            cfg.host_id,
            listen=cfg.metrics_listen,
            otlp_endpoint=cfg.otlp_endpoint,
            otlp_interval_ms=cfg.otlp_interval_ms,
        )
        self._owns_telemetry = tel is None
        # Traces: exported over OTLP to the same endpoint as the metrics, when configured.
        self.tracing = traces or tracing.build(
            "failover-sidecar", cfg.host_id, otlp_endpoint=cfg.otlp_endpoint
        )
        self._owns_tracing = traces is None
        self.metrics = SidecarMetrics(self.telemetry.meter)
        self.agent = Agent(cfg, self.metrics, self.tracing.tracer)
        self.orders = OrderPath(self.agent)
        self.metrics.bind(self.agent, lambda: self.orders.counters)
        self.framed = FramedServer(self.agent, self.orders)
        self.service = SidecarService(self.agent, self.orders)
        self.ready = asyncio.Event()

    async def run(self) -> None:
        socket_gid(self.cfg.listen.socket_group)  # refuse before a server or socket file exists
        try:
            held = state_file.lock(self.cfg.state_file)  # until the last state is saved
        except state_file.StateFileError as exc:
            raise ConfigError(f"state_file: {exc}") from None
        try:
            await self._run()
        finally:
            os.close(held)

    async def _run(self) -> None:
        cfg = self.cfg
        prepare_socket(cfg.socket_path)
        framed_path = cfg.listen.framed_socket
        if framed_path:
            if framed_path == cfg.socket_path:
                raise SocketError("listen.framed_socket: must differ from listen.socket")
            prepare_socket(framed_path, "listen.framed_socket")
        server = rpc.make_server()
        rpc.add_service(server, sidecar_pb2_grpc.add_SidecarServicer_to_server, self.service)
        health = rpc.add_health_and_reflection(server, SERVICES)
        rpc.bind(server, f"unix:{cfg.socket_path}")
        if cfg.listen.tcp:
            rpc.bind(server, cfg.listen.tcp)
        await server.start()
        try:
            # From here on, whatever fails (a socket, the agent's start, a task) stops the
            # server, the sessions and the telemetry before the loop closes: no server is
            # left to the garbage collector, no socket file behind.
            secure_socket(cfg.socket_path, cfg.listen.socket_group)
            if framed_path:
                await self.framed.start(framed_path)
                secure_socket(framed_path, cfg.listen.socket_group)
            await rpc.mark_serving(health, SERVICES, True)
            await self.agent.start()
            tls.warn_if_insecure(cfg.tls, f"sidecar {cfg.host_id}'s link to the coordinators")
            self.telemetry.serve()
            log.info(
                "sidecar %s (site %s) serving strategies on unix:%s%s; groups %s",
                cfg.host_id,
                cfg.site,
                cfg.socket_path,
                (f" and {cfg.listen.tcp}" if cfg.listen.tcp else "")
                + (f"; framed relay on unix:{framed_path}" if framed_path else ""),
                ",".join(cfg.groups),
            )
            self.ready.set()  # the tasks below exist before anything else runs
            # Not a TaskGroup: it cancels once, and a child that lost that cancel kept a
            # SIGTERMed sidecar running (failover.aio.run_until_failure).
            await run_until_failure(
                {"coordinator-link": self.agent.link.run(), "order-expiry": self.orders.run()}
            )
        finally:
            # The shutdown runs to its end even if we are cancelled again meanwhile.
            await finish(asyncio.create_task(self._shutdown(server, health), name="sidecar shutdown"))

    async def _shutdown(self, server: grpc.aio.Server, health: AioHealthServicer) -> None:
        """Messages first, then the lines, then the strategies' connections: a message already
        at the venue gets its reply (bounded by STOP_DRAIN_S) or IN_DOUBT when its line is
        logged out, and that outcome reaches its strategy before the connection closes."""
        await rpc.mark_serving(health, SERVICES, False)
        self.orders.begin_stop()  # new messages are refused; unwritten ones get NO_PATH
        log.info(
            "stopping: new messages refused; waiting up to %.1f s for the venue's replies to %d",
            STOP_DRAIN_S,
            self.orders.undelivered(),
        )
        left = await self.orders.drain(STOP_DRAIN_S)
        if left:
            log.warning(
                "%d messages without a reply %.1f s after the stop began: IN_DOUBT as their lines close",
                left,
                STOP_DRAIN_S,
            )
        self.orders.logging_out()
        await self.agent.stop()
        await self.orders.stop()
        self.service.end_relays()
        await self.framed.stop()
        await server.stop(0.5)
        with contextlib.suppress(OSError):
            os.unlink(self.cfg.socket_path)
        if self.cfg.listen.framed_socket:
            with contextlib.suppress(OSError):
                os.unlink(self.cfg.listen.framed_socket)
        if self._owns_telemetry:
            await asyncio.to_thread(self.telemetry.shutdown)
        if self._owns_tracing:
            await asyncio.to_thread(self.tracing.shutdown)
        log.info("sidecar %s stopped", self.cfg.host_id)
