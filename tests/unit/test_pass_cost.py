"""The leader's decision pass after a commit costs what changed, not the whole fleet.

Two shortcuts, each checked against the full computation: ``reconcile`` is skipped for
a group whose inputs are the very objects it was last found settled on, and the
policy's path verdicts come from one walk of the health table.
"""

from __future__ import annotations

import itertools

from coordinator.core.health import PathReport, State
from coordinator.core.policy import _verdict, judge, reports_by_path
from coordinator.keys import Keys
from coordinator.leader import LeaderWork
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
