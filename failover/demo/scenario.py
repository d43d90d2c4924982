"""The scripted failovers and what is measured for each.

Wall-clock figures ("end to end") use this process's monotonic clock, which
every process on this host shares; stage figures come from the process that
ran the stage (sidecar: detect, flip, first ack, apply; replica: forward,
push->ack; leader: decide, commit).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from failover.demo.cluster import ClusterError, LocalCluster, wait_until
from failover.demo.control import Control
from failover.demo.observe import RouteWatch, Sender
from failover.v1 import sidecar_pb2 as spb
from failover.v1 import venue_pb2

PRIMARY, BACKUP = "primary", "backup"


def ms(us: float) -> float:
    return round(us / 1000, 3)


@dataclass
class EventResult:
    name: str
    kind: str  # hard, failback, silent, leader_kill
    local: dict[str, dict[str, Any]] = field(default_factory=dict)
    coordinated: dict[str, Any] = field(default_factory=dict)
    wall_ms: dict[str, float] = field(default_factory=dict)
    orders: dict[str, int] = field(default_factory=dict)
    pause_ms: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "local": self.local,
            "coordinated": self.coordinated,
            "wall_ms": self.wall_ms,
            "orders": self.orders,
            "order_flow_pause_ms": self.pause_ms,
            "notes": self.notes,
        }


class Script:
    def __init__(
        self,
        cluster: LocalCluster,
        control: Control,
        watches: dict[str, RouteWatch],
        senders: dict[str, Sender],
        group: str,
        settle_s: float,
        orders_since: float = 0.0,
    ) -> None:
        self.cluster = cluster
        self.control = control
        self.watches = watches
        self.senders = senders
        self.group = group
        self.settle_s = settle_s
        # An event's orders are those sent after the previous event ended (the first
        # event's: after ``orders_since``, the end of the no-fault window).
        self._last_end = orders_since

    # --- helpers ---------------------------------------------------------

    def _epoch(self) -> tuple[int, int]:
        return max((w.last.epoch for w in self.watches.values() if w.last), default=(0, 0))

    async def _all(self, pred: Any, t0: float, what: str, timeout: float = 15.0) -> dict[str, float]:
        """Wait until every host has a route sample after t0 matching pred; returns host -> time."""
        found: dict[str, float] = {}

        def check() -> bool:
            for h, w in self.watches.items():
                if h not in found:
                    s = w.first_after(t0, pred)
                    if s is not None:
                        found[h] = s.t
            return len(found) == len(self.watches)

        await wait_until(check, timeout, what, self.cluster, interval=0.002)
        return found

    async def _first_acks(self, after: dict[str, float], path: str, timeout: float = 5.0) -> dict[str, float]:
        out: dict[str, float] = {}

        def check() -> bool:
            for h, s in self.senders.items():
                if h in out:
                    continue
                ts = [
                    r.t_outcome
                    for r in s.sent.values()
                    if r.outcome == spb.OUTCOME_KIND_ACKED and r.path == path and r.t_outcome >= after[h]
                ]
                if ts:
                    out[h] = min(ts)
            return len(out) == len(self.senders)

        await wait_until(
            check, timeout, f"a first ack on {path} from every host", self.cluster, interval=0.005
        )
        return out

    def _orders(self, res: EventResult, t0: float, t1: float) -> None:
        # Orders belong to the event that was running when they were sent.
        t0 = max(t0, self._last_end)
        self._last_end = t1
        counts = {"sent": 0, "acked": 0, "rejected": 0, "in_doubt": 0, "no_path": 0, "pending": 0}
        names = {
            spb.OUTCOME_KIND_ACKED: "acked",
            spb.OUTCOME_KIND_REJECTED: "rejected",
            spb.OUTCOME_KIND_IN_DOUBT: "in_doubt",
            spb.OUTCOME_KIND_NO_PATH: "no_path",
        }
        pause = 0.0
        for s in self.senders.values():
            for r in s.window(t0, t1):
                counts["sent"] += 1
                counts[names.get(r.outcome, "pending")] += 1  # type: ignore[call-overload]
            pause = max(pause, s.longest_ack_gap(t0, t1))
        res.orders = counts
        res.pause_ms = round(pause * 1000, 2)

    async def _stages(self, res: EventResult, epoch: tuple[int, int]) -> None:
        """Stage durations reported by the processes for the decision at ``epoch``."""
        st = await self.control.status()
        coord: dict[str, Any] = {}
        for g in st.groups:
            d = g.decision
            if g.definition.name == self.group and (d.epoch.era, d.epoch.revision) == epoch:
                for s in d.stages:
                    coord[s.stage] = {"ms": ms(s.duration_us), "where": s.where}
                coord["reason"] = d.reason
        push, apply_ = {}, {}
        for rep in st.replicas:
            for c in rep.recent_commits:
                if c.group == self.group and (c.epoch.era, c.epoch.revision) == epoch:
                    coord["commit"] = {"ms": ms(c.commit_us), "where": rep.replica_id}
            for sc in rep.sidecars:
                if self.group in sc.push_to_ack_us:
                    push[sc.host_id] = ms(sc.push_to_ack_us[self.group])
                if self.group in sc.apply_us:
                    apply_[sc.host_id] = ms(sc.apply_us[self.group])
        coord["push_to_ack_ms"] = push
        coord["apply_ms"] = apply_
        res.coordinated = coord

    async def _local(self, res: EventResult, to_path: str) -> None:
        for h in self.watches:
            st = await self.control.sidecar(h)
            flips = [f for f in st.flips if f.group == self.group and f.to_path == to_path]
            if flips:
                f = flips[-1]
                res.local[h] = {
                    "detect_ms": ms(f.detect_us),
                    "flip_ms": ms(f.flip_us),
                    "first_ack_ms": ms(f.first_ack_us) if f.first_ack_us >= 0 else -1.0,
                    "trigger": f.trigger,
                    "cause": f.cause,
                    "in_doubt": f.in_doubt,  # type: ignore[dict-item]
                }

    # --- events ----------------------------------------------------------

    async def path_failure(self, kind: str) -> EventResult:
        fault = venue_pb2.FAULT_KIND_RESET if kind == "hard" else venue_pb2.FAULT_KIND_STALL
        what = (
            "primary gateway reset (hard failure)"
            if kind == "hard"
            else "primary gateway stalled (silent failure)"
        )
        res = EventResult(what, kind)
        before = self._epoch()
        t0 = time.monotonic()
        await self.control.fault(PRIMARY, fault)
        flipped = await self._all(lambda s: s.effective == BACKUP, t0, "every host to flip to backup")
        applied = await self._all(
            lambda s: s.decided == BACKUP and s.epoch > before,
            t0,
            "every host to apply the leader's decision",
        )
        acks = await self._first_acks(flipped, BACKUP)
        res.wall_ms = {
            "fault_to_all_hosts_flipped": round((max(flipped.values()) - t0) * 1000, 2),
            "fault_to_all_hosts_applied_decision": round((max(applied.values()) - t0) * 1000, 2),
            "fault_to_first_ack_on_backup_all_hosts": round((max(acks.values()) - t0) * 1000, 2),
        }
        await asyncio.sleep(self.settle_s)
        await self._local(res, BACKUP)
        await self._stages(res, self._epoch())
        self._orders(res, t0 - 0.5, time.monotonic())
        return res

    async def recover_primary(self) -> None:
        await self.control.fault(PRIMARY, venue_pb2.FAULT_KIND_RECOVER)

        async def primary_up() -> bool:
            for h in self.watches:
                st = await self.control.sidecar(h)
                r = [x for x in st.routes if x.group == self.group][0]
                if not any(p.path == PRIMARY and p.state == 1 for p in r.health):
                    return False
            return True

        await wait_until(primary_up, 15, "the primary path to be up again on every host", self.cluster, 0.02)

    async def operator_switch(self, path: str, reason: str) -> EventResult:
        res = EventResult(f"operator switch to {path} ({reason})", "failback")
        before = self._epoch()
        t0 = time.monotonic()
        resp = await self.control.switch(self.group, path, reason)
        t_commit = time.monotonic()
        epoch = (resp.decision.epoch.era, resp.decision.epoch.revision)
        applied = await self._all(
            lambda s: s.decided == path and s.epoch >= epoch and s.epoch > before,
            t0,
            f"every host to apply the switch to {path}",
        )
        flipped = await self._all(lambda s: s.effective == path, t0, f"every host to use {path}")
        acks = await self._first_acks(flipped, path)
        res.wall_ms = {
            "request_to_commit_acknowledged": round((t_commit - t0) * 1000, 2),
            "request_to_all_hosts_applied": round((max(applied.values()) - t0) * 1000, 2),
            "request_to_first_ack_on_new_path_all_hosts": round((max(acks.values()) - t0) * 1000, 2),
        }
        await asyncio.sleep(self.settle_s)
        await self._local(res, path)
        await self._stages(res, epoch)
        self._orders(res, t0 - 0.5, time.monotonic())
        return res

    async def leader_kill(self, ttl_s: int) -> EventResult:
        res = EventResult("leader coordinator SIGKILL while orders flow", "leader_kill")
        st = await self.control.status()
        leader = st.leader.replica_id
        if not leader:
            raise ClusterError("no leader to kill")
        t0 = time.monotonic()
        self.cluster.kill(leader)

        async def new_leader() -> str | None:
            s = await self.control.status(exclude={leader})
            return s.leader.replica_id if s.leader.replica_id and s.leader.replica_id != leader else None

        new = await wait_until(new_leader, ttl_s + 10, "a new leader", None, 0.01)
        t_elected = time.monotonic()
        survivor = next(r for r in self.control.coordinators if r != leader)
        resp = await self.control.switch(self.group, PRIMARY, "new leader check", via=survivor)
        t_commit = time.monotonic()
        epoch = (resp.decision.epoch.era, resp.decision.epoch.revision)
        applied = await self._all(
            lambda s: s.epoch >= epoch, t0, "every host to apply the new leader's decision"
        )
        res.wall_ms = {
            "kill_to_new_leader_seen": round((t_elected - t0) * 1000, 2),
            "kill_to_new_leader_commit": round((t_commit - t0) * 1000, 2),
            "kill_to_all_hosts_applied_new_leader_decision": round((max(applied.values()) - t0) * 1000, 2),
        }
        res.notes.append(
            f"killed {leader} (pid {self.cluster.pid_of(leader)}); new leader {new}; lease TTL {ttl_s}s"
        )
        await asyncio.sleep(self.settle_s)
        await self._stages(res, epoch)
        self._orders(res, t0 - 0.5, time.monotonic())
        # Bring the replica back for the next round.
        self.cluster.start_coordinator(leader)
        return res
