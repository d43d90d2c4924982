"""The real processes of a fault test, started through the documented CLI, broken by pid.

etcd members (``failover.etcdproc``), one venue simulator (``failover venue run``),
coordinator replicas (``failover coordinator --config``) and sidecars (``failover
sidecar --config``), each a child in its own session with its log in the run's
directory. Every link a test may break goes through a ``ProxyThread`` link:

- ``sc_link(host, rid)``: sidecar ``host`` -> coordinator ``rid`` (each host lists
  the replicas rotated by its index, so hosts spread over replicas);
- ``etcd_link(rid, i)``: coordinator ``rid`` -> etcd member ``i``;
- ``peer_link(rid)``: any other replica -> coordinator ``rid`` (only with
  ``Topology.proxy_peers``: ``rid`` advertises the link's address, which its peers
  use to forward requests and health to it; sidecars keep their own links).

Venue paths are broken with the simulator's own control service (reset, stall,
slow, logon refused, per gateway and per session). Signals go to the pids this
object started, never to a name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import grpc
import yaml

from failover.etcdproc import EtcdCluster
from failover.faults.proxy import Mode, ProxyThread
from failover.procs import Child, child_env, cli_argv, free_ports

GROUP = "cme-orders"
PATHS = ("primary", "backup")
VENUE_START_S = 30.0  # a cold interpreter on 2 busy cores: about a second, rarely more


class StartError(RuntimeError):
    """A child of the cluster did not start; the message names its log."""


@dataclass
class Topology:
    hosts: tuple[str, ...] = ("h1", "h2")
    replicas: tuple[str, ...] = ("c1", "c2", "c3")
    etcd_members: int = 3
    lease_ttl_s: int = 2
    heartbeat_ms: int = 50
    # The sidecar's silence budget under flowing orders. 150 ms, the idle heartbeat
    # limit, not the default 50: on 2 loaded cores the venue's reply timers ran 40+ ms
    # late, so a +10 ms step read as a stall at 50 (the rows test mechanisms, not the budget).
    probe_floor_ms: float = 150.0
    hold_down_ms: int = 1000
    min_dwell_ms: int = 500
    stream_dead_after_ms: int = 1000
    no_path_wait_ms: int = 500
    strategies: tuple[str, ...] = ("s1",)
    etcd_quota_bytes: int = 256 * 1024 * 1024
    # children run under libfaketime (their wall clock only; see ``jump_clock``)
    faketime: tuple[str, ...] = ()
    # Replicas reach each other through ``peer_link(rid)``. Off by default: a follower
    # revokes a dead leader's lease when its port refuses connections, and a proxy's
    # port never refuses (it accepts, then resets), so killed-leader rows would wait out
    # the lease TTL instead.
    proxy_peers: bool = False
    # Every sidecar reaches each venue gateway through ``line_link(path)`` (one link per
    # gateway, shared by the hosts): a line cut, blackholed, slowed or dropped one way
    # between the hosts and the venue, from outside both. Off by default: the other rows
    # break paths with the venue's own fault control, without a proxy in the way.
    proxy_lines: bool = False


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def faketime_env(offset_file: Path) -> dict[str, str]:
    """libfaketime on one child: CLOCK_REALTIME shifted by the offset in ``offset_file``
    (re-read every second); CLOCK_MONOTONIC untouched.

    Python 3.11's ``time.sleep`` fails (EINVAL) under Debian's libfaketime 0.9.10 with
    the monotonic clock excluded (libfaketime#426); asyncio's sleeps are unaffected."""
    offset_file.write_text("+0\n")
    return {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_CACHE_DURATION": "1",
    }


class Proc(Child):
    """One child ``python -m failover.cli ARGS``; restartable with the same arguments."""

    def __init__(
        self, name: str, args: list[str], log_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        env = child_env({"PYTHONUNBUFFERED": "1", **(extra_env or {})})
        super().__init__(name, cli_argv(*args), log_path, env=env)
        self.args = args
        self.faked = bool(extra_env and extra_env.get("LD_PRELOAD") == LIBFAKETIME)
        self.pids: list[int] = []  # every pid it ran as, for libfaketime's leftovers

    def start(self) -> Self:
        super().start()
        if self.faked:
            self.pids.append(self.pid)
        return self

    def remove_faketime_shm(self) -> None:
        """libfaketime makes a shared-memory segment and a semaphore per process and
        removes them only at a clean exit: a SIGKILLed child leaves them in /dev/shm."""
        for pid in self.pids:
            for leftover in (f"/dev/shm/faketime_shm_{pid}", f"/dev/shm/sem.faketime_sem_{pid}"):
                Path(leftover).unlink(missing_ok=True)
        self.pids.clear()

    def stop_within(self, grace_s: float = 5.0) -> bool:
        """SIGCONT + SIGTERM, SIGKILL after the grace; returns whether KILL was needed."""
        if not self.alive:
            return False
        self.terminate()
        assert self.proc is not None
        try:
            self.proc.wait(timeout=grace_s)
            return False
        except subprocess.TimeoutExpired:
            self.kill()
            return True


@dataclass
class FaultCluster:
    topo: Topology
    proxy: ProxyThread
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="failover-fault-")))
    procs: dict[str, Proc] = field(default_factory=dict)
    etcd: EtcdCluster | None = None
    prefix: str = ""
    coordinator_addrs: dict[str, str] = field(default_factory=dict)
    metrics_addrs: dict[str, str] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)
    venue_control: str = ""
    sockets: dict[str, str] = field(default_factory=dict)
    state_files: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prefix = f"/failover-fault-{os.getpid()}-{time.monotonic_ns()}/"
        n = len(self.topo.replicas)
        ports = free_ports(3 + 2 * n)
        self.gateways = {"primary": f"127.0.0.1:{ports[0]}", "backup": f"127.0.0.1:{ports[1]}"}
        self.venue_control = f"127.0.0.1:{ports[2]}"
        for i, rid in enumerate(self.topo.replicas):
            self.coordinator_addrs[rid] = f"127.0.0.1:{ports[3 + i]}"
            self.metrics_addrs[rid] = f"127.0.0.1:{ports[3 + n + i]}"

    # ------------------------------------------------------------ names

    @staticmethod
    def sc_link(host: str, rid: str) -> str:
        return f"{host}>{rid}"

    @staticmethod
    def etcd_link(rid: str, member: int) -> str:
        return f"{rid}>etcd{member}"

    @staticmethod
    def peer_link(rid: str) -> str:
        return f"peers>{rid}"

    @staticmethod
    def line_link(path: str) -> str:
        return f"line>{path}"

    def path_address(self, path: str) -> str:
        """Where the sidecars reach ``path``: its gateway, or the line's proxy in front of it."""
        if self.topo.proxy_lines:
            return self.proxy.links[self.line_link(path)].address
        return self.gateways[path]

    def replica_of_link_address(self, address: str) -> str:
        """The replica behind a sidecar's proxied coordinator address ('' if none)."""
        for name, link in self.proxy.links.items():
            if link.address == address and ">" in name:
                return name.split(">", 1)[1]
        return ""

    # ------------------------------------------------------------ start

    def _write(self, name: str, data: dict[str, Any]) -> Path:
        p = self.workdir / name
        p.write_text(yaml.safe_dump(data, sort_keys=False))
        return p

    def group_definition(self) -> dict[str, Any]:
        return {
            "name": GROUP,
            "paths": [{"name": n, "endpoints": {"default": self.path_address(n)}} for n in self.gateways],
            "policy": {
                "min_dwell_ms": self.topo.min_dwell_ms,
                "failback_hold_down_ms": self.topo.hold_down_ms,
            },
        }

    def start(self) -> None:
        """Start everything (no waiting for readiness: see ``wait_ready`` in the observer)."""
        self.etcd = EtcdCluster(
            self.topo.etcd_members, base_dir=None, quota_backend_bytes=self.topo.etcd_quota_bytes
        )
        self.etcd.start()
        for rid in self.topo.replicas:
            for i, ep in enumerate(self.etcd.endpoints):
                self.proxy.add(self.etcd_link(rid, i), ep)
        for host in self.topo.hosts:
            for rid in self.topo.replicas:
                self.proxy.add(self.sc_link(host, rid), self.coordinator_addrs[rid])
        if self.topo.proxy_peers:
            for rid in self.topo.replicas:
                self.proxy.add(self.peer_link(rid), self.coordinator_addrs[rid])
        if self.topo.proxy_lines:
            for path, addr in self.gateways.items():
                self.proxy.add(self.line_link(path), addr)
        args = ["venue", "run", "--control", self.venue_control]
        for name, addr in self.gateways.items():
            args += ["--gateway", f"{name}={addr}"]
        self._add("venue", args).start()
        self.wait_venue()
        for rid in self.topo.replicas:
            self.start_coordinator(rid)
        for host in self.topo.hosts:
            self.start_sidecar(host)

    def wait_venue(self, timeout_s: float = VENUE_START_S) -> None:
        """Until the venue's control service answers (it opens after the gateways listen).

        Sidecars started before that meet "connection refused" on every path, and a leader
        that hears one host's refusals and another's backup up moves the group before any
        fault is injected. A venue, like any line a host trades on, exists first.
        """
        venue = self.procs["venue"]
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.venue_control) as channel:
            ready = grpc.channel_ready_future(channel)
            while True:
                try:
                    ready.result(timeout=0.25)
                    return
                except grpc.FutureTimeoutError:
                    if not venue.alive:
                        raise StartError(
                            f"the venue exited with {venue.returncode}: see {venue.log_path}"
                        ) from None
                    if time.monotonic() > deadline:
                        raise StartError(
                            f"the venue's control service {self.venue_control} did not answer within "
                            f"{timeout_s:.0f}s: see {venue.log_path}"
                        ) from None

    def _add(self, name: str, args: list[str]) -> Proc:
        extra = faketime_env(self.clock_file(name)) if name in self.topo.faketime else None
        p = Proc(name, args, self.workdir / f"{name}.log", extra)
        self.procs[name] = p
        return p

    def start_coordinator(self, rid: str) -> Proc:
        if rid in self.procs:
            return self.procs[rid].start()
        assert self.etcd is not None
        eps = [self.proxy.links[self.etcd_link(rid, i)].address for i in range(len(self.etcd.members))]
        advertise = (
            {"advertise": self.proxy.links[self.peer_link(rid)].address} if self.topo.proxy_peers else {}
        )
        cfg = self._write(
            f"{rid}.yaml",
            {
                "replica_id": rid,
                "listen": self.coordinator_addrs[rid],
                **advertise,
                "metrics_listen": self.metrics_addrs[rid],
                "etcd": {"endpoints": eps, "prefix": self.prefix},
                "election": {"lease_ttl_s": self.topo.lease_ttl_s},
                "groups": [self.group_definition()],
            },
        )
        return self._add(rid, ["coordinator", "--config", str(cfg)]).start()

    def start_sidecar(self, host: str) -> Proc:
        if host in self.procs:
            return self.procs[host].start()
        idx = self.topo.hosts.index(host)
        reps = list(self.topo.replicas)
        reps = reps[idx % len(reps) :] + reps[: idx % len(reps)]
        sock = str(self.workdir / f"{host}.sock")
        self.sockets[host] = sock
        self.state_files[host] = self.workdir / f"{host}.state.json"
        cfg = self._write(
            f"{host}.yaml",
            {
                "host_id": host,
                "groups": [GROUP],
                "coordinators": [self.proxy.links[self.sc_link(host, r)].address for r in reps],
                "state_file": str(self.state_files[host]),
                "strategies": list(self.topo.strategies),
                "listen": {"socket": sock},
                "data_plane": {
                    "heartbeat_interval_ms": self.topo.heartbeat_ms,
                    "probe_timeout_floor_ms": self.topo.probe_floor_ms,
                },
                "orders": {"no_path_wait_ms": self.topo.no_path_wait_ms},
                "stream": {"dead_after_ms": self.topo.stream_dead_after_ms},
            },
        )
        return self._add(host, ["sidecar", "--config", str(cfg)]).start()

    # ------------------------------------------------------------ faults

    def clock_file(self, name: str) -> Path:
        return self.workdir / f"{name}.faketime"

    def jump_clock(self, name: str, offset_s: int) -> None:
        """Set child ``name``'s wall clock to the real one plus ``offset_s`` (it sees the jump
        within a second). Only for children listed in ``Topology.faketime``."""
        assert name in self.topo.faketime, f"{name} does not run under libfaketime"
        tmp = self.clock_file(name).with_suffix(".tmp")
        tmp.write_text(f"{offset_s:+d}\n")
        tmp.replace(self.clock_file(name))

    def kill(self, name: str) -> None:
        self.procs[name].kill()

    def pause(self, name: str) -> None:
        self.procs[name].signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.procs[name].signal(signal.SIGCONT)

    def restart(self, name: str) -> Proc:
        p = self.procs[name]
        if p.alive:
            p.kill()
        return p.start()

    def cut_sidecar_from(self, host: str, rids: list[str] | None = None, mode: Mode = Mode.CUT) -> None:
        for rid in rids or list(self.topo.replicas):
            self.proxy.set(self.sc_link(host, rid), mode)

    def break_line(self, path: str, mode: Mode, delay_ms: float | None = None) -> None:
        """Every host's line to ``path``'s gateway (``Topology.proxy_lines``); PASS heals it."""
        self.proxy.set(self.line_link(path), mode, delay_ms)

    def heal_sidecar(self, host: str) -> None:
        self.cut_sidecar_from(host, None, Mode.PASS)

    def cut_replica_from_etcd(self, rid: str, mode: Mode = Mode.CUT) -> None:
        assert self.etcd is not None
        for i in range(len(self.etcd.members)):
            self.proxy.set(self.etcd_link(rid, i), mode)

    def heal_processes(self) -> list[str]:
        """Undo every process and link fault: links pass, paused children resume, dead ones restart.

        Lets one cluster serve several rows; returns what had to be restarted.
        Call from the main thread (children die with the thread that started them).
        """
        self.proxy.set_many(list(self.proxy.links), Mode.PASS, delay_ms=0)
        restarted: list[str] = []
        if self.etcd is not None:
            for i, m in enumerate(self.etcd.members):
                if m.running:
                    self.etcd.signal_member(i, signal.SIGCONT)
                else:
                    self.etcd.restart(i, wait=False)
                    restarted.append(m.name)
        for name, p in self.procs.items():
            if p.alive:
                p.signal(signal.SIGCONT)
            else:
                p.start()
                restarted.append(name)
        return restarted

    def etcd_leader(self, skip: int = -1) -> int:
        """Index of the etcd member that is etcd's own raft leader (-1 if none answers);
        ``skip``: a member not to ask (a paused one would hold each query for its timeout)."""
        assert self.etcd is not None
        return self.etcd.leader_index(skip)

    def metrics(self, rid: str, timeout: float = 2.0) -> str:
        """Replica ``rid``'s Prometheus exposition ('' when it does not answer)."""
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://{self.metrics_addrs[rid]}/metrics", timeout=timeout) as r,
        ):
            return str(r.read().decode())
        return ""

    def dead(self) -> list[str]:
        """Children that exited on their own (not killed by the test) are worth a look."""
        return [n for n, p in self.procs.items() if p.proc is not None and not p.alive]

    def logs(self, chars: int = 1500) -> str:
        return "\n".join(
            f"--- {n} (pid {p.proc.pid if p.proc else '-'})\n{p.tail(chars)}" for n, p in self.procs.items()
        )

    def log_lines(self, pattern: str, prefix: str = "", last: int = 40) -> str:
        """The last ``last`` lines matching ``pattern`` of each child named ``prefix...``.

        For a failed row's report: CI keeps its output, not the run's log files.
        """
        rx = re.compile(pattern, re.IGNORECASE)
        out = []
        for n, p in self.procs.items():
            if n.startswith(prefix):
                hits = [line for line in p.log().splitlines() if rx.search(line)][-last:]
                out.append(f"--- {n}: {len(hits)} lines matching {pattern!r}\n" + "\n".join(hits))
        return "\n".join(out)

    def stop(self, keep: bool = False) -> list[str]:
        """Stop every child we started (and etcd); returns those that needed SIGKILL."""
        needed_kill = [n for n, p in self.procs.items() if p.stop_within()]
        for p in self.procs.values():
            p.remove_faketime_shm()
        if self.etcd is not None:
            for i in range(len(self.etcd.members)):
                self.etcd.signal_member(i, signal.SIGCONT)
            self.etcd.stop()
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return needed_kill
