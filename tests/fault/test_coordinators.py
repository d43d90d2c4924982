"""Coordinator faults on the real processes: kill, pause past the lease, follower loss, all down.

Each row states its bound (5x the expected time, never under 2 s), asserts it and
prints the measured time; the observing checker runs throughout (see conftest).
"""

from __future__ import annotations

import asyncio
import sys
import time

import grpc
import pytest

from failover.faults.observe import leader_of
from failover.faults.proxy import Mode
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc, venue_pb2
from tests.fault.conftest import FaultSystem

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]

OUTAGE_S = 5.0


async def _leader(fs: FaultSystem, exclude: set[str] | None = None, timeout: float = 30) -> str:
    async def found() -> bool:
        return leader_of(await fs.obs.cluster_status(exclude)) not in ("", *(exclude or ()))

    await fs.obs.until(found, timeout, "a leader")
    return leader_of(await fs.obs.cluster_status(exclude))


async def _all_apply(fs: FaultSystem, path: str, epoch: tuple[int, int], timeout: float, what: str) -> None:
    await fs.obs.until(
        lambda: fs.obs.all_hosts(
            lambda _h, _s, r: (r.epoch.era, r.epoch.revision) >= epoch and r.effective_path == path
        ),
        timeout,
        what,
    )


async def _pin_host_to(fs: FaultSystem, host: str, rid: str) -> None:
    """Make ``host`` stream from ``rid`` (cut it from the others until it moves, then heal)."""
    others = [r for r in fs.cluster.topo.replicas if r != rid]
    fs.cluster.cut_sidecar_from(host, others)
    await fs.obs.until(lambda: fs.obs.replica_of(host) == rid, 15, f"{host} to stream from {rid}")
    fs.cluster.cut_sidecar_from(host, others, Mode.PASS)


async def test_leader_sigkill(fs: FaultSystem) -> None:
    """The leader dies: a follower takes over within the lease TTL and commits; hosts apply it."""
    old = await _leader(fs)
    t0 = time.monotonic()
    fs.cluster.kill(old)
    new = await _leader(fs, {old})
    elected = time.monotonic() - t0
    d = await fs.obs.switch("backup", "after leader kill")
    await _all_apply(fs, "backup", (d.epoch.era, d.epoch.revision), 20, "every host on the new decision")
    applied = time.monotonic() - t0
    ttl = fs.cluster.topo.lease_ttl_s
    fs.bound("leader SIGKILL: new leader", elected, 5 * (ttl + 1))
    fs.bound("leader SIGKILL: all hosts applied the new leader's decision", applied, 5 * (ttl + 1.5))
    assert new != old
    await fs.finish_clean()


async def test_leader_sigstop_past_lease(fs: FaultSystem) -> None:
    """A paused leader loses its lease: a follower leads, the paused one's sidecars move off it;
    resumed, it writes nothing and steps down."""
    old = await _leader(fs)
    host = fs.cluster.topo.hosts[0]
    await _pin_host_to(fs, host, old)
    ttl = fs.cluster.topo.lease_ttl_s
    t0 = time.monotonic()
    fs.cluster.pause(old)
    moved = await fs.obs.until(
        lambda: fs.obs.replica_of(host) not in ("", old), 5 * 2.0, f"{host} to leave the paused replica"
    )
    new = await _leader(fs, {old})
    elected = time.monotonic() - t0
    d = await fs.obs.switch("backup", "while the old leader is paused")
    await _all_apply(fs, "backup", (d.epoch.era, d.epoch.revision), 20, "every host on the new decision")
    # Past its lease for sure, then resume it.
    while time.monotonic() - t0 < ttl + 2:  # noqa: ASYNC110 - the fault is a duration
        await fs.obs.poll_once()
    before = {(x.epoch.era, x.epoch.revision) for x in await fs.obs.history()}
    t_cont = time.monotonic()
    fs.cluster.resume(old)

    async def stepped_down() -> bool:
        st = await fs.obs.cluster_status()
        if st is None:
            return False
        mine = [r for r in st.replicas if r.replica_id == old]
        return bool(mine) and mine[0].reachable and not mine[0].is_leader and leader_of(st) == new

    await fs.obs.until(stepped_down, 10, f"{old} to report itself a follower")
    down = time.monotonic() - t_cont
    hist = await fs.obs.history()
    late = [x for x in hist if x.leader_id == old and (x.epoch.era, x.epoch.revision) not in before]
    assert not late, f"the paused leader {old} committed after it resumed: {late}"
    fs.bound("leader SIGSTOP: its sidecar moved to another replica", moved, 5 * 2.0)
    fs.bound("leader SIGSTOP: new leader elected", elected, 5 * (ttl + 1))
    fs.bound("leader SIGSTOP: resumed old leader reports follower", down, 5 * 1.0)
    await fs.finish_clean()


async def test_follower_killed_while_streaming(fs: FaultSystem) -> None:
    """A follower with sidecars on it dies: they move to another replica, routing never stops."""
    leader = await _leader(fs)
    follower = next(r for r in fs.cluster.topo.replicas if r != leader)
    host = fs.cluster.topo.hosts[0]
    await _pin_host_to(fs, host, follower)
    t0 = time.monotonic()
    fs.cluster.kill(follower)
    moved = await fs.obs.until(
        lambda: fs.obs.replica_of(host) not in ("", follower), 10, f"{host} to reach another replica"
    )
    d = await fs.obs.switch("backup", "after follower kill")
    await _all_apply(fs, "backup", (d.epoch.era, d.epoch.revision), 10, "every host on the new decision")
    applied = time.monotonic() - t0
    fs.bound("follower SIGKILL: its sidecar on another replica", moved, 5 * 1.5)
    fs.bound("follower SIGKILL: a decision reaches every host", applied, 5 * 2.0)
    counts = fs.strategies[host].counts(t0)
    assert counts.get("NO_PATH", 0) == 0, counts
    await fs.finish_clean()


async def test_all_replicas_down_then_restarted(fs: FaultSystem) -> None:
    """Every replica dies for 5 s: hosts keep routing on warm paths; restarted, they resume.

    5 s is past every stream's dead-after (1 s) and the sidecars' backoff ceiling (2 s)."""
    t_down = time.monotonic()
    fs.checker.control_plane(t_down, up=False)
    for rid in fs.cluster.topo.replicas:
        fs.cluster.kill(rid)
    while time.monotonic() - t_down < OUTAGE_S:  # noqa: ASYNC110 - the outage is a duration
        await fs.obs.poll_once()
    during = {h: s.counts(t_down + 1) for h, s in fs.strategies.items()}
    t0 = time.monotonic()
    for rid in fs.cluster.topo.replicas:
        fs.cluster.start_coordinator(rid)
    fs.checker.control_plane(time.monotonic(), up=True)
    await _leader(fs, timeout=30)
    elected = time.monotonic() - t0
    await fs.obs.until(
        lambda: fs.obs.all_hosts(lambda _h, st, _r: st.control_plane_connected, since=t0),
        30,
        "every host reconnected",
    )
    back = time.monotonic() - t0
    d = await fs.obs.switch("backup", "after the outage")
    committed = time.monotonic() - t0
    await _all_apply(fs, "backup", (d.epoch.era, d.epoch.revision), 15, "every host on the new decision")
    applied = time.monotonic() - t0
    for h, c in during.items():
        assert c.get("ACKED", 0) > 0 and set(c) <= {"ACKED", "pending"}, f"{h} during the outage: {c}"
    fs.bound("all replicas down 5 s: restart to a leader", elected, 5 * 4.0)
    fs.bound("all replicas down 5 s: restart to every host reconnected", back, 5 * 4.0)
    fs.bound("all replicas down 5 s: restart to an operator switch committed", committed, 5 * 5.0)
    fs.bound("all replicas down 5 s: restart to a decision on every host", applied, 5 * 5.0)
    await fs.finish_clean()


@pytest.mark.parametrize("mode", [Mode.STALL, Mode.CUT], ids=["stall", "cut"])
async def test_replica_cut_from_etcd(fs: FaultSystem, mode: Mode) -> None:
    """A follower loses etcd but still serves its sidecars: it must call itself stale and its
    sidecars move to a replica that sees etcd; decisions keep reaching every host."""
    leader = await _leader(fs)
    follower = next(r for r in fs.cluster.topo.replicas if r != leader)
    host = fs.cluster.topo.hosts[0]
    await _pin_host_to(fs, host, follower)
    t0 = time.monotonic()
    fs.cluster.cut_replica_from_etcd(follower, mode)
    moved = await fs.obs.until(
        lambda: fs.obs.replica_of(host) not in ("", follower), 30, f"{host} to leave {follower}"
    )
    d = await fs.obs.switch("backup", "while a replica is cut from etcd", via=leader)
    await _all_apply(fs, "backup", (d.epoch.era, d.epoch.revision), 10, "every host on the new decision")
    applied = time.monotonic() - t0
    counts = fs.strategies[host].counts(t0)
    fs.cluster.cut_replica_from_etcd(follower, Mode.PASS)
    ttl = fs.cluster.topo.lease_ttl_s
    fs.bound(f"replica {mode.value} from etcd: its sidecar on a replica that sees etcd", moved, 5 * (ttl + 1))
    fs.bound(f"replica {mode.value} from etcd: a decision on every host", applied, 5 * (ttl + 2))
    assert counts.get("NO_PATH", 0) == 0, counts
    await fs.finish_clean()


async def test_path_reset_during_leader_change(fs: FaultSystem) -> None:
    """Two faults at once: the leader dies and the primary resets in the same instant. Hosts flip
    to the backup on their own (no coordinator needed); a new leader commits; nothing is lost."""
    old = await _leader(fs)
    t0 = time.monotonic()
    fs.cluster.kill(old)
    fs.checker.data_plane_fault(time.monotonic(), active=True)
    await fs.obs.venue_fault("primary", venue_pb2.FAULT_KIND_RESET)
    flipped = await fs.obs.until(
        lambda: fs.obs.all_hosts(lambda _h, _s, r: r.effective_path == "backup"), 10, "every host on backup"
    )
    await _leader(fs, {old})
    elected = time.monotonic() - t0
    # The new leader commits onto the path every host reports up (a switch to the primary
    # right after its recovery is refused until a host reports it up: that is the guard).
    d = await fs.obs.switch("backup", "after the double fault")
    await _all_apply(fs, "backup", (d.epoch.era, d.epoch.revision), 20, "every host on the new decision")
    fs.checker.data_plane_fault(time.monotonic(), active=False)
    await fs.obs.venue_fault("primary", venue_pb2.FAULT_KIND_RECOVER)
    applied = time.monotonic() - t0
    ttl = fs.cluster.topo.lease_ttl_s
    fs.bound("path reset during leader change: every host on backup", flipped, 5 * 0.3)
    fs.bound("path reset during leader change: new leader", elected, 5 * (ttl + 1))
    fs.bound("path reset during leader change: a decision on every host", applied, 5 * (ttl + 2))
    await fs.finish_clean()


async def test_sidecar_restart_during_failover(fs: FaultSystem) -> None:
    """Two faults at once: the leader dies and a sidecar is SIGKILLed and restarted meanwhile.
    The restarted sidecar routes on its state file, reconnects, and applies the new leader's decision."""
    old = await _leader(fs)
    host = fs.cluster.topo.hosts[0]
    t0 = time.monotonic()
    fs.cluster.kill(old)
    fs.cluster.restart(host)
    await _leader(fs, {old})
    d = await fs.obs.switch("backup", "after the double fault")
    await _all_apply(fs, "backup", (d.epoch.era, d.epoch.revision), 20, "every host on the new decision")
    applied = time.monotonic() - t0
    await fs.obs.until(
        lambda: fs.strategies[host].first_ack_after(t0, "backup") is not None, 15, f"an ack via {host}"
    )
    first_ack = (fs.strategies[host].first_ack_after(t0, "backup") or 0.0) - t0
    ttl = fs.cluster.topo.lease_ttl_s
    fs.bound("sidecar restart during failover: the new decision on every host", applied, 5 * (ttl + 3))
    fs.bound(
        "sidecar restart during failover: first ack on the new path via the restarted host",
        first_ack,
        5 * (ttl + 3),
    )
    await fs.finish_clean()


async def test_switch_through_a_follower_while_the_leader_is_paused(fs: FaultSystem) -> None:
    """A switch sent to a follower the moment the leader is paused is committed by the next
    leader once the paused one's lease runs out: the follower does not wait on the paused one.
    The CLI, given the paused leader first, moves on to the next address."""
    old = await _leader(fs)
    follower = next(r for r in fs.cluster.topo.replicas if r != old)
    ttl = fs.cluster.topo.lease_ttl_s
    channel = grpc.aio.insecure_channel(fs.cluster.coordinator_addrs[follower])
    stub = admin_pb2_grpc.AdminStub(channel)
    req = apb.SwitchRequest(group="cme-orders", path="backup", reason="leader paused", operator="fault")
    t0 = time.monotonic()
    fs.cluster.pause(old)
    try:
        try:
            resp = await stub.Switch(req, timeout=20)
            outcome = f"committed by {resp.decision.leader_id}"
        except grpc.aio.AioRpcError as exc:
            outcome = f"{exc.code().name} {exc.details()}"
        took = time.monotonic() - t0
        print(f"switch via {follower} with {old} paused: {outcome} after {took:.2f}s")
        assert outcome.startswith("committed"), f"after {took:.2f}s: {outcome}"
        fs.bound("leader SIGSTOP: a switch through a follower committed", took, 5 * (ttl + 1))

        addrs = ",".join(fs.cluster.coordinator_addrs[r] for r in (old, follower))
        t1 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "failover.cli", "switch", "cme-orders", "primary", "--reason", "r",
            "--operator", "fault", "-c", addrs, "--timeout", "5",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        took_cli = time.monotonic() - t1
        text = out.decode(errors="replace").strip()
        print(f"CLI switch, {old} (paused) listed first: exit {proc.returncode}, {took_cli:.2f}s: {text}")
        assert proc.returncode == 0, text
        fs.bound("leader SIGSTOP: the CLI moved past the paused leader", took_cli, 5 * (ttl + 1))
    finally:
        fs.cluster.resume(old)
        await channel.close(None)
    await fs.finish_clean()
