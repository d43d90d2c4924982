"""What the control-plane and fan-out benchmarks share: the cluster they measure.

Processes: etcd members (``EtcdCluster``) and coordinator replicas, each a
``failover.procs.Child`` started in its own session and stopped by its pid
(SIGTERM, then SIGKILL) in ``Cluster.stop``, which every command calls from
``finally`` so Ctrl-C and errors leave nothing behind. etcd keeps its data on
tmpfs under a directory ``EtcdCluster.stop`` removes; coordinator logs go to a
temporary directory that is removed after a clean run and kept (and printed)
after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import yaml

from failover import rpc
from failover.bench.report import BenchFailure, progress
from failover.bench.tls_variant import BenchPki
from failover.etcdproc import EtcdCluster
from failover.procs import Child, child_env, cli_argv, free_port
from failover.stats import Latency
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc

__all__ = ["GROUP", "PATHS", "BenchFailure", "Cluster", "CoordinatorProc", "Stats", "progress", "retry_until"]

GROUP = "cme-orders"
PATHS = ("primary", "backup")

T = TypeVar("T")

# The control-plane and fan-out figures: recorded in ns, reported in ms (failover.stats).
Stats = Latency


class CoordinatorProc(Child):
    """One ``python -m failover.cli coordinator --config FILE`` child, owned by us.

    FAILOVER_* variables are not passed on: they would override the config file,
    and a run is defined by the file alone.
    """

    def __init__(self, replica_id: str, address: str, config_path: Path, log_path: Path) -> None:
        super().__init__(
            replica_id,
            cli_argv("coordinator", "--config", str(config_path)),
            log_path,
            env=child_env(drop_prefix="FAILOVER_"),
            banner=True,
        )
        self.replica_id = replica_id
        self.address = address
        self.config_path = config_path


def group_definition(name: str = GROUP) -> dict[str, Any]:
    """The group of tests/procs.py: cme-orders with paths primary, backup (nothing listens there)."""
    return {
        "name": name,
        "paths": [
            {"name": p, "endpoints": {"default": f"127.0.0.1:{9001 + i}"}} for i, p in enumerate(PATHS)
        ],
    }


class Cluster:
    """An etcd cluster and N coordinator replicas on loopback, all started and stopped by us."""

    def __init__(
        self,
        label: str,
        replicas: int,
        etcd_members: int,
        keep_logs: bool = False,
        pki: BenchPki | None = None,
        extra_groups: tuple[str, ...] = (),
        streams_only: int = 0,
    ) -> None:
        self.label = label
        # More replicas, after the ``replicas`` that campaign, with election.campaign: false.
        self.streams_only = streams_only
        # More groups shaped like GROUP (e.g. one no stream subscribes to, for operator probes).
        self.extra_groups = extra_groups
        # With a PKI: replicas serve mTLS, and this process calls them as operator "bench".
        self.pki = pki
        self.n = replicas
        self.etcd_members = etcd_members
        self.keep_logs = keep_logs
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"failover-bench-{label}-"))
        self.prefix = f"/bench-{uuid.uuid4().hex[:10]}/"
        self.etcd: EtcdCluster | None = None
        self.procs: list[CoordinatorProc] = []
        self.failed = False
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stopped = False

    @property
    def endpoints(self) -> list[str]:
        assert self.etcd is not None
        return self.etcd.endpoints

    def start(self) -> None:
        progress(f"[{self.label}] starting etcd ({self.etcd_members} member(s), tmpfs data)")
        self.etcd = EtcdCluster(self.etcd_members)
        self.etcd.start()
        for i in range(self.n + self.streams_only):
            campaigns = i < self.n
            rid = f"c{i + 1}" if campaigns else f"s{i + 1 - self.n}"
            port = free_port()
            cfg: dict[str, Any] = {
                "replica_id": rid,
                "listen": f"127.0.0.1:{port}",
                "etcd": {"endpoints": self.etcd.endpoints, "prefix": self.prefix},
                "groups": [group_definition(g) for g in (GROUP, *self.extra_groups)],
            }
            if not campaigns:
                cfg["election"] = {"campaign": False}
            if self.pki is not None:
                cfg["tls"] = self.pki.config("replica", rid)
            path = self.log_dir / f"{rid}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            self.procs.append(CoordinatorProc(rid, f"127.0.0.1:{port}", path, self.log_dir / f"{rid}.log"))
        only = f" and {self.streams_only} stream-only" if self.streams_only else ""
        progress(f"[{self.label}] starting {self.n} coordinator(s){only}; logs in {self.log_dir}")
        for p in self.procs:
            p.start()

    @property
    def stream_addresses(self) -> list[str]:
        """Where sidecar streams go: the stream-only replicas when there are any, else all."""
        only = self.procs[self.n :]
        return [p.address for p in (only or self.procs)]

    def by_id(self, replica_id: str) -> CoordinatorProc:
        for p in self.procs:
            if p.replica_id == replica_id:
                return p
        raise BenchFailure(f"leader {replica_id!r} is not one of our replicas")

    def channel(self, address: str) -> grpc.aio.Channel:
        """One long-lived channel per replica address (call inside the event loop)."""
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = self._new_channel(address)
        return ch

    def _new_channel(self, address: str) -> grpc.aio.Channel:
        tls = self.pki.operator() if self.pki is not None else None
        return rpc.channel(address, tls=tls)

    def admin(self, address: str) -> Any:
        return admin_pb2_grpc.AdminStub(self.channel(address))

    async def status(self, address: str, timeout: float = 2.0) -> Any:
        st: apb.ClusterStatus = await self.admin(address).GetStatus(apb.GetStatusRequest(), timeout=timeout)
        return st

    async def switch(
        self, address: str, path: str, timeout: float, group: str = GROUP, request_id: str = ""
    ) -> Any:
        """``request_id``: the same for every retry of one switch (as ``failover switch``
        sends), so a replica that committed it and failed to answer is not made to commit
        it again."""
        # Forced: the bench runs no sidecars, so no host reports the path up (a guard rail).
        req = apb.SwitchRequest(group=group, path=path, reason="bench", operator="bench", force=True)
        md = (("failover-request-id", request_id),) if request_id else None
        resp: apb.ControlResponse = await self.admin(address).Switch(req, timeout=timeout, metadata=md)
        return resp

    def check_alive(self, exclude: str = "") -> None:
        for p in self.procs:
            if p.replica_id != exclude and p.proc is not None and not p.alive:
                raise BenchFailure(
                    f"coordinator {p.replica_id} exited unexpectedly (code {p.proc.returncode}); "
                    f"its log ends with:\n{p.tail()}"
                )

    async def wait_ready(
        self, procs: list[CoordinatorProc] | None = None, timeout: float = 60.0, *, fresh: bool = False
    ) -> Any:
        """Until each given replica answers GetStatus with a leader and a decision for the group.

        ``fresh``: ask on a new channel each time (as a new ``failover status`` does) and drop
        the cached one first. A channel that saw the replica die waits out gRPC's reconnect
        backoff (100 ms growing to 1 s) before it tries again, so polling on it times that
        backoff rather than the replica: a restart looked up to ~0.6 s slower than it was.
        Returns the last status seen (from the last replica checked).
        """
        deadline = time.monotonic() + timeout
        last_err = ""
        st: Any = None
        for p in procs or self.procs:
            if fresh:
                await self.forget(p.address)
            while True:
                if not p.alive:
                    assert p.proc is not None
                    raise BenchFailure(
                        f"coordinator {p.replica_id} exited (code {p.proc.returncode}):\n{p.tail()}"
                    )
                try:
                    ask = self._status_once if fresh else self.status
                    st = await ask(p.address, timeout=1.0)
                    decided = any(g.definition.name == GROUP and g.HasField("decision") for g in st.groups)
                    if st.leader.address and decided:
                        break
                    last_err = f"leader={st.leader.replica_id or '-'} decided={decided}"
                except grpc.aio.AioRpcError as exc:
                    last_err = f"{exc.code().name}: {exc.details()}"
                if time.monotonic() > deadline:
                    raise BenchFailure(
                        f"coordinator {p.replica_id} not ready after {timeout:.0f}s ({last_err})"
                    )
                await asyncio.sleep(0.02)
        return st

    async def _status_once(self, address: str, timeout: float) -> Any:
        """GetStatus on a channel of its own, closed after the call."""
        ch = self._new_channel(address)
        try:
            st: apb.ClusterStatus = await admin_pb2_grpc.AdminStub(ch).GetStatus(
                apb.GetStatusRequest(), timeout=timeout
            )
            return st
        finally:
            await ch.close(None)

    async def forget(self, address: str) -> None:
        """Close and drop the cached channel to ``address`` (the next call opens a new one)."""
        ch = self._channels.pop(address, None)
        if ch is not None:
            with contextlib.suppress(Exception):
                await ch.close(None)

    async def aclose(self) -> None:
        for ch in self._channels.values():
            with contextlib.suppress(Exception):
                await ch.close(None)
        self._channels.clear()

    def stop(self) -> None:
        """Stop every process we started (by pid) and remove etcd's data; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.stop()
        if self.etcd is not None:
            if self.failed:  # keep etcd's own logs next to the coordinators'
                for m in self.etcd.members:
                    with contextlib.suppress(OSError):
                        shutil.copy(m.log_path, self.log_dir / f"etcd-{m.name}.log")
            self.etcd.stop()
        if self.failed or self.keep_logs:
            print(f"coordinator and etcd logs kept in {self.log_dir}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)


async def retry_until(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    deadline_s: float,
    max_attempts: int = 200_000,
    retry_codes: frozenset[grpc.StatusCode] = frozenset(
        {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
    ),
    codes: dict[str, int] | None = None,
    first_errors: list[str] | None = None,
) -> tuple[T, int]:
    """Call ``attempt`` again at once on a retryable gRPC error; bounded in count and time.

    Returns (result, attempts). ``codes`` counts the errors seen, by name;
    ``first_errors`` gets the first few, with when each attempt started and ended.
    """
    start = time.monotonic()
    end = start + deadline_s
    for n in range(1, max_attempts + 1):
        sent = time.monotonic()
        try:
            return await attempt(), n
        except grpc.aio.AioRpcError as exc:
            if codes is not None:
                codes[exc.code().name] = codes.get(exc.code().name, 0) + 1
            if first_errors is not None and len(first_errors) < 5:
                now = time.monotonic()
                first_errors.append(
                    f"attempt {n} sent at +{(sent - start) * 1000:.1f} ms, failed at "
                    f"+{(now - start) * 1000:.1f} ms: {exc.code().name}: {exc.details()}"
                )
            if exc.code() not in retry_codes:
                raise BenchFailure(f"{what}: {exc.code().name}: {exc.details()}") from exc
            last = f"{exc.code().name}: {exc.details()}"
        if time.monotonic() > end:
            raise BenchFailure(f"{what}: no success within {deadline_s:.0f}s ({n} attempts; last {last})")
    raise BenchFailure(f"{what}: no success in {max_attempts} attempts")
