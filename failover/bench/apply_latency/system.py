"""The apply-latency system: etcd (1 member), 3 coordinators, a venue and N sidecars, all our children."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml

from failover.bench.report import BenchFailure, progress
from failover.bench.tls_variant import BenchPki
from failover.etcdproc import EtcdCluster
from failover.procs import Child, child_env, cli_argv, free_ports, stop_all

GROUP = "cme-orders"
PATHS = ("primary", "backup")
FRESHNESS_PROBE_MS = 60_000  # see System.start


class System:
    """etcd (1 member), 3 coordinators, a venue, N sidecars: all children of this process."""

    def __init__(self, sidecars: int, workdir: Path, replicas: int = 3, pki: BenchPki | None = None) -> None:
        self.n = sidecars
        # With a PKI every link runs mTLS: replica <-> replica, sidecar -> replica.
        self.pki = pki
        self.workdir = workdir
        self.prefix = f"/bench-apply-{uuid.uuid4().hex[:10]}/"
        self.etcd: EtcdCluster | None = None
        self.children: list[Child] = []
        ports = free_ports(replicas + len(PATHS) + 1)
        self.coordinators = {f"c{i + 1}": f"127.0.0.1:{ports.pop()}" for i in range(replicas)}
        self.gateways = {p: f"127.0.0.1:{ports.pop()}" for p in PATHS}
        self.venue_control = f"127.0.0.1:{ports.pop()}"
        self.sockets: dict[str, str] = {}
        self.replica_of: dict[str, str] = {}
        self.sock_dir = Path(tempfile.mkdtemp(prefix="fo-bench-", dir="/tmp"))  # short: unix path limit

    def _spawn(self, name: str, args: list[str]) -> Child:
        # FAILOVER_* variables would override the config files: each process is defined by its file.
        env = child_env(drop_prefix="FAILOVER_")
        c = Child(name, cli_argv(*args), self.workdir / f"{name}.log", env=env)
        c.start()
        self.children.append(c)
        return c

    def _write(self, name: str, data: dict[str, Any]) -> Path:
        p = self.workdir / name
        p.write_text(yaml.safe_dump(data, sort_keys=False))
        return p

    def start(self) -> None:
        progress("starting etcd (1 member, tmpfs data)")
        etcd = self.etcd = EtcdCluster(1)
        etcd.start()
        venue_args = ["venue", "run", "--name", "bench", "--control", self.venue_control]
        for p, a in self.gateways.items():
            venue_args += ["--gateway", f"{p}={a}"]
        self._spawn("venue", venue_args)
        group = {
            "name": GROUP,
            "paths": [{"name": p, "endpoints": {"default": a}} for p, a in self.gateways.items()],
        }
        for rid, addr in self.coordinators.items():
            cfg = self._write(
                f"{rid}.yaml",
                {
                    "replica_id": rid,
                    "listen": addr,
                    "etcd": {"endpoints": etcd.endpoints, "prefix": self.prefix},
                    "groups": [group],
                    # Workaround: a freshness probe's progress request can be answered by etcd 3.4
                    # with a revision below an event already delivered (etcd#15220), which the
                    # coordinator's Mirror takes for an etcd restore: it then refuses every commit
                    # until `failover era bump`. Probing once a minute keeps that out of the runs.
                    "freshness": {"probe_interval_ms": FRESHNESS_PROBE_MS},
                    **({"tls": self.pki.config("replica", rid)} if self.pki is not None else {}),
                },
            )
            self._spawn(rid, ["coordinator", "--config", str(cfg)])
        progress(f"started a venue and {len(self.coordinators)} coordinators; logs in {self.workdir}")

    def start_sidecars(self) -> None:
        addrs = list(self.coordinators.values())
        for i in range(self.n):
            host = f"h{i + 1:02d}"
            sock = str(self.sock_dir / f"{host}.sock")
            self.sockets[host] = sock
            k = i % len(addrs)
            self.replica_of[host] = addrs[k]
            cfg = self._write(
                f"{host}.yaml",
                {
                    "host_id": host,
                    "groups": [GROUP],
                    "coordinators": addrs[k:] + addrs[:k],  # spread the streams over the replicas
                    "state_file": str(self.workdir / f"{host}.state.json"),
                    "strategies": ["s1"],
                    "listen": {"socket": sock},
                    **({"tls": self.pki.config("sidecar", host)} if self.pki is not None else {}),
                },
            )
            self._spawn(host, ["sidecar", "--config", str(cfg)])
        progress(f"started {self.n} sidecars")

    def check_alive(self) -> None:
        for c in self.children:
            if not c.alive:
                raise BenchFailure(f"{c.name} exited (code {c.returncode}); its log ends:\n{c.tail(2000)}")

    def stop(self, keep_logs: bool) -> None:
        stop_all(reversed(self.children), grace_s=5)  # sidecars first: they log out of the venue
        if self.etcd is not None:
            self.etcd.stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if keep_logs:
            progress(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
