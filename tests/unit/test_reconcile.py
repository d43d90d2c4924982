from coordinator.core.reconcile import reconcile
from failover.model.spec import ControlsSpec, DecisionRecord, GroupSpec

SPEC = GroupSpec.model_validate(
    {"name": "g", "paths": [{"name": n, "endpoints": {"default": "h:1"}} for n in ("a", "b", "c")]}
)


def rec(paths, era=0):
    return DecisionRecord(group="g", paths=paths, era=era, leader_id="x", reason="r")


def test_first_decision_is_priority_order() -> None:
    p = reconcile("g", SPEC, None, None, 0)
    assert p is not None and p.paths == ["a", "b", "c"]


def test_nothing_to_do_when_consistent() -> None:
    assert reconcile("g", SPEC, None, rec(["b", "a", "c"]), 0) is None


def test_era_bump_recommits_same_order() -> None:
    p = reconcile("g", SPEC, None, rec(["b", "a", "c"], era=0), 1)
    assert p is not None and p.paths == ["b", "a", "c"] and "era" in p.reason


def test_definition_change_keeps_active_and_adds_new_paths() -> None:
    spec = GroupSpec.model_validate(
        {"name": "g", "paths": [{"name": n, "endpoints": {"default": "h:1"}} for n in ("a", "b", "d")]}
    )
    p = reconcile("g", spec, None, rec(["b", "c", "a"]), 0)
    assert p is not None and p.paths == ["b", "a", "d"]


def test_drained_active_path_is_left() -> None:
    p = reconcile("g", SPEC, ControlsSpec(drained=["a"]), rec(["a", "b", "c"]), 0)
    assert p is not None and p.paths == ["b", "c"]


def test_halt_and_resume() -> None:
    p = reconcile("g", SPEC, ControlsSpec(halted=True, operator="op", reason="why"), rec(["a", "b", "c"]), 0)
    assert p is not None and p.paths == [] and "op" in p.reason
    assert reconcile("g", SPEC, ControlsSpec(halted=True), rec([]), 0) is None
    p = reconcile("g", SPEC, ControlsSpec(), rec([]), 0)
    assert p is not None and p.paths == ["a", "b", "c"]


def test_drained_active_path_moves_to_the_pin_and_a_drained_pin_holds_nothing() -> None:
    p = reconcile("g", SPEC, ControlsSpec(drained=["a"], pinned="c"), rec(["a", "b", "c"]), 0)
    assert p is not None and p.paths == ["c", "b"]
    p = reconcile("g", SPEC, ControlsSpec(drained=["a"], pinned="a"), rec(["a", "b", "c"]), 0)
    assert p is not None and p.paths == ["b", "c"]
