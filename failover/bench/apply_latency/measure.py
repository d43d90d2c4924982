"""One apply-latency row: start the system, then switch the group back and forth, timing each apply."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from failover.bench.apply_latency.poll import LogTimes, Poller, Seen
from failover.bench.apply_latency.system import GROUP, PATHS, System
from failover.bench.apply_latency.watch import RouteWatch
from failover.bench.report import BenchFailure, progress
from failover.bench.tls_variant import BenchPki
from failover.machine import proc_cpu_s
from failover.stats import Latency

RUN_TIMEOUT_S = 10.0


async def _bounded(what: str, timeout: float, probe: Callable[[], Awaitable[bool]], sys_: System) -> None:
    end = time.monotonic() + timeout
    last = ""
    while True:
        sys_.check_alive()
        try:
            if await probe():
                return
        except grpc.aio.AioRpcError as exc:
            last = f"{exc.code().name}: {exc.details()}"
        if time.monotonic() > end:
            raise BenchFailure(f"{what}: not within {timeout:.0f}s {last}")
        await asyncio.sleep(0.05)


@dataclass
class ApplyResult:
    sidecars: int
    last: Latency = field(default_factory=lambda: Latency("last sidecar"))
    every: Latency = field(default_factory=lambda: Latency("each sidecar"))
    gaps: Latency = field(default_factory=lambda: Latency("poll gap", keep_samples=False))
    rtts: Latency = field(default_factory=lambda: Latency("poll round trip", keep_samples=False))
    log_last: Latency = field(default_factory=lambda: Latency("last sidecar, by its log"))
    log_every: Latency = field(default_factory=lambda: Latency("each sidecar, by its log"))
    lower_last_us: list[int] = field(default_factory=list)  # signed: may precede the commit
    runs: list[dict[str, Any]] = field(default_factory=list)
    tls: str = "insecure"
    # CPU ms per recorded run (warm-up excluded): coordinators together, sidecars together.
    cpu_ms_per_run: dict[str, float] = field(default_factory=dict)

    def cpu_us_per_sidecar_per_run(self) -> dict[str, float]:
        """Coordinator and sidecar CPU per switch, divided by the sidecars (one stream each)."""
        return {k: round(v * 1000 / self.sidecars, 1) for k, v in self.cpu_ms_per_run.items()}

    def lower_p50_ms(self) -> float | None:
        v = sorted(self.lower_last_us)
        return v[len(v) // 2] / 1000 if v else None


def _cpu_s(s: System) -> dict[str, float]:
    """CPU seconds so far of the coordinators together and of the sidecars together."""
    out = {"coordinators": 0.0, "sidecars": 0.0}
    for c in s.children:
        kind = "coordinators" if c.name in s.coordinators else "sidecars" if c.name in s.sockets else ""
        if kind and c.proc is not None:
            out[kind] += proc_cpu_s(c.proc.pid)
    return out


async def apply_one(
    n: int, runs: int, res: ApplyResult, workdir: Path, poll_ms: float, pki: BenchPki | None = None
) -> None:
    """One row; with ``pki`` every link of the system (and the bench's Admin calls) runs mTLS."""
    from failover import rpc
    from failover.v1 import admin_pb2 as apb
    from failover.v1 import admin_pb2_grpc

    s = System(n, workdir, pki=pki)
    watch: RouteWatch | None = None
    poller: Poller | None = None
    channels: dict[str, grpc.aio.Channel] = {}
    ok = False
    try:
        s.start()

        def admin(addr: str) -> Any:
            if addr not in channels:
                channels[addr] = rpc.channel(addr, tls=pki.operator() if pki is not None else None)
            return admin_pb2_grpc.AdminStub(channels[addr])

        leader = ""

        async def coordinators_ready() -> bool:
            nonlocal leader
            for addr in s.coordinators.values():
                st = await admin(addr).GetStatus(apb.GetStatusRequest(), timeout=2)
                if not st.leader.address or not any(g.HasField("decision") for g in st.groups):
                    return False
                leader = st.leader.address
            return True

        await _bounded("coordinators ready (leader and first decision)", 60, coordinators_ready, s)
        s.start_sidecars()
        poller = Poller(s.sockets, poll_ms / 1000)
        p = poller
        logs = LogTimes({h: workdir / f"{h}.log" for h in s.sockets})

        async def sidecars_ready() -> bool:
            for h in s.sockets:
                st = await p.status(h, timeout=2)
                r = next((r for r in st.routes if r.group == GROUP), None)
                if (
                    not st.control_plane_connected
                    or r is None
                    or not r.epoch.revision
                    or not r.effective_path
                ):
                    return False
                if sum(1 for x in r.health if x.state == 1) < len(PATHS):  # PATH_STATE_UP
                    return False
            return True

        await _bounded(
            f"{n} sidecars ready (streaming, a decision held, both paths up)", 120, sidecars_ready, s
        )
        # No automatic decision may interleave with the measured ones (a line falsely declared
        # silent on a saturated machine would otherwise move the group): pause the group.
        # Operator switches still commit; force skips the "someone reports the path up" guard.
        pause = apb.SetControlRequest(
            action=apb.CONTROL_ACTION_PAUSE, group=GROUP, reason="bench apply-latency", operator="bench"
        )
        await admin(leader).SetControl(pause, timeout=5)
        st = await admin(leader).GetStatus(apb.GetStatusRequest(), timeout=5)
        active = next(str(g.decision.paths[0]) for g in st.groups if g.definition.name == GROUP)
        assert s.etcd is not None
        watch = RouteWatch(s.etcd.endpoints, s.prefix, workdir / "watch.log")
        await watch.start()
        progress(f"[{n} sidecars] ready; leader {leader}; group paused")
        cpu0: dict[str, float] = {}
        for run in range(-1, runs):  # run -1: warm-up, not recorded
            if run == 0:
                cpu0 = _cpu_s(s)
            s.check_alive()
            held = max([p.revision(await p.status(h)) for h in s.sockets])
            target = "backup" if active == "primary" else "primary"
            end = time.monotonic() + RUN_TIMEOUT_S
            pollers = [asyncio.create_task(p.until_above(h, held, end)) for h in s.sockets]
            try:
                req = apb.SwitchRequest(
                    group=GROUP, path=target, reason="bench apply-latency", operator="bench", force=True
                )
                try:
                    resp = await admin(leader).Switch(req, timeout=5)
                except grpc.aio.AioRpcError as exc:
                    why = f"{exc.code().name}: {exc.details()}"
                    raise BenchFailure(f"run {run + 1}: Switch to {target} via the leader: {why}") from None
                rev = int(resp.decision.epoch.revision)
                if list(resp.decision.paths)[:1] != [target]:
                    raise BenchFailure(f"Switch to {target} answered {list(resp.decision.paths)}")
                t_commit = await watch.wait(rev, RUN_TIMEOUT_S)
                seen: list[Seen] = await asyncio.gather(*pollers)
            except BaseException:
                for t in pollers:
                    t.cancel()
                await asyncio.gather(*pollers, return_exceptions=True)
                raise
            active = target
            other = [x.revision for x in seen if x.revision != rev]
            if other:
                raise BenchFailure(f"sidecars saw revision(s) {sorted(set(other))}, not the switch's {rev}")
            last_reply = max(x.reply_ns for x in seen)
            last_lower = max(x.prev_sent_ns for x in seen)
            await asyncio.to_thread(logs.scan)
            logged = [logs.applied.get((h, rev)) for h in s.sockets]
            t_wall = watch.seen_wall[rev]
            by_log = [t - t_wall for t in logged if t is not None] if all(logged) else []
            if run >= 0:
                if by_log:
                    res.log_last.record_ns(max(by_log))
                    for d in by_log:
                        res.log_every.record_ns(d)
                res.last.record_ns(last_reply - t_commit)
                res.lower_last_us.append((last_lower - t_commit) // 1000)
                for x in seen:
                    res.every.record_ns(x.reply_ns - t_commit)
                    for g in x.poll_gaps_ns:
                        res.gaps.record_ns(g)
                    for rt in x.poll_rtts_ns:
                        res.rtts.record_ns(rt)
                res.runs.append(
                    {
                        "run": run + 1,
                        "revision": rev,
                        "last_sidecar_us": (last_reply - t_commit) // 1000,
                        "last_sidecar_lower_bound_us": (last_lower - t_commit) // 1000,
                        "per_sidecar_us": [(x.reply_ns - t_commit) // 1000 for x in seen],
                        "per_sidecar_by_log_us": [d // 1000 for d in by_log],
                        "polls": [x.polls for x in seen],
                    }
                )
                progress(
                    f"[{n} sidecars] run {run + 1}/{runs} rev {rev}: last sidecar applied "
                    f"{(last_reply - t_commit) / 1e6:.2f} ms after commit "
                    f"(lower bound {(last_lower - t_commit) / 1e6:.2f} ms)"
                )
            await asyncio.sleep(0.2)
        cpu1 = _cpu_s(s)
        res.cpu_ms_per_run = {k: round((cpu1[k] - v) * 1000 / runs, 2) for k, v in cpu0.items()}
        ok = True
    finally:
        if poller is not None:
            await poller.close()
        if watch is not None:
            await watch.close()
        for ch in channels.values():
            with contextlib.suppress(Exception):
                await ch.close(None)
        s.stop(keep_logs=not ok)
