"""``failover bench control-plane``: commit latency, leader crash and graceful hand-off.

Each of ``runs`` repetitions, on one etcd cluster and N coordinator processes:

1. commit latency: ``commits`` Admin/Switch calls to the leader and as many to
   followers (forwarded), paths alternating so every call commits a change;
2. SIGKILL the leader, then send Switch to a survivor (short timeout, retried
   at once on UNAVAILABLE / DEADLINE_EXCEEDED / CANCELLED) until one commits;
   restart the killed replica with its config and wait until it answers;
3. SIGTERM the leader, then concurrently watch the election key (the bench's
   own etcd watch, opened before the signal) until another replica's key is
   put, and send Switch to a survivor until one commits; restart it and wait
   until it answers.

The new leader is observed by a watch, not by polling a survivor's GetStatus:
that call asks every replica for its status and etcd for its alarms, so a poll
every 5 ms loaded the very replicas and etcd members the hand-over runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from typing import Any

import grpc

from coordinator.keys import Keys
from coordinator.store.etcd_store import EtcdStore
from coordinator.store.types import EventKind
from failover.aio import wait_any
from failover.bench.common import (
    GROUP,
    PATHS,
    BenchFailure,
    Cluster,
    CoordinatorProc,
    progress,
    retry_until,
)
from failover.bench.floor_txn import FloorTxn
from failover.stats import Latency

POLL_INTERVAL_S = 0.005


class ControlPlaneBench:
    def __init__(
        self,
        cluster: Cluster,
        *,
        runs: int,
        commits: int,
        rpc_timeout_s: float,
        run_timeout_s: float,
        deadline: float,
    ) -> None:
        self.c = cluster
        self.runs = runs
        self.commits = commits
        self.rpc_timeout_s = rpc_timeout_s
        self.run_timeout_s = run_timeout_s
        self.deadline = deadline
        self.active = ""
        self.details: list[dict[str, Any]] = []
        self._etcd: EtcdStore | None = None  # the bench's own client: watches the election key
        self.elections: list[tuple[int, str, int]] = []  # (revision, replica id, delivered ns)
        self.election_seen = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self.incidents: list[dict[str, Any]] = []
        self._floor: FloorTxn | None = None
        # Per graceful hand-over: how many times its one Switch was committed (1 expected).
        self.handover_commits: list[int] = []
        self.stats = {
            "commit_via_leader": Latency(
                "commit, sent to leader",
                "Admin/Switch sent to the leader: request sent -> committed reply received",
            ),
            "etcd_txn": Latency(
                "etcd transaction (the floor)",
                "the bench's own transaction of a commit's shape (5 compares, 2 puts of 400 bytes, "
                "2 reads on failure) straight to the member that leads etcd, one after each Switch: "
                "what every commit, revoke and campaign of a hand-over pays at least",
            ),
            "etcd_txn_follower": Latency(
                "etcd transaction via a follower member",
                "the same transaction sent to a member that does not lead etcd (it passes it on to "
                "the leader), next to each floor transaction, in alternating order",
            ),
            "commit_via_follower": Latency(
                "commit, sent to follower",
                "Admin/Switch sent to a follower, which forwards it to the leader: sent -> committed reply",
            ),
            "sigkill_to_commit": Latency(
                "leader SIGKILL -> commit",
                "SIGKILL of the leader -> reply of the first Switch (sent to a survivor, retried at once "
                "on UNAVAILABLE/DEADLINE_EXCEEDED) that committed under a new leader",
            ),
            "sigterm_to_new_leader": Latency(
                "leader SIGTERM -> new leader elected",
                "SIGTERM of the leader -> the bench's own etcd watch delivers another replica's election key",
            ),
            "sigterm_to_commit": Latency(
                "leader SIGTERM -> commit",
                "SIGTERM of the leader -> reply of the first Switch to a survivor that committed",
            ),
            "sigterm_to_exit": Latency(
                "leader SIGTERM -> process exit",
                "SIGTERM of the leader -> its process has exited (polled every 5 ms)",
            ),
            "restart_to_ready": Latency(
                "restart -> replica ready",
                "restarted replica's process spawned -> its GetStatus answers with a leader and a decision",
            ),
        }

    # --- helpers -------------------------------------------------------------

    def _store(self) -> EtcdStore:
        if self._etcd is None:
            self._etcd = EtcdStore(self.c.endpoints, rpc_timeout_s=2.0)
        return self._etcd

    async def _floor_txns(self, k: int) -> None:
        """The floor transaction to etcd's leader member and to a follower member (recorded)."""
        members = await self._store().connected_members()
        leader = await members.find_leader(0.5)
        if leader is None:  # an etcd election: the floor where the calls go now
            self.stats["etcd_txn"].record_ns(await self._floor_txn())
            return
        order = [leader, (leader + 1) % len(members.clients)]
        for member in order if k % 2 == 0 else order[::-1]:
            members.current = member
            dt = await self._floor_txn()
            self.stats["etcd_txn" if member == leader else "etcd_txn_follower"].record_ns(dt)
        members.current = leader

    async def _floor_txn(self) -> int:
        """One transaction shaped like a commit, timed (ns)."""
        if self._floor is None:
            self._floor = FloorTxn(self._store())
        return await self._floor.once()

    async def _bench_commits_since(self, revision: int) -> int:
        """Decisions the bench's Switches caused after ``revision`` (from the group's history)."""
        kvs, _ = await self._store().get_prefix(Keys(self.c.prefix).history_prefix(GROUP))
        return sum(
            1
            for kv in kvs
            if kv.mod_revision > revision and json.loads(kv.value).get("reason") == "operator switch: bench"
        )

    def _next_path(self) -> str:
        return PATHS[1] if self.active == PATHS[0] else PATHS[0]

    def _check_time(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise BenchFailure(f"--max-seconds reached before {what}")

    async def leader(self) -> tuple[str, str]:
        """(replica id, address) of the leader as a running replica's GetStatus reports it."""
        end = time.monotonic() + self.run_timeout_s
        last = ""
        while time.monotonic() < end:
            for p in self.c.procs:
                if not p.alive:
                    continue
                try:
                    st = await self.c.status(p.address, timeout=1.0)
                except grpc.aio.AioRpcError as exc:
                    last = f"{p.replica_id}: {exc.code().name}"
                    continue
                if st.leader.replica_id:
                    return str(st.leader.replica_id), str(st.leader.address)
                last = f"{p.replica_id}: no leader"
            await asyncio.sleep(0.02)
        raise BenchFailure(f"no leader known after {self.run_timeout_s:.0f}s ({last})")

    async def timed_switch(self, address: str) -> tuple[int, Any]:
        path = self._next_path()
        t0 = time.monotonic_ns()
        try:
            resp = await self.c.switch(address, path, timeout=5.0)
        except grpc.aio.AioRpcError as exc:
            raise BenchFailure(f"Switch to {path} via {address}: {exc.code().name}: {exc.details()}") from exc
        dt = time.monotonic_ns() - t0
        self._committed(resp, path)
        return dt, resp

    def _committed(self, resp: Any, path: str) -> None:
        got = list(resp.decision.paths)
        if not got or got[0] != path:
            raise BenchFailure(f"Switch to {path} answered with paths {got} ({resp.message})")
        self.active = path

    async def restart(self, victim: CoordinatorProc, *, record: bool = True, run: int = 0) -> int:
        """Reap, start again with the same config, wait until it answers; returns ns to ready.

        Then check it did not come up believing etcd was restored (see ``check_restore_flags``).
        """
        for _ in range(1500):  # up to 15 s
            if not victim.alive:
                break
            await asyncio.sleep(0.01)
        if victim.alive:
            raise BenchFailure(f"{victim.replica_id} still running 15 s after it was signalled")
        victim.reap()
        t0 = time.monotonic_ns()
        victim.start()
        await self.c.wait_ready([victim], timeout=self.run_timeout_s, fresh=True)
        dt = time.monotonic_ns() - t0
        if record:
            self.stats["restart_to_ready"].record_ns(dt)
            await self.check_restore_flags(run, f"after restarting {victim.replica_id}", [victim])
        return dt

    async def check_restore_flags(
        self, run: int, when: str, procs: list[CoordinatorProc] | None = None
    ) -> None:
        """A replica whose view says "etcd restore detected" commits nothing until an era bump.

        No restore ever happens here, so the flag is a false positive of the system under
        test: record it (with the replica's own log lines), restart that replica so the
        benchmark can go on, and report it in the results. Bounded: 3 restarts per replica.
        """
        for p in procs or self.c.procs:
            for _ in range(3):
                if not p.alive:
                    break
                try:
                    st = await self.c.status(p.address, timeout=2.0)
                except grpc.aio.AioRpcError:
                    break
                if not st.restore_detected:
                    break
                evidence = [
                    line.strip()
                    for line in p.tail(50_000).splitlines()
                    if "went backwards" in line or "restore detected" in line
                ][-2:]
                self.incidents.append(
                    {"run": run + 1, "when": when, "replica": p.replica_id, "log": evidence}
                )
                progress(
                    f"WARNING run {run + 1} ({when}): {p.replica_id} reports an etcd restore that did not "
                    f"happen and would refuse every commit as leader; restarting it. Its log: {evidence}"
                )
                p.signal(signal.SIGTERM)
                await self.restart(p, record=False)
            else:
                raise BenchFailure(f"{p.replica_id} still reports an etcd restore after 3 restarts")

    # --- the phases ----------------------------------------------------------

    async def commit_phase(self, run: int) -> dict[str, Any]:
        leader_id, leader_addr = await self.leader()
        followers = [p for p in self.c.procs if p.replica_id != leader_id]
        lead, fwd = [], []
        for k in range(self.commits):
            dt, _ = await self.timed_switch(leader_addr)
            self.stats["commit_via_leader"].record_ns(dt)
            lead.append(dt)
            await self._floor_txns(k)
            dt, resp = await self.timed_switch(followers[k % len(followers)].address)
            if resp.decision.leader_id != leader_id:
                raise BenchFailure(f"leader changed during the commit phase ({resp.decision.leader_id})")
            self.stats["commit_via_follower"].record_ns(dt)
            fwd.append(dt)
        progress(
            f"run {run + 1}/{self.runs} commits: leader {leader_id} "
            f"p50-of-run {sorted(lead)[len(lead) // 2] / 1e6:.2f} ms, "
            f"forwarded {sorted(fwd)[len(fwd) // 2] / 1e6:.2f} ms"
        )
        return {
            "leader": leader_id,
            "via_leader_us": [x // 1000 for x in lead],
            "via_follower_us": [x // 1000 for x in fwd],
        }

    async def kill_phase(self, run: int) -> dict[str, Any]:
        leader_id, _ = await self.leader()
        victim = self.c.by_id(leader_id)
        survivors = [p for p in self.c.procs if p is not victim]
        target = survivors[run % len(survivors)]
        path = self._next_path()
        codes: dict[str, int] = {}
        first_errors: list[str] = []

        request = uuid.uuid4().hex

        async def attempt() -> Any:
            return await self.c.switch(target.address, path, timeout=self.rpc_timeout_s, request_id=request)

        t0 = time.monotonic_ns()
        victim.signal(signal.SIGKILL)
        resp, attempts = await retry_until(
            f"Switch via {target.replica_id} after SIGKILL of {leader_id}",
            attempt,
            deadline_s=self.run_timeout_s,
            codes=codes,
            first_errors=first_errors,
        )
        dt = time.monotonic_ns() - t0
        self._committed(resp, path)
        new_leader = str(resp.decision.leader_id)
        if new_leader == leader_id:
            raise BenchFailure(f"the SIGKILLed leader {leader_id} is named as committing after its death")
        self.stats["sigkill_to_commit"].record_ns(dt)
        progress(
            f"run {run + 1}/{self.runs} SIGKILL {leader_id}: {new_leader} committed after {dt / 1e6:.2f} ms "
            f"({attempts} Switch attempts via {target.replica_id}: {codes or 'none failed'})"
        )
        restart_ns = await self.restart(victim, run=run)
        self.c.check_alive()
        return {
            "killed": leader_id,
            "sent_to": target.replica_id,
            "new_leader": new_leader,
            "ms": dt / 1e6,
            "attempts": attempts,
            "errors": codes,
            "first_errors": first_errors,
            "restart_to_ready_ms": restart_ns / 1e6,
        }

    async def _watch_elections(self, ready: asyncio.Event) -> None:
        """The bench's own etcd watch on the election key, for the whole run: every key put,
        with when its event was delivered here (``elections``)."""
        store = self._store()
        # From etcd's revision now, registered before ready: a watch from a revision etcd has
        # passed waits for etcd's 100 ms catch-up loop before it sends anything.
        async with store.watch(Keys(self.c.prefix).leader, 0) as w:
            await w.started()
            ready.set()
            async for batch in w:
                now = time.monotonic_ns()
                for ev in batch.events:
                    if ev.kind is EventKind.PUT:
                        rid = str(json.loads(ev.kv.value).get("id", ""))
                        self.elections.append((ev.kv.mod_revision, rid, now))
                self.election_seen.set()
                self.election_seen = asyncio.Event()
        raise BenchFailure("the bench's etcd watch on the election key ended")

    async def _new_leader(self, old: str, after_revision: int, end: float) -> tuple[int, str]:
        """(delivery ns, id) of the first election key put after ``after_revision`` by another
        replica than ``old``, as the bench's own watch saw it."""
        while True:
            for rev, rid, t in self.elections:
                if rev > after_revision and rid and rid != old:
                    return t, rid
            self._check_watch()
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise BenchFailure(f"no new leader's election key within {self.run_timeout_s}s")
            await wait_any(self.election_seen.wait(), timeout=min(remaining, 1.0))

    async def _wait_exit(self, p: CoordinatorProc, end: float) -> int:
        while p.alive:
            if time.monotonic() > end:
                raise BenchFailure(f"{p.replica_id} did not exit within {self.run_timeout_s}s of SIGTERM")
            await asyncio.sleep(POLL_INTERVAL_S)
        return time.monotonic_ns()

    async def term_phase(self, run: int) -> dict[str, Any]:
        leader_id, _ = await self.leader()
        victim = self.c.by_id(leader_id)
        survivors = [p for p in self.c.procs if p is not victim]
        target = survivors[run % len(survivors)]
        path = self._next_path()
        codes: dict[str, int] = {}
        first_errors: list[str] = []

        request = uuid.uuid4().hex

        async def attempt() -> Any:
            return await self.c.switch(target.address, path, timeout=self.rpc_timeout_s, request_id=request)

        async def commit() -> tuple[int, Any, int]:
            resp, n = await retry_until(
                f"Switch via {target.replica_id} after SIGTERM of {leader_id}",
                attempt,
                deadline_s=self.run_timeout_s,
                codes=codes,
                first_errors=first_errors,
            )
            return time.monotonic_ns(), resp, n

        before = await self._store().current_revision()
        t0 = time.monotonic_ns()
        end = time.monotonic() + self.run_timeout_s
        victim.signal(signal.SIGTERM)
        try:
            async with asyncio.TaskGroup() as tg:
                seen = tg.create_task(self._new_leader(leader_id, before, end))
                committed = tg.create_task(commit())
                exited = tg.create_task(self._wait_exit(victim, end))
        except* BenchFailure as eg:
            raise eg.exceptions[0] from None
        t_seen, seen_id = seen.result()
        t_commit, resp, attempts = committed.result()
        t_exit = exited.result()
        self._committed(resp, path)
        self.stats["sigterm_to_new_leader"].record_ns(t_seen - t0)
        self.stats["sigterm_to_commit"].record_ns(t_commit - t0)
        self.stats["sigterm_to_exit"].record_ns(t_exit - t0)
        code = victim.proc.returncode if victim.proc is not None else None
        progress(
            f"run {run + 1}/{self.runs} SIGTERM {leader_id}: {seen_id} elected after "
            f"{(t_seen - t0) / 1e6:.2f} ms, commit after {(t_commit - t0) / 1e6:.2f} ms, "
            f"exit (code {code}) after {(t_exit - t0) / 1e6:.2f} ms "
            f"({attempts} Switch attempts: {codes or 'none failed'})"
        )
        restart_ns = await self.restart(victim, run=run)
        self.c.check_alive()
        # Counted after the restart: a second commit of the same request (a copy forwarded
        # twice, see docs/api.md "Request ids") can land after the reply.
        commits = await self._bench_commits_since(before)
        self.handover_commits.append(commits)
        if commits != 1:
            progress(f"run {run + 1}/{self.runs} SIGTERM: the one Switch was committed {commits} times")
        return {
            "commits_of_the_switch": commits,
            "stopped": leader_id,
            "exit_code": code,
            "sent_to": target.replica_id,
            "new_leader_seen": seen_id,
            "new_leader_committed": str(resp.decision.leader_id),
            "new_leader_elected_ms": (t_seen - t0) / 1e6,
            "commit_ms": (t_commit - t0) / 1e6,
            "exit_ms": (t_exit - t0) / 1e6,
            "attempts": attempts,
            "errors": codes,
            "first_errors": first_errors,
            "restart_to_ready_ms": restart_ns / 1e6,
        }

    async def run(self) -> None:
        ready = asyncio.Event()
        self._watch = asyncio.create_task(self._watch_elections(ready), name="bench-election-watch")
        try:
            async with asyncio.timeout(self.run_timeout_s):
                await wait_any(ready.wait(), asyncio.shield(self._watch))
            self._check_watch()
            await self._run()
        finally:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch
            if self._etcd is not None:
                await self._etcd.close()

    def _check_watch(self) -> None:
        if self._watch is not None and self._watch.done():
            exc = None if self._watch.cancelled() else self._watch.exception()
            raise BenchFailure(f"the bench's etcd watch on the election key ended: {exc!r}")

    async def _run(self) -> None:
        progress(f"waiting for {self.c.n} coordinators to be ready")
        await self.c.wait_ready(timeout=self.run_timeout_s * 2)
        st = await self.c.status(self.c.procs[0].address)
        for g in st.groups:
            if g.HasField("decision") and g.decision.paths:
                self.active = str(g.decision.paths[0])
        # Warm-up (not recorded): open channels, first forwarded call.
        leader_id, leader_addr = await self.leader()
        await self.timed_switch(leader_addr)
        await self.timed_switch(next(p.address for p in self.c.procs if p.replica_id != leader_id))
        await self._floor_txn()
        for run in range(self.runs):
            self._check_time(f"run {run + 1}")
            self.c.check_alive()
            await self.check_restore_flags(run, "at the start of the run")
            detail: dict[str, Any] = {"run": run + 1}
            detail["commits"] = await self.commit_phase(run)
            detail["sigkill"] = await self.kill_phase(run)
            detail["sigterm"] = await self.term_phase(run)
            self.details.append(detail)
