"""A local cluster of real processes: etcd, coordinators, a venue, sidecars.

Every process is a child we started, tracked by pid, and stopped (SIGTERM,
then SIGKILL) by ``stop()``, also when start-up fails half-way. Used by the
demo, and meant for fault tests and benchmarks that need the whole system.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from failover.etcdproc import EtcdCluster
from failover.procs import Child, child_env, cli_argv, free_ports, stop_all


class ClusterError(RuntimeError):
    pass


@dataclass
class Layout:
    hosts: int = 3
    replicas: int = 3
    heartbeat_ms: int = 50
    # The order probe's floor (data_plane.probe_timeout_floor_ms); None: the sidecar's default.
    probe_floor_ms: float | None = None
    group: str = "cme-orders"
    lease_ttl_s: int = 2


@dataclass
class LocalCluster:
    layout: Layout = field(default_factory=Layout)
    etcd_endpoints: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="failover-demo-")))
    children: dict[str, Child] = field(default_factory=dict)
    expected_dead: set[str] = field(default_factory=set)  # killed on purpose: not a failure
    etcd: EtcdCluster | None = None
    prefix: str = ""
    coordinator_addrs: dict[str, str] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)
    venue_control: str = ""
    sockets: dict[str, str] = field(default_factory=dict)
    # Every pid started is appended here at once (for tests that check nothing is left behind).
    pid_file: Path | None = None

    def _note_pid(self, pid: int) -> None:
        if self.pid_file is not None:
            with open(self.pid_file, "a") as f:
                f.write(f"{pid}\n")

    def __post_init__(self) -> None:
        self.prefix = f"/failover-demo-{os.getpid()}-{int(time.time())}/"
        # Every port at once, so no two processes are handed the same one.
        ports = free_ports(3 + self.layout.replicas)
        self.gateways = {"primary": f"127.0.0.1:{ports[0]}", "backup": f"127.0.0.1:{ports[1]}"}
        self.venue_control = f"127.0.0.1:{ports[2]}"
        for i in range(self.layout.replicas):
            self.coordinator_addrs[f"c{i + 1}"] = f"127.0.0.1:{ports[3 + i]}"

    # --- processes -----------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> Child:
        child = Child(
            name, cli_argv(*args), self.workdir / f"{name}.log", env=child_env({"PYTHONUNBUFFERED": "1"})
        )
        child.start()
        self.children[name] = child
        self.expected_dead.discard(name)
        self._note_pid(child.pid)
        return child

    def _write(self, name: str, data: dict[str, Any]) -> Path:
        p = self.workdir / name
        p.write_text(yaml.safe_dump(data, sort_keys=False))
        return p

    def start_etcd(self) -> None:
        if self.etcd_endpoints:
            return
        self.etcd = EtcdCluster(1)
        try:
            self.etcd.start()
        finally:
            for m in self.etcd.members:
                if m.proc is not None:
                    self._note_pid(m.proc.pid)
        self.etcd_endpoints = self.etcd.endpoints

    def group_definition(self) -> dict[str, Any]:
        return {
            "name": self.layout.group,
            "paths": [{"name": name, "endpoints": {"default": addr}} for name, addr in self.gateways.items()],
            "policy": {"min_dwell_ms": 500, "failback_hold_down_ms": 1000},
        }

    def start_coordinator(self, rid: str) -> Child:
        addr = self.coordinator_addrs.get(rid) or f"127.0.0.1:{free_ports(1)[0]}"
        self.coordinator_addrs[rid] = addr
        cfg = self._write(
            f"{rid}.yaml",
            {
                "replica_id": rid,
                "listen": addr,
                "etcd": {"endpoints": self.etcd_endpoints, "prefix": self.prefix},
                "election": {"lease_ttl_s": self.layout.lease_ttl_s},
                "groups": [self.group_definition()],
            },
        )
        return self._spawn(rid, ["coordinator", "--config", str(cfg)])

    def start_venue(self) -> Child:
        args = ["venue", "run", "--control", self.venue_control]
        for name, addr in self.gateways.items():
            args += ["--gateway", f"{name}={addr}"]
        return self._spawn("venue", args)

    def start_sidecar(self, host: str) -> Child:
        sock = str(self.workdir / f"{host}.sock")
        self.sockets[host] = sock
        cfg = self._write(
            f"{host}.yaml",
            {
                "host_id": host,
                "groups": [self.layout.group],
                "coordinators": list(self.coordinator_addrs.values()),
                "state_file": str(self.workdir / f"{host}.state.json"),
                "strategies": ["demo"],
                "listen": {"socket": sock},
                "data_plane": {
                    "heartbeat_interval_ms": self.layout.heartbeat_ms,
                    **(
                        {"probe_timeout_floor_ms": self.layout.probe_floor_ms}
                        if self.layout.probe_floor_ms is not None
                        else {}
                    ),
                },
            },
        )
        return self._spawn(host, ["sidecar", "--config", str(cfg)])

    def check_alive(self) -> None:
        for c in self.children.values():
            if not c.alive and c.name not in self.expected_dead:
                raise ClusterError(f"{c.name} exited (code {c.returncode}); its log ends:\n{c.tail_lines()}")

    def kill(self, name: str) -> None:
        self.expected_dead.add(name)
        self.children[name].kill()

    def pid_of(self, name: str) -> int:
        return self.children[name].pid

    def stop(self, keep_workdir: bool = False) -> list[str]:
        """Stop every child (TERM, then KILL after a grace); returns any that needed KILL."""
        killed = stop_all(self.children.values(), grace_s=5)
        if self.etcd is not None:
            self.etcd.stop()
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return killed

    def pids(self) -> list[int]:
        out = [c.proc.pid for c in self.children.values() if c.proc is not None]
        if self.etcd is not None:
            out += [m.proc.pid for m in self.etcd.members if m.proc is not None]
        return out


async def wait_until(
    pred: Any, timeout: float, what: str, cluster: LocalCluster | None = None, interval: float = 0.02
) -> Any:
    """Poll an async or sync predicate until truthy; ClusterError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        if cluster is not None:
            cluster.check_alive()
        try:
            v = pred()
            if asyncio.iscoroutine(v):
                v = await v
            if v:
                return v
        except Exception as exc:  # a process still starting refuses connections
            last_exc = exc
        if time.monotonic() > deadline:
            extra = f" (last error: {last_exc})" if last_exc else ""
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        await asyncio.sleep(interval)
