"""The failover policy as a pure state machine: unit cases and Hypothesis invariants."""

from __future__ import annotations

import dataclasses

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from coordinator.core.health import PathReport, State
from coordinator.core.policy import Memory, Snapshot, evaluate
from coordinator.core.reconcile import reconcile
from failover.model.spec import ControlsSpec, DecisionRecord, GroupSpec

PATHS = ["a", "b", "c"]
HOSTS = ["h1", "h2", "h3", "h4", "h5"]


def spec(**policy: object) -> GroupSpec:
    return GroupSpec.model_validate(
        {
            "name": "g",
            "paths": [{"name": p, "endpoints": {"default": "h:1"}} for p in PATHS],
            "policy": policy,
        }
    )


def rec(paths: list[str], kind: str = "seed", n: int = 0) -> DecisionRecord:
    """A committed route; ``n`` tells apart two commits of the same order."""
    return DecisionRecord(
        group="g", paths=paths, era=0, leader_id="x", reason="r", trigger={"kind": kind}, prev=(0, n)
    )


def health(states: dict[str, dict[str, State]]) -> dict[str, dict[tuple[str, str], PathReport]]:
    return {
        h: {("g", p): PathReport(s, "reset" if s is State.DOWN else "") for p, s in ps.items()}
        for h, ps in states.items()
    }


def snap(states, route=("a", "b", "c"), controls=None, kind="seed", **policy) -> Snapshot:
    return Snapshot(
        {"g": spec(**policy)},
        {"g": controls} if controls else {},
        {"g": rec(list(route), kind)},
        health(states),
    )


UP, DOWN = State.UP, State.DOWN


def test_one_of_three_down_does_not_move_two_of_three_do() -> None:
    s = snap({"h1": {"a": DOWN, "b": UP}, "h2": {"a": UP, "b": UP}, "h3": {"a": UP, "b": UP}})
    assert evaluate(s, Memory(), 0)[0] == []
    s = snap({"h1": {"a": DOWN, "b": UP}, "h2": {"a": DOWN, "b": UP}, "h3": {"a": UP, "b": UP}})
    (p,), _, _ = evaluate(s, Memory(), 0)
    assert p.paths[0] == "b" and p.kind == "health" and "h1:a=down/reset" in p.evidence


def test_unknown_hosts_are_never_down() -> None:
    # Only one host reports at all: one of one down is a majority of the reporting hosts.
    s = snap({"h1": {"a": DOWN, "b": UP}, "h2": {}, "h3": {}})
    (p,), _, _ = evaluate(s, Memory(), 0)
    assert p.paths[0] == "b"
    # No report on the target means it is not healthy for the group: degraded, no move.
    s = snap({"h1": {"a": DOWN}})
    props, _, statuses = evaluate(s, Memory(), 0)
    assert props == [] and statuses[0].degraded


def test_fail_hosts_threshold_and_slow_paths() -> None:
    s = snap({"h1": {"a": DOWN, "b": UP}, "h2": {"a": UP, "b": UP}, "h3": {"a": UP, "b": UP}}, fail_hosts=1)
    assert evaluate(s, Memory(), 0)[0][0].paths[0] == "b"
    slow = {
        h: {("g", "a"): PathReport(UP, rtt_p99_us=9000), ("g", "b"): PathReport(UP, rtt_p99_us=100)}
        for h in HOSTS[:3]
    }
    s2 = Snapshot({"g": spec(slow_threshold_ms=5)}, {}, {"g": rec(["a", "b", "c"])}, slow)
    (p,), _, _ = evaluate(s2, Memory(), 0)
    assert p.paths[0] == "b" and "slow" in p.reason


def test_dwell_and_failback_hold() -> None:
    states = {h: {"a": DOWN, "b": UP} for h in HOSTS[:3]}
    _, mem, _ = evaluate(snap(states), Memory(), 0)
    # Committed; now b dies too while c is healthy, within the dwell: no decision, a wake-up is scheduled.
    states2 = {h: {"a": DOWN, "b": DOWN, "c": UP} for h in HOSTS[:3]}
    moved = {"route": ("b", "c", "a"), "kind": "health", "min_dwell_ms": 1000}
    props, mem2, _ = evaluate(snap(states2, **moved), mem, 500)
    assert props == [] and mem2.wake_at_ms == 1000
    props, _, _ = evaluate(snap(states2, **moved), mem2, 1000)
    assert props and props[0].paths[0] == "c"
    # Failback: a healthy again; moves back only after failback_hold_s, and only when enabled.
    healthy = {h: {"a": UP, "b": UP, "c": UP} for h in HOSTS[:3]}
    kw = {"auto_failback": True, "failback_hold_s": 2, "min_dwell_ms": 0}
    props, m, _ = evaluate(snap(healthy, route=("b", "a", "c"), **kw), Memory(), 10_000)
    assert props == [] and m.wake_at_ms == 12_000
    props, _, _ = evaluate(snap(healthy, route=("b", "a", "c"), **kw), m, 12_000)
    assert props and props[0].paths[0] == "a" and "failback" in props[0].reason
    assert evaluate(snap(healthy, route=("b", "a", "c"), min_dwell_ms=0), m, 20_000)[0] == []


def test_a_wait_for_the_clock_is_judged_again_on_unchanged_inputs() -> None:
    """A dwell or failback hold being waited out depends on the time alone: the same
    snapshot (same objects, same health versions) evaluated later still decides."""
    states = {h: {"a": DOWN, "b": DOWN, "c": UP} for h in HOSTS[:3]}
    first = snap({h: {"a": DOWN, "b": UP} for h in HOSTS[:3]})
    _, mem, _ = evaluate(dataclasses.replace(first, health_versions={}), Memory(), 0)
    within = dataclasses.replace(
        snap(states, route=("b", "c", "a"), kind="health", min_dwell_ms=1000), health_versions={}
    )
    props, mem, _ = evaluate(within, mem, 500)
    assert props == [] and mem.wake_at_ms == 1000
    props, mem, _ = evaluate(within, mem, 700)  # woken early: still waiting
    assert props == [] and mem.wake_at_ms == 1000
    props, _, _ = evaluate(within, mem, 1000)
    assert props and props[0].paths[0] == "c"

    healthy = {h: {"a": UP, "b": UP, "c": UP} for h in HOSTS[:3]}
    kw = {"auto_failback": True, "failback_hold_s": 2, "min_dwell_ms": 0}
    held = dataclasses.replace(snap(healthy, route=("b", "a", "c"), **kw), health_versions={})
    props, m, _ = evaluate(held, Memory(), 10_000)
    assert props == [] and m.wake_at_ms == 12_000
    props, m, _ = evaluate(held, m, 11_000)
    assert props == [] and m.wake_at_ms == 12_000
    props, _, _ = evaluate(held, m, 12_000)
    assert props and props[0].paths[0] == "a" and "failback" in props[0].reason


def test_controls_win() -> None:
    states = {h: {"a": DOWN, "b": UP, "c": UP} for h in HOSTS[:3]}
    assert evaluate(snap(states, controls=ControlsSpec(paused=True)), Memory(), 0)[0] == []
    assert evaluate(snap(states, controls=ControlsSpec(halted=True)), Memory(), 0)[0] == []
    (p,), _, _ = evaluate(snap(states, controls=ControlsSpec(drained=["b"])), Memory(), 0)
    assert p.paths == ["c", "b"] or p.paths[0] == "c"
    assert "b" not in p.paths
    # Pinned: moves to the pin (an operator control), never elsewhere.
    (p,), _, _ = evaluate(snap(states, route=("b", "a", "c"), controls=ControlsSpec(pinned="a")), Memory(), 0)
    assert p.paths[0] == "a" and p.kind == "control"


def test_a_proposal_that_was_not_committed_holds_nothing_back() -> None:
    """It lost its race (StaleInputs): the next evaluation proposes again, the dwell has not started."""
    states = {h: {"a": DOWN, "b": UP} for h in HOSTS[:3]}
    s = snap(states, min_dwell_ms=1000)
    (p,), mem, _ = evaluate(s, Memory(), 0)
    assert p.paths[0] == "b"
    (again,), mem, _ = evaluate(s, mem, 10)
    assert again.paths == p.paths
    # Committed at last: the dwell counts from the proposal that was committed.
    states2 = {h: {"a": UP, "b": DOWN, "c": UP} for h in HOSTS[:3]}
    moved = snap(states2, route=("b", "a", "c"), kind="health", min_dwell_ms=1000)
    props, mem, _ = evaluate(moved, mem, 20)
    assert props == [] and mem.wake_at_ms == 1010


def test_drain_beats_pin_in_policy_and_reconciler_alike() -> None:
    """pin(b), drain(b): both rules move off b and then agree; nothing alternates."""
    states = {h: {"a": UP, "b": UP, "c": UP} for h in HOSTS[:3]}
    ctl = ControlsSpec(pinned="b", drained=["b"])
    route = ["b", "a", "c"]
    orders = []
    for _ in range(4):
        r = reconcile("g", spec(), ctl, rec(route), 0)
        if r is not None:
            route = r.paths
            orders.append(route)
        props, _, _ = evaluate(snap(states, route=tuple(route), controls=ctl), Memory(), 0)
        for p in props:
            route = p.paths
            orders.append(route)
    assert orders == [["a", "c"]], orders


class PolicyMachine(RuleBasedStateMachine):
    """Random health, controls, time, and decisions committed or lost; invariants on every output.

    Controls may hold what the operator requests refuse (a pin on a drained
    path): it can still be read from etcd, and the rules must agree on it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.states: dict[str, dict[str, State]] = {h: {} for h in HOSTS}
        self.controls = ControlsSpec()
        self.commits = 0
        self.route = rec(["a", "b", "c"])
        self.now = 0.0
        self.memory = Memory()
        self.auto_times: list[float] = []
        # A health decision committed and replaced before the policy saw it is not
        # counted by the dwell (the policy learns what was committed from the routes).
        self.unseen_auto = False
        self.dwell = 300
        self.spec = spec(min_dwell_ms=self.dwell, auto_failback=True, failback_hold_s=1)
        # What HealthTable.group_versions would hold: bumped on every report on a path.
        self.versions: dict[str, int] = {}

    def _spec(self) -> GroupSpec:
        return self.spec

    def _snap(self) -> Snapshot:
        return Snapshot(
            {"g": self._spec()},
            {"g": self.controls},
            {"g": self.route},
            health(self.states),
            health_versions=self.versions,
        )

    def _commit(self, paths: list[str], kind: str) -> None:
        self.commits += 1
        if self.unseen_auto and self.auto_times:
            self.auto_times.pop()
        self.route = rec(paths, kind, self.commits)
        self.unseen_auto = kind == "health"
        if kind == "health":
            self.auto_times.append(self.now)

    def _evaluate(self) -> list:
        snap_ = self._snap()
        props, mem, statuses = evaluate(snap_, self.memory, self.now)
        again = evaluate(snap_, self.memory, self.now)
        assert (props, mem) == (again[0], again[1]), "evaluate is not a pure function of its inputs"
        # A group not judged again (its inputs unchanged, last outcome quiet) gets what
        # judging it would give: the same proposals, statuses and memory.
        full = evaluate(dataclasses.replace(snap_, health_versions=None), self.memory, self.now)
        assert (props, statuses) == (full[0], full[2]), "a remembered outcome differs from judging again"
        assert dataclasses.replace(mem, quiet={}) == full[1], "a remembered outcome left other memory"
        self.memory = mem
        self.unseen_auto = False
        drained = set(self.controls.drained)
        for p in props:
            assert p.paths, "the policy never halts on its own"
            assert p.paths[0] not in drained, "a drained path was chosen"
            assert not self.controls.halted, "a halted group got a decision"
            if self.controls.pinned and self.controls.pinned not in drained:
                assert p.kind == "control" and p.paths[0] == self.controls.pinned
            if p.kind == "health":
                assert not self.controls.paused
                if self.auto_times:
                    assert self.now - self.auto_times[-1] >= self.dwell, (
                        "two automatic decisions within the dwell"
                    )
            non_drained = [x for x in PATHS if x not in drained or x == p.paths[0]]
            assert sorted(p.paths) == sorted(set(non_drained)), f"order {p.paths} vs {non_drained}"
        return props

    def _reconcile(self) -> bool:
        r = reconcile("g", self._spec(), self.controls, self.route, 0)
        if r is None:
            return False
        if r.paths:
            assert r.paths[0] not in self.controls.drained
        else:
            assert self.controls.halted
        self._commit(list(r.paths), r.kind)
        return True

    @rule(host=st.sampled_from(HOSTS), path=st.sampled_from(PATHS), state=st.sampled_from([UP, DOWN, None]))
    def report(self, host: str, path: str, state: State | None) -> None:
        self.versions["g"] = self.versions.get("g", 0) + 1
        if state is None:
            self.states[host].pop(path, None)
        else:
            self.states[host][path] = state

    @rule(ms=st.integers(min_value=0, max_value=2000))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule(path=st.sampled_from(PATHS))
    def drain(self, path: str) -> None:
        if len(set(self.controls.drained) | {path}) < len(PATHS):
            self.controls = self.controls.model_copy(
                update={"drained": sorted(set(self.controls.drained) | {path})}
            )

    @rule()
    def undrain_all(self) -> None:
        self.controls = self.controls.model_copy(update={"drained": []})

    @rule(path=st.sampled_from([*PATHS, None]))
    def pin(self, path: str | None) -> None:
        self.controls = self.controls.model_copy(update={"pinned": path})

    @rule(flag=st.booleans())
    def pause(self, flag: bool) -> None:
        self.controls = self.controls.model_copy(update={"paused": flag})

    @rule(flag=st.booleans())
    def halt(self, flag: bool) -> None:
        self.controls = self.controls.model_copy(update={"halted": flag})

    @rule()
    def evaluate_and_commit(self) -> None:
        for p in self._evaluate():
            self._commit(list(p.paths), p.kind)

    @rule()
    def evaluate_and_lose_the_race(self) -> None:
        """The commit fails (StaleInputs): asked again at once, the policy proposes the same."""
        props = self._evaluate()
        again = self._evaluate()
        assert [(p.paths, p.kind) for p in again] == [(p.paths, p.kind) for p in props], (
            "a proposal that was not committed held the next one back"
        )

    @rule()
    def reconcile_controls(self) -> None:
        self._reconcile()

    @rule()
    def settle(self) -> None:
        """With no new input, the reconciler and the policy agree within a few passes (no flapping)."""
        for _ in range(4):
            moved = self._reconcile()
            for p in self._evaluate():
                self._commit(list(p.paths), p.kind)
                moved = True
            if not moved:
                return
        raise AssertionError(f"still moving after 4 passes: {self.route.paths} under {self.controls}")

    @invariant()
    def route_is_a_permutation(self) -> None:
        assert len(set(self.route.paths)) == len(self.route.paths)


TestPolicyMachine = PolicyMachine.TestCase
TestPolicyMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
