"""``failover bench policy-pass``: the leader's CPU per decision pass, in one process.

After every commit the leader runs a pass over its view: reconcile each group, then the
health policy over every group. This measures that work alone (no etcd, no gRPC), for
G groups of three paths and H hosts reporting every path up: the view is built as the
watch would build it, then, once per sample, one group's route is replaced (what a
commit does to the view) and the pass's two steps are timed. With nothing else in the
sample, what grows with G and H is the cost of the pass itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from coordinator.config import HealthSection
from coordinator.core.health import PathReport, State
from coordinator.keys import Keys
from coordinator.leader import LeaderWork
from coordinator.leader_health import LeaderHealth
from coordinator.store.types import KV
from coordinator.view import ClusterView
from failover.bench.report import command_line, out, print_header, print_stats, progress, write_results
from failover.machine import MachineLoad, load_line
from failover.model.spec import DecisionRecord, GroupSpec, PathSpec, TriggerSpec
from failover.stats import Latency

KEYS = Keys("/bench/")
PATHS = ("primary", "backup", "third")


def _route(group: str, paths: list[str], n: int) -> bytes:
    record = DecisionRecord(
        group=group,
        paths=paths,
        era=0,
        leader_id="c1",
        reason=f"bench {n}",
        trigger=TriggerSpec(kind="operator"),
        decided_at_unix_ms=0,
        fencing_token=1,
    )
    return record.model_dump_json().encode()


class _Fleet:
    """A leader's view of G settled groups, and its term's health table with H hosts."""

    def __init__(self, groups: int, hosts: int) -> None:
        self.view = ClusterView(KEYS)
        self.rev = 10
        self.names = [f"g{i:05d}" for i in range(groups)]
        data: dict[str, KV] = {}
        for name in self.names:
            spec = GroupSpec(
                name=name, paths=[PathSpec(name=p, endpoints={"default": "127.0.0.1:9"}) for p in PATHS]
            )
            for key, value in (
                (KEYS.group(name), spec.model_dump_json().encode()),
                (KEYS.route(name), _route(name, list(PATHS), 0)),
            ):
                self.rev += 1
                data[key] = KV(key, value, self.rev, self.rev)
        self.view.apply(data, set(data), self.rev)
        self.work = LeaderWork(self.view, committer=None, history_retention=10)  # type: ignore[arg-type]
        self.health = LeaderHealth(
            replica_id="c1",
            settings=HealthSection(),
            view=self.view,
            peers=None,  # type: ignore[arg-type]  # nothing is collected
            local_state=lambda: None,  # type: ignore[arg-type,return-value]
            wake=lambda: None,
            outage_since=lambda: 0.0,
        )
        self.health.ready = True
        up = {(g, p): PathReport(State.UP) for g in self.names for p in PATHS}
        for h in range(hosts):
            self.health.table.update(f"h{h:04d}", "s", "c1", dict(up), full=True, received_ms=0.0, seq=1)

    def commit(self, n: int) -> None:
        """What a commit does to the view: one group's route replaced."""
        name = self.names[n % len(self.names)]
        order = list(PATHS) if n % 2 == 0 else ["backup", "primary", "third"]
        self.rev += 1
        key = KEYS.route(name)
        self.view.apply({key: KV(key, _route(name, order, n), 1, self.rev)}, {key}, self.rev)

    def reconcile_all(self) -> None:
        for name in sorted(self.view.groups):
            if self.work._reconcile(name) is not None:
                raise RuntimeError(f"{name} is not settled: the bench's view is wrong")

    def propose(self) -> None:
        if self.health.propose():
            raise RuntimeError("the policy proposed a move with every path up: the bench's view is wrong")


def policy_pass(
    groups: Annotated[str, typer.Option("--groups", help="Comma-separated group counts.")] = "1,200,1000",
    hosts: Annotated[str, typer.Option("--hosts", help="Comma-separated host counts.")] = "0,10,100",
    passes: Annotated[int, typer.Option("--passes", min=10, max=100_000, help="Samples per row.")] = 200,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every sample (us) to this file.")
    ] = None,
) -> None:
    """The leader's decision pass after a commit: reconcile and health policy, CPU time per pass."""
    sizes = [(int(g), int(h)) for g in groups.split(",") for h in hosts.split(",")]
    if any(g < 1 or g > 20_000 or h < 0 or h > 2_000 for g, h in sizes):
        out.print("[red]error:[/red] --groups must be 1..20000 and --hosts 0..2000")
        raise typer.Exit(2)
    params: dict[str, Any] = {"groups": groups, "hosts": hosts, "passes": passes, "json_out": json_out}
    info = print_header(
        "failover bench policy-pass",
        command_line("policy-pass", params),
        params,
        network="none (one process)",
        notes=["a sample: one route replaced in the view, then the step timed (process CPU clock)"],
    )
    load = MachineLoad()
    rows: list[Latency] = []
    for g, h in sizes:
        progress(f"{g} groups, {h} hosts: building the view")
        fleet = _Fleet(g, h)
        fleet.reconcile_all()  # the term's first pass: every group judged once
        fleet.propose()
        rec = Latency(f"reconcile, {g} groups, {h} hosts", "reconcile every group after one commit")
        pol = Latency(f"policy, {g} groups, {h} hosts", "the health policy over every group after one commit")
        for n in range(1, passes + 1):
            fleet.commit(n)
            t0 = time.process_time_ns()
            fleet.reconcile_all()
            t1 = time.process_time_ns()
            fleet.propose()
            t2 = time.process_time_ns()
            rec.record_ns(t1 - t0)
            pol.record_ns(t2 - t1)
        rows += [rec, pol]
    print_stats("decision pass after one commit (CPU time)", rows)
    ml = load.finish()
    out.print(load_line(ml))
    write_results(
        json_out,
        {
            "benchmark": "policy-pass",
            "machine": info,
            "params": {k: str(v) if isinstance(v, Path) else v for k, v in params.items()},
            "machine_load": ml,
            "results": {r.name: r.to_json() for r in rows},
            "ok": True,
        },
    )


if __name__ == "__main__":
    typer.run(policy_pass)
