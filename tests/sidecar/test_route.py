"""RouteState: unit tests of each rule, and properties over random decision/health/time sequences."""

from __future__ import annotations

from typing import Any

import pytest
from failover_sidecar.route import MAX_HOLD_DOWN_DOUBLINGS, RouteState
from hypothesis import example, given, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------- unit tests


def test_no_decision_then_cold_start_uses_first_path() -> None:
    r = RouteState("g", local_failover=True, hold_down_ms=500)
    assert (r.effective, r.halted, r.deviates) == (None, False, False)
    assert r.on_decision(["a", "b"], (0, 10))
    assert r.effective == "a" and "no local health" in r.reason and not r.deviates


def test_primary_down_moves_at_once_and_back_only_after_hold_down() -> None:
    r = RouteState("g", local_failover=True, hold_down_ms=500)
    r.on_decision(["a", "b"], (0, 10))
    r.on_health("a", True, 0)
    r.on_health("b", True, 0)
    assert r.effective == "a" and r.reason == "decision"
    assert r.on_health("a", False, 100)  # down: away at once
    assert r.effective == "b" and r.deviates and r.reason == "a down locally: using b"
    assert not r.on_health("a", True, 1000)  # healthy again: hold-down starts
    assert r.effective == "b" and "hold-down" in r.reason
    assert r.next_deadline_ms() == 1500
    assert not r.tick(1499)
    assert r.tick(1500)
    assert r.effective == "a" and not r.deviates and r.next_deadline_ms() is None


def test_flap_during_hold_down_restarts_it() -> None:
    r = RouteState("g", hold_down_ms=500)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", True, 0)
    r.on_health("b", True, 0)
    r.on_health("a", False, 0)
    r.on_health("a", True, 100)
    r.on_health("a", False, 400)
    r.on_health("a", True, 450)
    assert not r.tick(700)  # 600 ms after the first recovery, but only 250 since the last
    assert r.effective == "b"
    assert r.tick(950) and r.effective == "a"


def test_first_time_healthy_needs_no_hold_down() -> None:
    r = RouteState("g", hold_down_ms=10_000)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("b", True, 0)  # b answers first: use it rather than an unknown a
    assert r.effective == "b" and r.reason == "a not yet healthy locally: using b"
    r.on_health("a", True, 5)  # a was never healthy before: nothing to hold down
    assert r.effective == "a"
    r2 = RouteState("g", hold_down_ms=10_000)
    r2.on_decision(["a", "b"], (0, 1))
    r2.on_health("a", False, 0)  # still connecting at start, reported as not healthy
    r2.on_health("b", True, 1)
    r2.on_health("a", True, 5)
    assert r2.effective == "a"


def test_going_down_past_a_path_in_hold_down_takes_it_at_once() -> None:
    r = RouteState("g", hold_down_ms=1000)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", True, 0)
    r.on_health("a", False, 0)
    r.on_health("b", True, 0)
    r.on_health("a", True, 100)  # a in hold-down, b in use
    r.on_health("b", False, 200)  # b dies: a is the only healthy path
    assert r.effective == "a"


def test_new_order_applies_at_once_same_order_keeps_hold_down() -> None:
    r = RouteState("g", hold_down_ms=1000)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", True, 0)
    r.on_health("a", False, 0)
    r.on_health("b", True, 0)
    r.on_health("a", True, 100)
    assert r.on_decision(["a", "b"], (0, 2))  # same order, newer epoch: a still in hold-down
    assert r.effective == "b"
    assert r.on_decision(["b", "a"], (0, 3))
    assert r.effective == "b" and r.reason == "decision"
    assert r.on_decision(["a", "b"], (0, 4))  # an ordered move onto a healthy path: no hold-down
    assert r.effective == "a"


def test_epoch_fencing_including_era() -> None:
    r = RouteState("g")
    assert r.on_decision(["a"], (1, 100))
    assert not r.on_decision(["b"], (1, 100))
    assert not r.on_decision(["b"], (0, 500))  # an older era loses whatever its revision
    assert r.on_decision(["b"], (2, 3))  # a bumped era wins over a higher revision (etcd restore)
    assert r.effective == "b" and r.epoch == (2, 3)


def test_halt_and_resume() -> None:
    r = RouteState("g")
    r.on_decision(["a", "b"], (0, 1))
    v = r.version
    assert r.on_decision([], (0, 2))
    assert r.halted and r.effective is None and not r.deviates and r.version > v
    assert r.on_decision(["b"], (0, 3))
    assert not r.halted and r.effective == "b"


def test_local_failover_off_follows_the_decision() -> None:
    r = RouteState("g", local_failover=False)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", False, 0)
    r.on_health("b", True, 0)
    assert r.effective == "a" and not r.deviates and "local failover off" in r.reason


def test_degraded_keeps_first_path() -> None:
    r = RouteState("g")
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", False, 0)
    r.on_health("b", False, 0)
    assert r.effective == "a" and r.reason.startswith("degraded: nothing healthy locally")
    r.on_health("b", True, 10)  # anything healthy is taken at once
    assert r.effective == "b"


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        RouteState("g", hold_down_ms=-1)
    with pytest.raises(ValueError):
        RouteState("g").on_decision(["a", "a"], (0, 1))


# ---------------------------------------------------------------- properties

PATHS = ["a", "b", "c"]
DT = st.sampled_from([0, 1, 10, 50, 99, 100, 101, 150, 249, 250, 300])

decision_op = st.tuples(
    st.just("decision"),
    st.lists(st.sampled_from(PATHS), unique=True, max_size=len(PATHS)),
    st.tuples(st.integers(0, 2), st.integers(0, 30)),
)
health_op = st.tuples(st.just("health"), st.sampled_from(PATHS), st.booleans(), DT)
tick_op = st.tuples(st.just("tick"), DT)
# Health reports dominate, as in life; decisions are rarer.
any_op = st.sampled_from(["decision"] + ["health"] * 6 + ["tick"] * 2).flatmap(
    lambda kind: {"decision": decision_op, "health": health_op, "tick": tick_op}[kind]
)


class Model:
    """The minimum the properties need: health and since when each path has been healthy."""

    def __init__(self) -> None:
        self.health: dict[str, bool] = {}
        self.since: dict[str, float | None] = {}  # None: first time healthy (no hold-down)

    def report(self, path: str, healthy: bool, now: float) -> None:
        if healthy and self.health.get(path) is not True:
            self.since[path] = now if path in self.since else None
        self.health[path] = healthy

    def stable(self, path: str, now: float, hold: int) -> bool:
        since = self.since.get(path)
        return self.health.get(path) is True and (since is None or now - since >= hold)


@settings(max_examples=300, deadline=None)
@given(
    local_failover=st.booleans(),
    hold=st.sampled_from([0, 100, 250]),
    ops=st.lists(any_op, min_size=20, max_size=80),
)
@example(  # primary recovers while the backup is in use: hold-down applies
    local_failover=True,
    hold=100,
    ops=[
        ("decision", ["a", "b"], (0, 1)),
        ("health", "a", True, 0),
        ("health", "b", True, 0),
        ("health", "a", False, 10),
        ("health", "a", True, 10),
        ("tick", 99),
        ("tick", 1),
    ],
)
def test_route_properties(local_failover: bool, hold: int, ops: list[tuple[Any, ...]]) -> None:
    r = RouteState("g", local_failover=local_failover, hold_down_ms=hold)
    m = Model()
    now = 0.0
    for op in ops:
        before = (r.effective, r.paths, r.epoch, r.reason, r.version)
        order_changed = False
        if op[0] == "decision":
            _, paths, epoch = op
            newer = r.epoch is None or epoch > r.epoch
            order_changed = tuple(paths) != r.paths
            assert r.on_decision(paths, epoch) is newer
            if not newer:  # older or equal epochs never apply, and change nothing
                assert (r.effective, r.paths, r.epoch, r.reason, r.version) == before
                continue
        elif op[0] == "health":
            _, path, healthy, dt = op
            now += dt
            m.report(path, healthy, now)
            assert r.on_health(path, healthy, now) is (r.effective != before[0])
        else:
            now += op[1]
            assert r.tick(now) is (r.effective != before[0])

        order = list(r.paths)
        if r.epoch is None or r.halted:
            assert r.effective is None and not r.deviates
            continue
        assert r.effective in order  # always a member of the decision's order
        assert r.deviates is (r.effective != order[0])
        if not local_failover:
            assert r.effective == order[0]
            continue
        healthy = [p for p in order if m.health.get(p) is True]
        if healthy:  # never a path that is not healthy while some path is
            assert m.health.get(r.effective) is True
        elif any(p in m.health for p in order):
            assert r.effective == order[0] and r.reason.startswith("degraded")
        # Never lingers below a path that is healthy and past its hold-down (at most the
        # doubled one: a path that failed its failbacks waits longer).
        stable = [p for p in order if m.stable(p, now, hold * 2**MAX_HOLD_DOWN_DOUBLINGS)]
        if stable:
            assert order.index(r.effective) <= order.index(stable[0])
        # Moving up the same order needs a stable target, unless the path in use died.
        prev = before[0]
        if prev is None or prev not in order or op[0] == "decision" or order_changed:
            continue
        if order.index(r.effective) < order.index(prev) and m.health.get(prev) is True:
            assert m.stable(r.effective, now, hold)


def test_cold_start_waits_for_the_first_path_within_its_grace() -> None:
    # Found from outside: the backup logged on 3 ms before the primary at start; the route
    # went primary -> backup -> primary within 10 ms, the orders between on the backup.
    r = RouteState("g", hold_down_ms=1000, cold_start_grace_ms=200)
    r.on_decision(["a", "b"], (0, 1))
    assert not r.on_health("b", True, 0)  # b first: a still logging on, within the grace
    assert r.effective == "a" and "still logging on" in r.reason
    assert r.next_deadline_ms() == 200
    assert not r.on_health("a", True, 3)  # a comes up: no flip at all
    assert r.effective == "a" and r.next_deadline_ms() is None


def test_cold_start_grace_ends_on_time_or_when_the_first_path_reports_down() -> None:
    r = RouteState("g", cold_start_grace_ms=200)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("b", True, 10)
    assert not r.tick(209) and r.effective == "a"
    assert r.tick(210) and r.effective == "b"  # a stalled at start: b after the grace
    r2 = RouteState("g", cold_start_grace_ms=200)
    r2.on_decision(["a", "b"], (0, 1))
    r2.on_health("b", True, 0)
    assert r2.on_health("a", False, 5) and r2.effective == "b"  # a refused: no wait
    assert r2.next_deadline_ms() is None


def test_a_path_that_dies_again_right_after_its_failback_waits_twice_as_long_next_time() -> None:
    """Found from outside: a throttled primary passed its idle checks, was taken back after
    each 1 s hold-down and died under the orders within ms, 4 times in 4 s, each time
    leaving orders IN_DOUBT. Each failed failback doubles the path's next hold-down."""
    r = RouteState("g", hold_down_ms=100)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", True, 0)
    r.on_health("b", True, 0)
    now = 0.0
    for hold in (100, 200, 400, 800, 1600, 3200, 3200):  # capped at 32x
        now += 10
        r.on_health("a", False, now)  # dies right after it was taken (or at first)
        assert r.effective == "b"
        now += 10
        r.on_health("a", True, now)  # healthy again: hold-down
        assert r.next_deadline_ms() == now + hold, hold
        assert not r.tick(now + hold - 1)
        now += hold
        assert r.tick(now) and r.effective == "a"
    assert "3200 ms" in r.reason or r.reason == "decision"


def test_a_path_that_served_past_its_hold_down_starts_again_from_the_base() -> None:
    r = RouteState("g", hold_down_ms=100)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", True, 0)
    r.on_health("b", True, 0)
    r.on_health("a", False, 10)
    r.on_health("a", True, 20)
    assert r.tick(120) and r.effective == "a"
    r.on_health("a", False, 130)  # died 10 ms after the failback: doubled
    r.on_health("a", True, 140)
    assert r.next_deadline_ms() == 340 and "200 ms" in r.reason
    assert r.tick(340) and r.effective == "a"
    r.on_health("a", False, 1000)  # served 660 ms, past its 200 ms hold-down: back to the base
    r.on_health("a", True, 1010)
    assert r.next_deadline_ms() == 1110


def test_a_decision_that_moves_the_route_up_is_not_a_failback() -> None:
    """An operator's switch back to a path that then dies at once is no failed failback: the
    next hold-down is the base (the fault tier's restore between rows found it doubled)."""
    r = RouteState("g", hold_down_ms=100)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", True, 0)
    r.on_health("b", True, 0)
    r.on_health("a", False, 10)
    r.on_health("a", True, 20)  # healthy again, in hold-down
    r.on_decision(["b", "a"], (0, 2))
    assert r.on_decision(["a", "b"], (0, 3)) and r.effective == "a"  # moved up by a decision
    r.on_health("a", False, 40)  # dies right after
    r.on_health("a", True, 50)
    assert r.next_deadline_ms() == 150  # the base, not doubled


def test_a_decision_that_changes_the_order_starts_every_path_afresh() -> None:
    r = RouteState("g", hold_down_ms=100)
    r.on_decision(["a", "b"], (0, 1))
    r.on_health("a", True, 0)
    r.on_health("b", True, 0)
    r.on_health("a", False, 10)
    r.on_health("a", True, 20)
    assert r.tick(120) and r.effective == "a"
    r.on_health("a", False, 130)  # a failed failback: doubled
    assert r.hold_ms("a") == 200
    r.on_decision(["b", "a"], (0, 2))
    r.on_decision(["a", "b"], (0, 3))  # an operator switches back: a starts afresh
    assert r.hold_ms("a") == 100
