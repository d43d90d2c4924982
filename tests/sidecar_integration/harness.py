"""A whole local system of real processes for sidecar integration tests.

etcd (a fixture's cluster, isolated by a key prefix), coordinator processes,
venue simulator processes and sidecar processes, each a ``python -m
failover.cli`` child started in its own session with its log in the test's
``tmp_path`` and stopped by its pid. Every wait is bounded and polls state
(GetStatus of a sidecar, GetCounters of a venue, GetStatus of a coordinator);
a timeout names what was awaited and shows the last value seen and the tails
of the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import yaml
from failover_client.api import OutcomeKind, Sidecar

from failover import rpc
from failover.procs import cli_argv, free_ports
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc, sidecar_pb2_grpc, venue_pb2, venue_pb2_grpc
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import types_pb2 as pb
from tests.procs import REPO, Proc

GROUP = "cme-orders"
STRATEGY = "s1"
WAIT_S = 15.0  # bound of waits for things that should take well under a second
START_S = 30.0  # bound of process start-up (python imports, leader election) on 2 busy cores
T = TypeVar("T")

FAULT_KINDS = {
    "reset": venue_pb2.FAULT_KIND_RESET,
    "stall": venue_pb2.FAULT_KIND_STALL,
    "slow": venue_pb2.FAULT_KIND_SLOW,
    "logon_refused": venue_pb2.FAULT_KIND_LOGON_REFUSED,
    "recover": venue_pb2.FAULT_KIND_RECOVER,
}


def short_dir(tag: str) -> Path:
    """A short directory under /tmp: unix socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=f"fo-{tag}-", dir="/tmp"))


async def until(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    what: str,
    timeout: float = WAIT_S,
    interval: float = 0.01,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until ``ok(value)``; AssertionError naming ``what`` (with the last value) on timeout.

    A probe that raises a gRPC error counts as "not yet" (a process may still be starting).
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = await probe()
            if ok(value):
                return value
            last = value
        except grpc.aio.AioRpcError as exc:
            last = f"{exc.code().name}: {exc.details()}"
        if time.monotonic() > deadline:
            extra = f"\n{diagnose()}" if diagnose is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen:\n{last}{extra}")
        await asyncio.sleep(interval)


async def run_cli(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """``python -m failover.cli ARGS`` without blocking the event loop: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *cli_argv(*args),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"failover {' '.join(args)} did not finish within {timeout}s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def route_of(st: spb.SidecarLocalStatus, group: str = GROUP) -> spb.Route:
    for r in st.routes:
        if r.group == group:
            return r
    raise AssertionError(f"sidecar {st.host_id} has no route for {group}: {st}")


def health_of(r: spb.Route) -> dict[str, int]:
    """path -> PathState enum value."""
    return {h.path: h.state for h in r.health}


def all_up(r: spb.Route, paths: tuple[str, ...] = ("primary", "backup")) -> bool:
    h = health_of(r)
    return all(h.get(p) == pb.PATH_STATE_UP for p in paths)


def epoch_of(r: spb.Route) -> tuple[int, int]:
    return (r.epoch.era, r.epoch.revision)


def gateway(counters: venue_pb2.Counters, name: str) -> venue_pb2.GatewayCounters:
    for g in counters.gateways:
        if g.name == name:
            return g
    raise AssertionError(f"no gateway {name!r} in {counters}")


def decision_of(st: apb.ClusterStatus, group: str = GROUP) -> pb.Decision | None:
    for g in st.groups:
        if g.definition.name == group and g.HasField("decision"):
            return g.decision
    return None


# --------------------------------------------------------------------------- processes


@dataclass
class VenueProc:
    name: str
    gateways: dict[str, str]  # gateway name -> host:port
    control: str
    proc: Proc

    def args(self) -> list[str]:
        out = ["venue", "run", "--name", self.name, "--control", self.control]
        for gw, addr in self.gateways.items():
            out += ["--gateway", f"{gw}={addr}"]
        return out


@dataclass
class SidecarProc:
    host: str
    site: str
    config_path: Path
    socket: str
    state_file: Path
    proc: Proc
    starts: int = 1


@dataclass
class System:
    """Processes of one test; ``aclose`` stops every one of them (by pid) and closes channels."""

    log_dir: Path
    etcd_endpoints: list[str]
    prefix: str
    sock_dir: Path = field(default_factory=lambda: short_dir("sock"))
    coordinators: dict[str, Proc] = field(default_factory=dict)
    coordinator_addrs: dict[str, str] = field(default_factory=dict)
    venues: dict[str, VenueProc] = field(default_factory=dict)
    sidecars: dict[str, SidecarProc] = field(default_factory=dict)
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    _restores_healed: int = 0

    # ----------------------------------------------------------------- diagnostics

    def logs(self, chars: int = 1500) -> str:
        parts = []
        procs: list[Proc] = [*self.coordinators.values()]
        procs += [v.proc for v in self.venues.values()]
        procs += [s.proc for s in self.sidecars.values()]
        for p in procs:
            state = "alive" if p.alive else f"exited {p.proc.returncode if p.proc else None}"
            lines = [ln for ln in p.log().splitlines() if "ended: UNAVAILABLE" not in ln]  # retry noise
            parts.append(f"--- {p.name} ({state}) {p.log_path}:\n" + "\n".join(lines)[-chars:])
        return "\n".join(parts)

    def check_alive(self) -> None:
        for s in self.sidecars.values():
            if s.proc.proc is not None and not s.proc.alive:
                raise AssertionError(f"sidecar {s.host} exited:\n{s.proc.log()[-3000:]}")
        for v in self.venues.values():
            if not v.proc.alive:
                raise AssertionError(f"venue {v.name} exited:\n{v.proc.log()[-3000:]}")

    def ports(self, n: int) -> list[int]:
        """``n`` distinct free ports (``free_ports`` never repeats one it handed out recently)."""
        return free_ports(n)

    def channel(self, target: str) -> grpc.aio.Channel:
        ch = self._channels.get(target)
        if ch is None:
            ch = self._channels[target] = rpc.channel(target)
        return ch

    async def drop_channel(self, target: str) -> None:
        ch = self._channels.pop(target, None)
        if ch is not None:
            await ch.close(None)

    # ----------------------------------------------------------------- venues

    def start_venue(
        self, name: str = "venue", gateways: tuple[str, ...] = ("primary", "backup")
    ) -> VenueProc:
        *gw_ports, control = self.ports(len(gateways) + 1)
        v = VenueProc(
            name,
            {gw: f"127.0.0.1:{port}" for gw, port in zip(gateways, gw_ports, strict=True)},
            f"127.0.0.1:{control}",
            Proc(f"venue-{name}", [], self.log_dir),
        )
        v.proc.args = v.args()
        v.proc.start()
        self.venues[name] = v
        return v

    async def wait_venue(self, name: str = "venue") -> None:
        v = self.venues[name]
        await until(
            lambda: self.counters(name),
            lambda c: len(c.gateways) == len(v.gateways),
            f"venue {name} serving its control API",
            timeout=START_S,
            diagnose=self.logs,
        )

    async def counters(self, venue: str = "venue") -> venue_pb2.Counters:
        stub = venue_pb2_grpc.VenueControlStub(self.channel(self.venues[venue].control))
        c: venue_pb2.Counters = await stub.GetCounters(venue_pb2.CountersRequest(), timeout=5)
        return c

    async def fault(
        self, gateway_name: str, kind: str, session: str = "", venue: str = "venue", delay_ms: int = 0
    ) -> str:
        stub = venue_pb2_grpc.VenueControlStub(self.channel(self.venues[venue].control))
        req = venue_pb2.FaultRequest(
            gateway=gateway_name, session=session, kind=FAULT_KINDS[kind], delay_ms=delay_ms
        )
        resp: venue_pb2.FaultResponse = await stub.InjectFault(req, timeout=5)
        return str(resp.message)

    # ----------------------------------------------------------------- coordinators

    def group_def(
        self,
        endpoints: dict[str, dict[str, str]] | None = None,
        venue: str = "venue",
        **policy: Any,
    ) -> dict[str, Any]:
        """cme-orders with paths primary, backup; endpoints default to the venue's gateways of those names."""
        if endpoints is None:
            gws = self.venues[venue].gateways
            endpoints = {p: {"default": gws[p]} for p in ("primary", "backup")}
        return {
            "name": GROUP,
            "paths": [{"name": p, "endpoints": eps} for p, eps in endpoints.items()],
            **({"policy": policy} if policy else {}),
        }

    def start_coordinators(self, groups: list[dict[str, Any]], n: int = 3, **extra: Any) -> None:
        for i, port in enumerate(self.ports(n)):
            rid = f"c{i + 1}"
            cfg = {
                "replica_id": rid,
                "listen": f"127.0.0.1:{port}",
                "etcd": {"endpoints": self.etcd_endpoints, "prefix": self.prefix},
                "groups": groups,
                # Workaround, not a requirement: each freshness probe asks the watch for progress,
                # and etcd 3.4.23 may answer with a revision below an event it already delivered
                # (etcd#15220); Mirror._consume takes that for an etcd restore and the leader
                # commits nothing more until `failover era bump`. Probing once a minute keeps
                # that product bug (reported) from failing these sidecar tests at random.
                "freshness": {"probe_interval_ms": 60_000},
                **extra,
            }
            path = self.log_dir / f"{rid}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            self.coordinator_addrs[rid] = f"127.0.0.1:{port}"
            self.coordinators[rid] = Proc(rid, ["coordinator", "--config", str(path)], self.log_dir).start()

    @property
    def coordinator_list(self) -> str:
        return ",".join(self.coordinator_addrs.values())

    async def cluster_status(self, address: str | None = None) -> apb.ClusterStatus:
        """GetStatus from ``address``, or from the first live replica that answers."""
        targets = (
            [address]
            if address
            else [a for rid, a in self.coordinator_addrs.items() if self.coordinators[rid].alive]
        )
        last: grpc.aio.AioRpcError | None = None
        for a in targets:
            try:
                st: apb.ClusterStatus = await admin_pb2_grpc.AdminStub(self.channel(a)).GetStatus(
                    apb.GetStatusRequest(hosts=True), timeout=3
                )
                return st
            except grpc.aio.AioRpcError as exc:
                last = exc
        assert last is not None
        raise last

    async def heal_false_restore(self) -> bool:
        """Bump the era if a replica wrongly detected an etcd restore (see ``start_coordinators``).

        Workaround for a coordinator bug (reported): ``Mirror._consume`` takes an etcd progress
        notification that arrives after newer events (etcd#15220, etcd 3.4.23) for a restore,
        and the leader then commits nothing until ``failover era bump``. The first freshness
        probe, at start-up, can still hit it. An operator would bump the era; so does this,
        once per detection, and says so on stderr. Returns whether it bumped.
        """
        seen = sum(p.log().count("] etcd restore detected") for p in self.coordinators.values())
        if seen <= self._restores_healed:
            return False
        self._restores_healed = seen
        live = ",".join(a for rid, a in self.coordinator_addrs.items() if self.coordinators[rid].alive)
        code, _, err = await run_cli(
            "era",
            "bump",
            "--reason",
            "test harness: false restore detection",
            "--operator",
            "test",
            "-c",
            live,
        )
        print(
            f"harness: a coordinator falsely detected an etcd restore; era bump -> {code} {err}",
            file=sys.stderr,
        )
        return code == 0

    async def operator(self, *args: str, timeout: float = WAIT_S) -> str:
        """An operator command (``failover ARGS -c <live replicas>``), retried (bounded) until it succeeds."""
        deadline = time.monotonic() + timeout
        while True:
            live = ",".join(a for rid, a in self.coordinator_addrs.items() if self.coordinators[rid].alive)
            code, out, err = await run_cli(*args, "-c", live)
            if code == 0:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"failover {' '.join(args)} kept failing for {timeout}s: {err.strip()}")
            await self.heal_false_restore()
            await asyncio.sleep(0.1)

    async def wait_coordinators(self) -> apb.ClusterStatus:
        """Every replica answers with a leader and a decision for the group."""

        def ready(st: apb.ClusterStatus) -> bool:
            return bool(st.leader.replica_id) and decision_of(st) is not None

        async def probe(address: str) -> apb.ClusterStatus:
            await self.heal_false_restore()
            return await self.cluster_status(address)

        st = apb.ClusterStatus()
        for a in self.coordinator_addrs.values():
            st = await until(
                functools.partial(probe, a),
                ready,
                f"coordinator {a} to know a leader and a decision",
                timeout=START_S,
                interval=0.05,
                diagnose=self.logs,
            )
        for rid, p in self.coordinators.items():  # one answering for another would hide a dead one
            assert p.alive, f"coordinator {rid} exited:\n{p.log()[-3000:]}"
        return st

    async def switch(self, path: str, reason: str = "test", timeout: float = WAIT_S) -> pb.Decision:
        """``failover switch`` through the CLI, retried (bounded) while no leader can commit."""
        out = await self.operator(
            "switch", GROUP, path, "--reason", reason, "--operator", "test", "--json", "--timeout", "3",
            timeout=timeout,
        )  # fmt: skip
        data = json.loads(out)["decision"]
        d = pb.Decision(group=data["group"], paths=data["paths"])
        d.epoch.era = int(data["epoch"].get("era", 0))
        d.epoch.revision = int(data["epoch"]["revision"])
        return d

    # ----------------------------------------------------------------- sidecars

    def sidecar_config(
        self, host: str, site: str = "default", heartbeat_ms: int = 50, **extra: Any
    ) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "host_id": host,
            "site": site,
            "groups": [GROUP],
            "coordinators": list(self.coordinator_addrs.values()),
            "state_file": str(self.log_dir / f"{host}.state.json"),
            "strategies": [STRATEGY],
            "listen": {"socket": str(self.sock_dir / f"{host}.sock")},
            # The order probe's 5 ms default floor reads a venue starved of CPU (the whole
            # system shares 2 cores here) as a dead path: a CI run lost a healthy backup to
            # "no echo of a probe within 5.0 ms (loop lag: none seen)". These tests check
            # the mechanisms, as the fault tier does with its own floor; the floor's
            # figures are in docs/benchmarks.md.
            "data_plane": {"heartbeat_interval_ms": heartbeat_ms, "probe_timeout_floor_ms": 50.0},
        }
        cfg.update(extra)
        return cfg

    def start_sidecar(
        self, host: str, site: str = "default", heartbeat_ms: int = 50, **extra: Any
    ) -> SidecarProc:
        cfg = self.sidecar_config(host, site, heartbeat_ms, **extra)
        path = self.log_dir / f"{host}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        proc = Proc(host, ["sidecar", "--config", str(path)], self.log_dir).start()
        sc = SidecarProc(host, site, path, cfg["listen"]["socket"], Path(cfg["state_file"]), proc)
        self.sidecars[host] = sc
        return sc

    async def restart_sidecar(self, host: str) -> SidecarProc:
        """SIGTERM the sidecar, wait for its exit, start it again with the same config (log appended)."""
        sc = self.sidecars[host]
        code = await asyncio.to_thread(sc.proc.stop)
        assert code == 0, f"sidecar {host} exited with {code} on SIGTERM:\n{sc.proc.log()[-3000:]}"
        await self.drop_channel(f"unix:{sc.socket}")
        sc.proc = Proc(host, ["sidecar", "--config", str(sc.config_path)], self.log_dir).start()
        sc.starts += 1
        return sc

    async def status(self, host: str) -> spb.SidecarLocalStatus:
        sc = self.sidecars[host]
        stub = sidecar_pb2_grpc.SidecarStub(self.channel(f"unix:{sc.socket}"))
        st: spb.SidecarLocalStatus = await stub.GetStatus(spb.SidecarStatusRequest(), timeout=5)
        return st

    async def wait_sidecar(
        self,
        host: str,
        ok: Callable[[spb.SidecarLocalStatus], bool],
        what: str,
        timeout: float = WAIT_S,
    ) -> spb.SidecarLocalStatus:
        def diagnose() -> str:
            return self.sidecars[host].proc.log()[-3000:]

        async def probe() -> spb.SidecarLocalStatus:
            self.check_alive()
            return await self.status(host)

        return await until(probe, ok, f"sidecar {host}: {what}", timeout=timeout, diagnose=diagnose)

    async def wait_route(
        self, host: str, effective: str, *, up: bool = True, timeout: float = WAIT_S
    ) -> spb.SidecarLocalStatus:
        return await self.wait_sidecar(
            host,
            lambda st: route_of(st).effective_path == effective and (not up or all_up(route_of(st))),
            f"effective route {effective}" + (" with both paths up" if up else ""),
            timeout=timeout,
        )

    async def wait_ready(self, hosts: list[str] | None = None, timeout: float = START_S) -> None:
        """Each sidecar streams from a coordinator, holds a decision and is on primary with both paths up."""
        for h in hosts or list(self.sidecars):
            await self.wait_sidecar(
                h,
                lambda st: (
                    st.control_plane_connected
                    and route_of(st).epoch.revision > 0
                    and route_of(st).effective_path == "primary"
                    and all_up(route_of(st))
                ),
                "ready (connected, a decision held, on primary, both paths up)",
                timeout=timeout,
            )

    async def wait_leader_counts(self, hosts: int, group: str = GROUP, timeout: float = WAIT_S) -> None:
        """Until the leader's policy counts every path of ``group`` up on ``hosts`` hosts.

        A sidecar's own status says its paths are up before its report has reached the leader
        (through its replica); a fault injected in between is judged on fewer hosts.
        """

        def counted(st: apb.ClusterStatus) -> bool:
            judged = [j for r in st.replicas if r.is_leader for j in r.path_health if j.group == group]
            return bool(judged) and all(j.up == hosts and j.reporting == hosts for j in judged)

        await until(
            self.cluster_status,
            counted,
            f"the leader to count {hosts} hosts up on every path of {group}",
            timeout=timeout,
            interval=0.02,
        )

    # ----------------------------------------------------------------- teardown

    async def aclose(self) -> None:
        for ch in self._channels.values():
            with contextlib.suppress(Exception):
                await ch.close(None)
        self._channels.clear()
        procs = [s.proc for s in self.sidecars.values()]
        procs += list(self.coordinators.values())
        procs += [v.proc for v in self.venues.values()]
        for p in procs:  # SIGTERM all first, then reap: stopping in parallel keeps teardown short
            p.signal(15)
        for p in procs:
            await asyncio.to_thread(p.stop, 5)
        shutil.rmtree(self.sock_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def system(log_dir: Path, etcd_endpoints: list[str], prefix: str) -> AsyncIterator[System]:
    s = System(log_dir, etcd_endpoints, prefix)
    try:
        yield s
    finally:
        await s.aclose()


async def standard(
    s: System,
    hosts: tuple[str, ...] = ("h1", "h2", "h3"),
    heartbeat_ms: int = 50,
    replicas: int = 3,
    sidecar: dict[str, Any] | None = None,
    coordinator: dict[str, Any] | None = None,
    **policy: Any,
) -> None:
    """One venue (primary, backup), ``replicas`` coordinators, one sidecar per host; all ready.

    ``sidecar``, ``coordinator``: extra sections of every sidecar's, every coordinator's config."""
    s.start_venue()
    await s.wait_venue()
    s.start_coordinators([s.group_def(**policy)], n=replicas, **(coordinator or {}))
    # Sidecars start once the first decision exists: a sidecar that connects before it reports
    # an empty effective route, and the decision that follows is never reported (see
    # Agent.on_decision), so `failover status` would show "" for that host.
    await s.wait_coordinators()
    for h in hosts:
        s.start_sidecar(h, heartbeat_ms=heartbeat_ms, **(sidecar or {}))
    await s.wait_ready(list(hosts))
    await s.wait_leader_counts(len(hosts))


# --------------------------------------------------------------------------- orders


@dataclass
class Sent:
    msg_id: int
    submitted_ns: int
    fut: asyncio.Future[spb.Outcome]
    outcome_ns: int = 0

    @property
    def outcome(self) -> spb.Outcome:
        return self.fut.result()


class OrderFlow:
    """A strategy sending one order every ``interval_s`` through one sidecar (failover_client.api.Sidecar)."""

    def __init__(self, host: str, socket: str, interval_s: float = 0.005) -> None:
        self.host = host
        self.socket = socket
        self.interval_s = interval_s
        self.sent: list[Sent] = []
        self._sc: Sidecar | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def open(self) -> Sidecar:
        self._sc = await Sidecar.connect(self.socket, STRATEGY)
        return self._sc

    def submit(self) -> Sent:
        assert self._sc is not None
        mid, fut = self._sc.submit(GROUP, f'{{"sym":"ESZ6","qty":1,"host":"{self.host}"}}')
        rec = Sent(mid, time.monotonic_ns(), fut)

        def done(_: asyncio.Future[spb.Outcome]) -> None:
            rec.outcome_ns = time.monotonic_ns()

        fut.add_done_callback(done)
        self.sent.append(rec)
        return rec

    async def send_one(self, timeout: float = WAIT_S) -> spb.Outcome:
        rec = self.submit()
        async with asyncio.timeout(timeout):
            return await rec.fut

    def start(self) -> None:
        async def loop() -> None:
            while not self._stop.is_set():
                self.submit()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)

        self._task = asyncio.create_task(loop(), name=f"orders-{self.host}")

    async def stop(self, settle_timeout: float = WAIT_S) -> None:
        """Stop sending and wait (bounded) until every order sent has its outcome."""
        self._stop.set()
        if self._task is not None:
            await self._task
        pending = [r.fut for r in self.sent if not r.fut.done()]
        if pending:
            done, not_done = await asyncio.wait(pending, timeout=settle_timeout)
            assert not not_done, (
                f"{self.host}: {len(not_done)} orders without an outcome after {settle_timeout}s"
            )

    def acked_after(self, path: str, t_ns: int) -> list[Sent]:
        return [
            r
            for r in self.sent
            if r.submitted_ns > t_ns
            and r.fut.done()
            and r.outcome.kind == OutcomeKind.ACKED
            and r.outcome.path == path
        ]

    async def until_acked(self, path: str, after_ns: int, n: int, timeout: float = WAIT_S) -> None:
        """Until ``n`` orders submitted after ``after_ns`` are ACKED on ``path`` (the flow keeps sending)."""
        deadline = time.monotonic() + timeout
        while len(self.acked_after(path, after_ns)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.host}: fewer than {n} orders acked on {path} within {timeout}s: {self.kinds()}"
                )
            pending = [r.fut for r in self.sent if not r.fut.done()]
            if pending:  # wake on the next outcome
                await asyncio.wait(pending, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
            else:  # wake on the next order sent
                await asyncio.sleep(self.interval_s)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.sent:
            k = OutcomeKind.name(r.outcome.kind) if r.fut.done() else "PENDING"
            out[k] = out.get(k, 0) + 1
        return out

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sc is not None:
            await self._sc.close()


def outcome_counters(st: spb.SidecarLocalStatus) -> dict[str, int]:
    c = dict(st.counters)
    return {k: int(c.get(k, 0)) for k in ("submitted", "acked", "rejected", "in_doubt", "no_path", "resent")}


def env_without_failover() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FAILOVER_")}
