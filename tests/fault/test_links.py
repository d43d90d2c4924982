"""Network faults on the coordinators' own links: replica to etcd, and replica to replica.

Every link goes through the tier's userspace proxy (loopback). This module's cluster
also routes the replicas' traffic to each other through ``peer_link(rid)`` (the
replica advertises the proxy's address), so a test can cut the way to the leader
while the leader still sees etcd and its own sidecars.

- A slow link (+30 ms each way) between the leader and every etcd member: slow is not
  dead, so no leader change, no staleness, and switches commit at a measured latency.
- One direction of the leader's etcd links dropped (replies, or requests): it must
  call itself stale and stop leading, its sidecars move to a replica that sees etcd,
  a new leader commits, and no decision is written under its term after the new one
  began (fencing, checked on the committed history).
- The leader unreachable from the other replicas (peer links cut or stalled): an
  operator switch sent to a follower gets a definite answer within the caller's
  deadline, the CLI commits it through the next replica it is given, and leadership
  stays where it is (replicas that cannot reach each other revoke nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from failover.faults.harness import GROUP, Topology
from failover.faults.proxy import Mode
from failover.procs import cli_argv
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from failover.v1 import types_pb2 as pb
from tests.fault.conftest import FaultSystem
from tests.fault.helpers import all_apply, leader, pin_host_to

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]

# The coordinator's etcd timing (defaults, which the tier keeps): each etcd call gets
# 2 attempts of 500 ms, the lease (2 s TTL) is renewed every 666 ms and given up 200 ms
# before it ends, and a replica is stale when its last linearizable read is 1.5 s old.
# +30 ms each way (60 ms a round trip, 120 ms for a call retried once) fits that budget.
ETCD_DELAY_MS = 30.0
SLOW_HOLD_S = 6.0
SWITCH_EVERY_S = 1.0
LEASE_TTL_S = 2.0
STALE_AFTER_S = 1.5
PEER_CUT_SWITCHES = 3
SWITCH_DEADLINE_S = 5.0  # the observer's deadline on an admin call


@pytest.fixture(scope="module")
def topology() -> Topology:
    return Topology(proxy_peers=True)


class ReplicaWatch:
    """Polls every live replica's own status (no etcd read) every 0.2 s: who claims to lead
    and who calls itself stale, with the time of each poll."""

    def __init__(self, fs: FaultSystem) -> None:
        self.fs = fs
        self.polls: list[tuple[float, dict[str, apb.ReplicaStatus]]] = []
        self._task: asyncio.Task[None] | None = None

    async def _one(self, rid: str, addr: str) -> tuple[str, apb.ReplicaStatus | None]:
        stub = admin_pb2_grpc.PeerStub(self.fs.obs._channel(addr))
        try:
            st: apb.ReplicaStatus = await stub.LocalStatus(apb.LocalStatusRequest(host_limit=1), timeout=1.0)
            return rid, st
        except grpc.aio.AioRpcError:
            return rid, None

    async def _run(self) -> None:
        while True:
            got = await asyncio.gather(
                *(self._one(r, a) for r, a in self.fs.cluster.coordinator_addrs.items())
            )
            self.polls.append((time.monotonic(), {r: st for r, st in got if st is not None}))
            await asyncio.sleep(0.2)

    def claims(self, since: float = 0.0) -> list[set[str]]:
        return [{r for r, st in p.items() if st.is_leader} for t, p in self.polls if t >= since]

    def stale(self, since: float = 0.0) -> list[tuple[float, str, str]]:
        return [
            (t, r, st.stale_reason) for t, p in self.polls if t >= since for r, st in p.items() if st.stale
        ]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReplicaWatch]:
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _steady_leader(fs: FaultSystem, watch: ReplicaWatch, timeout: float = 30) -> str:
    """The replica that alone claimed to lead at the watch's last 3 polls (0.4 s or more) and that
    status names: a row breaks the leader's links, so it must not have moved a moment before."""
    found: list[str] = []

    async def steady() -> bool:
        last = watch.claims()[-3:]
        if len(last) < 3 or any(len(c) != 1 or c != last[0] for c in last):
            return False
        (rid,) = last[0]
        found[:] = [rid]
        return rid == await leader(fs, timeout=5)

    await fs.obs.until(steady, timeout, "one replica steadily claiming to lead")
    return found[0]


def _fencing_problems(history: list[pb.Decision]) -> list[str]:
    """Decisions written out of term: in revision order, the fencing token (the writer's
    election key revision) never goes back, and each decision comes after its token."""
    problems = []
    ordered = sorted(history, key=lambda d: (d.epoch.era, d.epoch.revision))
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.epoch.era == b.epoch.era and b.fencing_token < a.fencing_token:
            problems.append(
                f"{b.leader_id} wrote revision {b.epoch.revision} under token {b.fencing_token} after "
                f"{a.leader_id}'s revision {a.epoch.revision} under token {a.fencing_token}"
            )
    problems += [
        f"revision {d.epoch.revision} precedes its token {d.fencing_token}"
        for d in ordered
        if d.fencing_token and d.epoch.revision <= d.fencing_token
    ]
    return problems


def _heal_reset(fs: FaultSystem, links: list[str]) -> None:
    """Heal a link that swallowed bytes: reset its connections, then pass.

    The proxy drops bytes out of a live TCP stream, which no network does (TCP
    retransmits, or the connection dies): a connection that carried on after the
    heal would have lost whole HTTP/2 frames, e.g. a watch's events (seen: a replica
    whose view kept its own ended term for 30 s after the heal). Reset, the clients
    reconnect and resume, as after a real partition that outlived the connection."""
    fs.cluster.proxy.set_many(links, Mode.CUT)
    fs.cluster.proxy.set_many(links, Mode.PASS)


async def _switch_via(fs: FaultSystem, rid: str, path: str) -> tuple[pb.Decision, float]:
    t0 = time.monotonic()
    d = await fs.obs.switch(path, "link fault row", via=rid)
    return d, time.monotonic() - t0


@pytest.mark.parametrize("who", ["leader", "follower"])
async def test_slow_link_leader_to_etcd(fs: FaultSystem, who: str) -> None:
    """+30 ms each way on every link between one replica (the leader, or a follower) and
    etcd for 6 s: the leader stays (one replica claims to lead at every poll, the same
    one), no replica calls itself stale, the slowed replica's sidecar stays on it, and a
    switch sent to it every second commits and reaches every host (a follower forwards it
    to the leader, and its own view of the decision comes 30 ms later)."""
    host = fs.cluster.topo.hosts[0]
    commits: list[float] = []
    applied: list[float] = []
    seen: set[str] = set()
    async with ReplicaWatch(fs).running() as watch:
        lead = await _steady_leader(fs, watch)
        slowed = lead if who == "leader" else next(r for r in fs.cluster.topo.replicas if r != lead)
        await pin_host_to(fs, host, slowed)
        links = [fs.cluster.etcd_link(slowed, i) for i in range(fs.cluster.topo.etcd_members)]
        # the same switch without the delay, for comparison (printed, not bounded)
        baseline = [(await _switch_via(fs, slowed, p))[1] for p in ("backup", "primary")]
        t0 = time.monotonic()
        fs.cluster.proxy.set_many(links, Mode.PASS, delay_ms=ETCD_DELAY_MS)
        try:
            n = 0
            while time.monotonic() - t0 < SLOW_HOLD_S:
                path = "backup" if n % 2 == 0 else "primary"
                d, took = await _switch_via(fs, slowed, path)
                commits.append(took)
                t_sent = time.monotonic() - took
                await all_apply(fs, path, (d.epoch.era, d.epoch.revision), 10, f"every host on {path}")
                applied.append(time.monotonic() - t_sent)
                n += 1
                t_next = time.monotonic() + SWITCH_EVERY_S
                while time.monotonic() < t_next:  # noqa: ASYNC110 - switches are spaced out
                    await fs.obs.poll_once()
                    seen.add(fs.obs.replica_of(host))
        finally:
            fs.cluster.proxy.set_many(links, Mode.PASS, delay_ms=0)
        claims = watch.claims(t0)
        stale = watch.stale(t0)
    counts = fs.strategies[host].counts(t0)
    print(
        f"[fault] slow link {slowed} ({who})>etcd (+{ETCD_DELAY_MS:.0f} ms each way): commits "
        + ", ".join(f"{t * 1000:.0f}ms" for t in commits)
        + f" (without the delay: {', '.join(f'{t * 1000:.0f}ms' for t in baseline)})"
        + f"; {len(claims)} polls of the replicas; {host} on {sorted(seen)}"
    )
    assert claims and all(c == {lead} for c in claims), f"leadership moved over a slow link: {claims}"
    assert not stale, f"a replica called itself stale over a slow link: {stale[:5]}"
    assert seen == {slowed}, f"{host} left {slowed} over a slow etcd link: {sorted(seen)}"
    assert counts.get("NO_PATH", 0) == 0, counts
    name = f"slow link {who}-etcd (+{ETCD_DELAY_MS:.0f} ms each way)"
    for t in commits:
        fs.bound(f"{name}: a switch committed (the leader's answer)", t, 5 * 0.4)
    for t in applied:
        fs.bound(f"{name}: a decision on every host", t, 5 * 1.0)
    await fs.finish_clean()


@pytest.mark.parametrize("mode", [Mode.DROP_DOWN, Mode.DROP_UP], ids=["replies-dropped", "requests-dropped"])
async def test_leader_etcd_one_way(fs: FaultSystem, mode: Mode) -> None:
    """One direction of every link between the leader and etcd dropped (sockets open). With
    replies dropped its requests still reach etcd (its lease renewals too); with requests
    dropped etcd hears nothing. Either way it gets no answer: it must call itself stale and
    stop claiming to lead, its sidecar moves to a replica that sees etcd, another replica
    leads and commits a decision that reaches every host; no two replicas claim to lead at
    once, and no decision is written under the old term after the new one began."""
    host = fs.cluster.topo.hosts[0]
    deciders: list[str] = []
    async with ReplicaWatch(fs).running() as watch:
        old = await _steady_leader(fs, watch)
        await pin_host_to(fs, host, old)
        links = [fs.cluster.etcd_link(old, i) for i in range(fs.cluster.topo.etcd_members)]
        t0 = time.monotonic()
        fs.cluster.proxy.set_many(links, mode)
        try:

            def called_stale() -> bool:
                return any(r == old for _, r, _ in watch.stale(t0))

            await fs.obs.until(called_stale, 30, f"{old} to call itself stale")
            stale_at = time.monotonic() - t0

            def stepped_down() -> bool:
                t, last = watch.polls[-1] if watch.polls else (0.0, {})
                return t > t0 and old in last and not last[old].is_leader

            await fs.obs.until(stepped_down, 30, f"{old} to stop claiming to lead")
            stepped = time.monotonic() - t0
            await fs.obs.until(lambda: fs.obs.replica_of(host) not in ("", old), 30, f"{host} to leave {old}")
            moved = time.monotonic() - t0

            async def committed() -> bool:
                others = [r for r in fs.cluster.topo.replicas if r != old]
                for rid in others:
                    try:
                        d = await fs.obs.switch("backup", "leader cut one way from etcd", via=rid)
                        deciders.append(d.leader_id)
                        await all_apply(
                            fs, "backup", (d.epoch.era, d.epoch.revision), 10, "every host on backup"
                        )
                        return True
                    except AssertionError:
                        continue
                return False

            await fs.obs.until(committed, 40, "a decision by another replica on every host")
            applied = time.monotonic() - t0
            counts = fs.strategies[host].counts(t0)
        finally:
            _heal_reset(fs, links)
        t1 = time.monotonic()
        await leader(fs)
        healed = time.monotonic() - t1

        def fresh_again() -> bool:
            t, last = watch.polls[-1] if watch.polls else (0.0, {})
            return t > t1 and old in last and not last[old].stale

        # A connect attempt made while the replies were dropped waits out its connect
        # timeout (2 s) before the next one: the replica is fresh again after that.
        await fs.obs.until(fresh_again, 30, f"{old} fresh again")
        fresh = time.monotonic() - t1
        claims = watch.claims(t0)
        stale = [(round(t - t0, 2), r, why) for t, r, why in watch.stale(t0)]
    new = await leader(fs)
    history = await fs.obs.history(50)
    problems = _fencing_problems(history)
    print(
        f"[fault] leader {old} {mode.value} from etcd: stale {stale_at:.2f}s, stepped down {stepped:.2f}s, "
        f"{host} moved {moved:.2f}s, decision everywhere {applied:.2f}s, fresh after the heal {fresh:.2f}s; "
        f"leader now {new}; "
        f"first stale reports {stale[:3]}"
    )
    assert all(len(c) <= 1 for c in claims), f"two replicas claimed to lead at once: {claims}"
    assert deciders and deciders[-1] != old, f"the decision was committed by {deciders}, cut off {old}"
    assert not problems, f"a decision written out of term: {problems}"
    assert counts.get("NO_PATH", 0) == 0, counts
    name = f"leader-etcd one-way ({'replies' if mode is Mode.DROP_DOWN else 'requests'} dropped)"
    fs.bound(f"{name}: the leader calls itself stale", stale_at, 5 * (STALE_AFTER_S + 0.5))
    fs.bound(f"{name}: the leader stops claiming to lead", stepped, 5 * LEASE_TTL_S)
    fs.bound(f"{name}: its sidecar on a replica that sees etcd", moved, 5 * (STALE_AFTER_S + 1.0))
    fs.bound(f"{name}: a decision by another leader on every host", applied, 5 * (LEASE_TTL_S + 2.0))
    fs.bound(f"{name}: healed to a leader", healed, 5 * LEASE_TTL_S)
    fs.bound(f"{name}: healed to the old leader fresh again", fresh, 5 * 3.0)
    await fs.finish_clean()


CLI_TIMEOUT_S = 3.0


def _revocations(fs: FaultSystem, rid: str) -> int:
    """How often ``rid`` revoked a leader's lease because its port refused (its log)."""
    log = fs.cluster.workdir / f"{rid}.log"
    return log.read_text(errors="replace").count("refuses connections: revoking") if log.exists() else 0


@pytest.mark.parametrize("mode", [Mode.CUT, Mode.STALL], ids=["cut", "stall"])
async def test_leader_unreachable_from_peers(fs: FaultSystem, mode: Mode) -> None:
    """The way from the other replicas to the leader cut (reset) or stalled (silent), the
    leader still seeing etcd and its sidecars. A switch sent to a follower, which forwards
    to the leader, gets a definite answer within the caller's deadline (an error naming the
    leader, never a hang, never a false success); ``failover switch`` given the follower
    first commits it through the next replica; leadership does not move (the leader's
    lease is not revoked: its port accepts, it is only unreachable), and decisions still
    reach every host (they travel through etcd, not between replicas)."""
    revoked_before = {r: _revocations(fs, r) for r in fs.cluster.topo.replicas}
    answers: list[tuple[float, str]] = []
    cli_took: list[float] = []
    async with ReplicaWatch(fs).running() as watch:
        lead = await _steady_leader(fs, watch)
        follower = next(r for r in fs.cluster.topo.replicas if r != lead)
        link = fs.cluster.peer_link(lead)
        t0 = time.monotonic()
        fs.cluster.proxy.set(link, mode)
        try:
            for n in range(PEER_CUT_SWITCHES):
                path = "backup" if n % 2 == 0 else "primary"
                t_call = time.monotonic()
                stub = admin_pb2_grpc.AdminStub(fs.obs._channel(fs.cluster.coordinator_addrs[follower]))
                req = apb.SwitchRequest(group=GROUP, path=path, reason="peer link row", operator="fault")
                try:
                    resp = await asyncio.wait_for(
                        stub.Switch(req, timeout=SWITCH_DEADLINE_S), 3 * SWITCH_DEADLINE_S
                    )
                    answers.append((time.monotonic() - t_call, f"OK {resp.decision.epoch.revision}"))
                except grpc.aio.AioRpcError as exc:
                    answers.append((time.monotonic() - t_call, f"{exc.code().name} {exc.details()}"))
                # The operator's command: the follower first, then the leader.
                t_cli = time.monotonic()
                out = await asyncio.to_thread(
                    subprocess.run,
                    cli_argv(
                        "switch",
                        GROUP,
                        path,
                        "--reason",
                        "peer link row (CLI)",
                        "--timeout",
                        str(CLI_TIMEOUT_S),
                        "--coordinators",
                        f"{fs.cluster.coordinator_addrs[follower]},{fs.cluster.coordinator_addrs[lead]}",
                    ),
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert out.returncode == 0, (out.stdout, out.stderr)
                rev = int(out.stdout.split(" at epoch ", 1)[1].split()[0].split(":")[1])
                era = int(out.stdout.split(" at epoch ", 1)[1].split(":")[0])
                await all_apply(fs, path, (era, rev), 10, f"every host on {path}")
                cli_took.append(time.monotonic() - t_cli)
            counts = {h: s.counts(t0) for h, s in fs.strategies.items()}
        finally:
            _heal_reset(fs, [link])
        claims = watch.claims(t0)
    revoked = {r: _revocations(fs, r) - revoked_before[r] for r in fs.cluster.topo.replicas}
    print(
        f"[fault] peers cut from leader {lead} ({mode.value}): answers via {follower}: "
        + "; ".join(f"{t:.2f}s {a[:160]}" for t, a in answers)
        + "; CLI switch to every host "
        + ", ".join(f"{t:.2f}s" for t in cli_took)
    )
    assert claims and all(c == {lead} for c in claims), f"leadership moved: {claims}"
    assert not any(revoked.values()), f"a replica revoked the leader's lease: {revoked}"
    for t, a in answers:
        # An answer, within the caller's deadline: an error naming the leader it could not
        # reach, or the caller's own deadline. Never a success that did not happen.
        assert t <= SWITCH_DEADLINE_S + 1.0, f"the follower's answer took {t:.2f}s: {a}"
        assert not a.startswith("OK"), f"the follower reported a commit over a cut link: {a}"
        assert a.startswith(("UNAVAILABLE", "DEADLINE_EXCEEDED")), a
    for h, c in counts.items():
        assert c.get("ACKED", 0) > 0 and set(c) <= {"ACKED", "pending"}, f"{h}: {c}"
    name = f"leader unreachable from its peers ({mode.value})"
    for t, _ in answers:
        fs.bound(f"{name}: a switch sent to a follower answered", t, SWITCH_DEADLINE_S + 1.0)
    for t in cli_took:
        fs.bound(
            f"{name}: `failover switch` (follower first) to a decision on every host",
            t,
            5 * (CLI_TIMEOUT_S + 1.5),
        )
    await fs.finish_clean()


REFUSE_HOLD_S = 8.0


async def test_leader_port_refused_to_peers(fs: FaultSystem) -> None:
    """The leader's port refuses the other replicas' connects for 8 s (a firewall's REJECT),
    while the leader still sees etcd and serves its sidecars. To a follower that looks like
    a dead process on a live host (coordinator/core/takeover.py), so a follower revokes the
    live leader's lease: one leader change, which costs a term, not safety (fencing). What
    the row asserts: no ping-pong (at most one leader change, never two claims at once),
    every switch sent to a follower answered at once and committed, decisions on every host,
    every order acked. The revocations and the change are printed and recorded."""
    revoked_before = {r: _revocations(fs, r) for r in fs.cluster.topo.replicas}
    answers: list[tuple[float, str]] = []
    async with ReplicaWatch(fs).running() as watch:
        lead = await _steady_leader(fs, watch)
        link = fs.cluster.peer_link(lead)
        t0 = time.monotonic()
        fs.cluster.proxy.set(link, Mode.REFUSE)
        try:
            n = 0
            while time.monotonic() - t0 < REFUSE_HOLD_S:
                path = "backup" if n % 2 == 0 else "primary"
                n += 1
                via = next(r for r in fs.cluster.topo.replicas if r != lead)
                stub = admin_pb2_grpc.AdminStub(fs.obs._channel(fs.cluster.coordinator_addrs[via]))
                req = apb.SwitchRequest(group=GROUP, path=path, reason="port refused row", operator="fault")
                t_call = time.monotonic()
                # One call, its own answer: a new leader that does not know the hosts' health
                # yet refuses with FAILED_PRECONDITION "no host reports ... up" (definite too).
                try:
                    resp = await asyncio.wait_for(
                        stub.Switch(req, timeout=SWITCH_DEADLINE_S), 3 * SWITCH_DEADLINE_S
                    )
                    d = resp.decision
                    answers.append((time.monotonic() - t_call, f"OK {d.leader_id}"))
                    await all_apply(fs, path, (d.epoch.era, d.epoch.revision), 10, f"every host on {path}")
                except grpc.aio.AioRpcError as exc:
                    answers.append((time.monotonic() - t_call, f"{exc.code().name} {exc.details()}"))
                await asyncio.sleep(0.5)
            counts = {h: s.counts(t0) for h, s in fs.strategies.items()}
        finally:
            fs.cluster.proxy.set(link, Mode.PASS)
        claims = watch.claims(t0)
        moved_at = next(
            (
                t - t0
                for t, p in watch.polls
                if t >= t0 and any(st.is_leader and r != lead for r, st in p.items())
            ),
            None,
        )
    revoked = {r: _revocations(fs, r) - revoked_before[r] for r in fs.cluster.topo.replicas}
    sequence = [lead] + [next(iter(c)) for c in claims if len(c) == 1]
    changes = [(a, b) for a, b in zip(sequence, sequence[1:], strict=False) if a != b]
    print(
        f"[fault] leader {lead}'s port refused to its peers: leader changes {changes}, "
        f"revocations {revoked}, another leader at {moved_at}, "
        "answers via a follower: " + "; ".join(f"{t:.2f}s {a[:120]}" for t, a in answers)
    )
    assert all(len(c) <= 1 for c in claims), f"two replicas claimed to lead at once: {claims}"
    assert len(changes) <= 1, f"leadership ping-ponged while {lead}'s port refused its peers: {changes}"
    for t, a in answers:
        assert t <= SWITCH_DEADLINE_S + 1.0, f"the follower's answer took {t:.2f}s: {a}"
    # The new leader cannot ask the refused replica for its hosts' health (CollectHealth);
    # that replica pushes it (before the fix every switch was refused: "no host reports
    # 'backup' up", whenever the hosts streamed from the refused replica).
    assert any(a.startswith("OK") for _, a in answers), f"nothing committed meanwhile: {answers}"
    for h, c in counts.items():
        assert c.get("ACKED", 0) > 0 and set(c) <= {"ACKED", "pending"}, f"{h}: {c}"
    if moved_at is not None:
        fs.bound(
            "leader's port refused to its peers: a follower revoked it, another leads", moved_at, 5 * 1.0
        )
    for t, _ in answers:
        fs.bound(
            "leader's port refused to its peers: a switch sent to a follower answered",
            t,
            SWITCH_DEADLINE_S + 1.0,
        )
    await fs.finish_clean()
