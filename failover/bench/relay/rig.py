"""The relay benchmark's processes: a venue simulator and one sidecar, children of this process.

No control plane runs: the sidecar's state file is seeded before it starts with
the group definition and a decision ``[primary, backup]``, and a sidecar with no
reachable coordinator routes on its stored state (static stability). Its
``coordinators`` list names an unused loopback port.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from failover.bench.report import BenchFailure, progress
from failover.bench.serve_child import floor_child
from failover.procs import Child, ChildExited, child_env, cli_argv, free_port

GROUP = "cme-orders"
PATHS = ("primary", "backup")
HOST_ID = "bench-relay"
METRICS_HOST_ID = "bench-relay-m"
STRATEGY = "bench"
PAYLOAD = '{"sym":"ESZ6","side":"buy","qty":1,"px":5000}'
# Heartbeats as by default (every 50 ms), but a path is declared silent only after 1 s of
# silence, an unanswered order or probe only after 1 s: this bench measures relaying, not
# detection, and a starved shared machine must not flip the sidecar (which fails the run)
# over a few hundred ms without CPU.
DATA_PLANE = {
    "silent_after_intervals": 20,
    "order_timeout_floor_ms": 1000.0,
    "probe_timeout_floor_ms": 1000.0,
}


def _child(name: str, args: list[str], log_path: Path) -> Child:
    # FAILOVER_* variables would override the config files: each child is defined by its flags/file.
    return Child(name, cli_argv(*args), log_path, env=child_env(drop_prefix="FAILOVER_"))


def check(child: Child) -> None:
    """BenchFailure (with its log's tail) when ``child`` has exited."""
    try:
        child.check(f"the {child.name} process")
    except ChildExited as exc:
        raise BenchFailure(str(exc)) from None


def acked_check(what: str) -> Callable[[Any], None]:
    """A check that an Outcome is ACKED (BenchFailure naming ``what`` otherwise)."""

    def check_outcome(o: Any) -> None:
        from failover_client.api import OutcomeKind

        if o.kind != OutcomeKind.ACKED:
            raise BenchFailure(
                f"{what}: message {o.client_msg_id} got {OutcomeKind.name(o.kind)}: {o.reason}"
            )

    return check_outcome


def bare_relay(kind: str, socket_path: str, gateway: str, log_path: Path) -> Child:
    """A bare relay child (``failover.bench.relay.bare_<kind>``: framed or grpc) serving on
    ``socket_path`` with its own session to ``gateway``."""
    args = ["--socket", socket_path, "--gateway", gateway]
    return floor_child(f"bare-{kind}", f"failover.bench.relay.bare_{kind}", args, log_path)


class Rig:
    """The venue and the sidecar processes, their files, and how to stop them.

    With ``metrics``: a second sidecar, the same in every way but its host id, its socket
    and a Prometheus ``/metrics`` endpoint (``metrics_listen``); the first has none.
    """

    def __init__(self, metrics: bool = False) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="failover-bench-relay-"))
        self.sock_dir = Path(tempfile.mkdtemp(prefix="fo-relay-", dir="/tmp"))  # short: unix path limit
        self.socket = str(self.sock_dir / "sidecar.sock")
        self.framed_socket = str(self.sock_dir / "sidecar.framed")  # the framed rows (framed_rows.py)
        self.gateways = {p: f"127.0.0.1:{free_port()}" for p in PATHS}
        self.venue_control = f"127.0.0.1:{free_port()}"
        # Nothing listens here: the sidecar runs on its seeded state file, no control plane.
        self.coordinator = f"127.0.0.1:{free_port()}"
        self.venue = _child(
            "venue",
            ["venue", "run", "--name", "bench", "--control", self.venue_control]
            + [a for p, addr in self.gateways.items() for a in ("--gateway", f"{p}={addr}")],
            self.workdir / "venue.log",
        )
        self.sidecar = _child("sidecar", [], self.workdir / "sidecar.log")
        self.metrics_sidecar: Child | None = None
        self.metrics_socket = ""
        self.metrics_port = 0
        if metrics:
            self.metrics_sidecar = _child("sidecar-metrics", [], self.workdir / "sidecar-metrics.log")
            self.metrics_socket = str(self.sock_dir / "sidecar-m.sock")
            self.metrics_port = free_port()
        self.keep_logs = False

    def write_sidecar_files(self, host_id: str = HOST_ID, socket: str = "", metrics_listen: str = "") -> Path:
        from failover_sidecar import state_file

        from failover.model.convert import group_pb
        from failover.model.spec import GroupSpec, PathSpec
        from failover.v1 import types_pb2 as pb

        spec = GroupSpec(
            name=GROUP, paths=[PathSpec(name=p, endpoints={"default": a}) for p, a in self.gateways.items()]
        )
        state_path = self.workdir / f"{host_id}.state.json"
        decision = pb.Decision(
            group=GROUP,
            paths=list(PATHS),
            epoch=pb.Epoch(era=0, revision=1),
            reason="seeded by the relay benchmark",
            leader_id="bench",
        )
        state_file.save(
            state_path,
            host_id,
            state_file.SavedState(
                definitions={GROUP: group_pb(spec, 1, "default")}, decisions={GROUP: decision}
            ),
        )
        cfg: dict[str, object] = {
            "host_id": host_id,
            "groups": [GROUP],
            "coordinators": [self.coordinator],
            "state_file": str(state_path),
            "strategies": [STRATEGY],
            "listen": {"socket": socket or self.socket}
            | ({} if socket else {"framed_socket": self.framed_socket}),
            "data_plane": DATA_PLANE,
        }
        if metrics_listen:
            cfg["metrics_listen"] = metrics_listen
        path = self.workdir / f"{host_id}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def start_venue(self) -> None:
        self.venue.start()
        progress(f"venue started (pid {self.venue.pid}); gateways {self.gateways}; logs in {self.workdir}")

    def start_sidecar(self) -> None:
        cfg = self.write_sidecar_files()
        self.sidecar.argv = cli_argv("sidecar", "--config", str(cfg))
        self.sidecar.start()
        progress(f"sidecar started (pid {self.sidecar.pid}) on unix:{self.socket}")
        if self.metrics_sidecar is not None:
            listen = f"127.0.0.1:{self.metrics_port}"
            cfg = self.write_sidecar_files(METRICS_HOST_ID, self.metrics_socket, listen)
            self.metrics_sidecar.argv = cli_argv("sidecar", "--config", str(cfg))
            self.metrics_sidecar.start()
            progress(
                f"sidecar with metrics started (pid {self.metrics_sidecar.pid}) "
                f"on unix:{self.metrics_socket}, /metrics on {listen}"
            )

    async def venue_ready(self, timeout: float) -> None:
        """The venue printed its control address (it prints it once every listener is bound)."""
        end = time.monotonic() + timeout
        while "control " not in self.venue.tail(100_000):
            check(self.venue)
            if time.monotonic() > end:
                raise BenchFailure(
                    f"the venue did not bind within {timeout:.0f}s; its log:\n{self.venue.tail()}"
                )
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.sidecar.stop(timeout=5)  # first: it logs out of the venue
        if self.metrics_sidecar is not None:
            self.metrics_sidecar.stop(timeout=5)
        self.venue.stop(timeout=5)
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if self.keep_logs:
            progress(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
