"""The leader's decision pass after a commit costs what changed, not the whole fleet.

Two shortcuts, each checked against the full computation: ``reconcile`` is skipped for
a group whose inputs are the very objects it was last found settled on, and the
policy's path verdicts come from one walk of the health table.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from coordinator.config import HealthSection
from coordinator.core import policy
from coordinator.core.health import PathReport, State
from coordinator.core.policy import _verdict, judge, reports_by_path
from coordinator.keys import Keys
from coordinator.leader import LeaderWork
from coordinator.leader_health import LeaderHealth
from coordinator.store.types import KV
from coordinator.view import ClusterView
from failover.model.spec import ControlsSpec, DecisionRecord, GroupSpec, PathSpec, PolicySpec, TriggerSpec

KEYS = Keys("/t/")
NAMES = ("primary", "backup", "third")


def _spec(name: str) -> GroupSpec:
    return GroupSpec(name=name, paths=[PathSpec(name=n, endpoints={"default": "127.0.0.1:9"}) for n in NAMES])


def _kv(key: str, value: bytes, rev: int) -> KV:
    return KV(key, value, rev, rev)


def _route(group: str, paths: list[str], era: int = 0) -> bytes:
    return (
        DecisionRecord(
            group=group,
            paths=paths,
            era=era,
            leader_id="c1",
            reason="test",
            trigger=TriggerSpec(kind="seed"),
            decided_at_unix_ms=0,
            fencing_token=1,
        )
        .model_dump_json()
        .encode()
    )


class Mirror:
    """What the watch would deliver: keys put at increasing revisions."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self.data: dict[str, KV] = {}
        self.rev = 10

    def put(self, key: str, value: bytes) -> None:
        self.rev += 1
        self.data[key] = _kv(key, value, self.rev)
        self.view.apply(self.data, {key}, self.rev)


def _settled_fleet(groups: int) -> tuple[LeaderWork, Mirror]:
    view = ClusterView(KEYS)
    m = Mirror(view)
    for i in range(groups):
        name = f"g{i}"
        m.put(KEYS.group(name), _spec(name).model_dump_json().encode())
        m.put(KEYS.route(name), _route(name, list(NAMES)))
    return LeaderWork(view, committer=None, history_retention=10), m  # type: ignore[arg-type]


def test_a_settled_group_is_reconciled_again_when_any_input_changes() -> None:
    work, m = _settled_fleet(3)
    assert [work._reconcile(g) for g in ("g0", "g1", "g2")] == [None, None, None]
    assert [work._reconcile(g) for g in ("g0", "g1", "g2")] == [None, None, None]  # from the memo

    # Controls: draining g1's active path moves it, though g1's spec and route are unchanged.
    drained = ControlsSpec(drained=["primary"], operator="op", reason="r")
    m.put(KEYS.control("g1"), drained.model_dump_json().encode())
    p = work._reconcile("g1")
    assert p is not None and p.paths[0] == "backup"
    assert work._reconcile("g0") is None

    # Route: a route naming an order that misses a path is rewritten.
    m.put(KEYS.route("g2"), _route("g2", ["backup"]))
    p = work._reconcile("g2")
    assert p is not None and p.paths == ["backup", "primary", "third"]

    # Spec: a group that gains a path gets a route naming it.
    spec = GroupSpec(
        name="g0",
        paths=[PathSpec(name=n, endpoints={"default": "127.0.0.1:9"}) for n in (*NAMES, "fourth")],
    )
    m.put(KEYS.group("g0"), spec.model_dump_json().encode())
    p = work._reconcile("g0")
    assert p is not None and p.paths[-1] == "fourth"


def test_an_era_bump_reconciles_every_settled_group_again() -> None:
    work, m = _settled_fleet(2)
    assert work._reconcile("g0") is None
    m.put(KEYS.era, b'{"era": 1}')
    p = work._reconcile("g0")
    assert p is not None and "era bumped" in p.reason


def test_verdicts_from_one_walk_match_judge_for_every_group_and_path() -> None:
    states = (State.UP, State.DOWN, State.UNKNOWN, State.CONNECTING)
    health: dict[str, dict[tuple[str, str], PathReport]] = {}
    for h, combo in enumerate(itertools.product(states, repeat=3)):
        health[f"h{h}"] = {
            (f"g{h % 3}", path): PathReport(state, rtt_p99_us=1000 * (h % 7))
            for path, state in zip(NAMES, combo, strict=True)
        }
    policies = (PolicySpec(), PolicySpec(fail_hosts=2, slow_threshold_ms=3), PolicySpec(fraction_up=0.9))
    by_path = reports_by_path(health)
    for group, path, pol in itertools.product(("g0", "g1", "g2", "g9"), NAMES, policies):
        assert _verdict(path, pol, by_path.get((group, path), ())) == judge(group, path, pol, health)


def _leader_health(view: ClusterView, hosts: int) -> LeaderHealth:
    health = LeaderHealth(
        replica_id="c1",
        settings=HealthSection(),
        view=view,
        peers=None,  # type: ignore[arg-type]  # propose never collects
        local_state=lambda: None,  # type: ignore[arg-type,return-value]
        wake=lambda: None,
        outage_since=lambda: 0.0,
    )
    health.ready = True
    for h in range(hosts):
        paths = {(g, p): PathReport(State.UP) for g in view.groups for p in NAMES}
        health.table.update(f"h{h}", "s", "c1", paths, full=True, received_ms=0.0, seq=1)
    return health


def _count_verdicts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    judged: list[str] = []
    real = policy._verdict

    def counting(path: str, pol: PolicySpec, reports: Sequence[PathReport]) -> policy.PathVerdict:
        judged.append(path)
        return real(path, pol, reports)

    monkeypatch.setattr(policy, "_verdict", counting)
    return judged


def test_a_commit_runs_the_policy_for_the_group_it_changed_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a commit the leader's pass runs the policy again; a group none of whose inputs
    changed (definition, controls, route, its paths' health) is not judged again."""
    work, m = _settled_fleet(50)
    health = _leader_health(work._view, hosts=3)
    judged = _count_verdicts(monkeypatch)
    assert health.propose() == []
    assert len(judged) == 50 * len(NAMES)  # the term's first pass judges every group

    judged.clear()
    assert health.propose() == []
    assert judged == []  # nothing changed

    m.put(KEYS.route("g7"), _route("g7", ["backup", "primary", "third"]))
    judged.clear()
    assert health.propose() == []
    assert len(judged) == len(NAMES)  # g7's paths only

    # A host's report on one group's path: that group only, and it moves.
    judged.clear()
    for host in ("h0", "h1"):
        down = {("g3", "primary"): PathReport(State.DOWN, "reset")}
        health.table.update(host, "s", "c1", down, full=False, received_ms=1.0, seq=2)
    proposals = health.propose()
    assert [(p.group, p.paths[0]) for p in proposals] == [("g3", "backup")]
    assert len(judged) == len(NAMES)
    assert health.statuses["g3"].verdicts[0].failing
    assert not health.statuses["g4"].verdicts[0].failing
