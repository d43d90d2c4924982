"""The observing invariant checker: each numbered rule holds and breaks where it should."""

from __future__ import annotations

from failover.faults.invariants import Checker, RouteView

UP, DOWN = True, False
PB = ("primary", "backup")


def view(
    t: float,
    eff: str,
    epoch: tuple[int, int] | None = (1, 10),
    paths=PB,
    host="h1",
    seq: dict[str, int] | None = None,
    **health: bool | None,
) -> RouteView:
    halted = epoch is not None and not paths
    return RouteView(host, "g", t, eff, paths, epoch, halted=halted, health=health, seq=seq or {})


def rules(c: Checker) -> list[int]:
    return [v.rule for v in c.violations]


def test_clean_failover_and_failback_hold() -> None:
    c = Checker(hold_down_s=1.0, grace_s=0.2)
    c.route(view(0.0, "primary", primary=UP, backup=UP))
    c.route(view(0.1, "backup", primary=DOWN, backup=UP))
    c.route(view(0.5, "backup", primary=UP, backup=UP))  # healthy again: in hold-down
    c.route(view(1.6, "primary", primary=UP, backup=UP))
    c.route(view(2.0, "backup", (1, 12), ("backup", "primary"), primary=UP, backup=UP))
    assert c.violations == []


def test_rule1_path_outside_order_or_routing_while_halted() -> None:
    c = Checker()
    c.route(view(0.0, "other", primary=UP))
    c.route(view(0.1, "primary", (1, 11), ()))
    c.route(view(0.2, "primary", None))
    assert rules(c) == [1, 1, 1]


def test_rule2_unhealthy_choice_and_stuck_below_healthy_path() -> None:
    c = Checker(hold_down_s=0.5, grace_s=0.2)
    c.route(view(0.0, "primary", primary=DOWN, backup=UP))
    assert rules(c) == [2]
    c.route(view(1.0, "backup", primary=UP, backup=UP))
    c.route(view(1.6, "backup", primary=UP, backup=UP))  # 0.6 s: within hold-down + grace
    assert rules(c) == [2]
    c.route(view(1.8, "backup", primary=UP, backup=UP))  # 0.8 s: stuck
    assert rules(c) == [2, 2]


def test_rule2_a_down_and_up_between_two_polls_restarts_the_hold_down() -> None:
    """Seen in a 10-minute soak on a loaded machine: the primary in use went down (a false
    silence) and logged on again within ~90 ms, between two polls. Both polls saw it UP; only
    its health ``seq`` moved. The host rightly sat out the hold-down on the backup; the checker
    must count "healthy" from the poll that saw the new session, not from before the blip."""
    c = Checker(hold_down_s=1.0, grace_s=0.5)
    c.route(view(0.0, "primary", seq={"primary": 7, "backup": 3}, primary=UP, backup=UP))
    c.route(view(8.0, "primary", seq={"primary": 7, "backup": 3}, primary=UP, backup=UP))
    # primary: DOWN (8), CONNECTING (9), UP (10), all between these two polls
    c.route(view(8.2, "backup", seq={"primary": 10, "backup": 3}, primary=UP, backup=UP))
    c.route(view(9.6, "backup", seq={"primary": 10, "backup": 3}, primary=UP, backup=UP))  # 1.4 s: in bound
    assert c.violations == []
    c.route(view(9.8, "backup", seq={"primary": 10, "backup": 3}, primary=UP, backup=UP))  # 1.6 s: stuck
    assert rules(c) == [2]
    assert "healthy for 1.60s" in c.violations[0].detail


def test_rule2_stuck_below_a_path_up_all_along_still_flags_with_seq() -> None:
    """The real defect stays visible: the same session (same ``seq``) up all along, host below it."""
    c = Checker(hold_down_s=1.0, grace_s=0.5)
    c.route(view(0.0, "backup", seq={"primary": 7, "backup": 3}, primary=UP, backup=UP))
    c.route(view(1.4, "backup", seq={"primary": 7, "backup": 3}, primary=UP, backup=UP))
    assert c.violations == []
    c.route(view(1.6, "backup", seq={"primary": 7, "backup": 3}, primary=UP, backup=UP))
    assert rules(c) == [2]


def test_rule2_a_restarted_sidecar_counts_its_paths_healthy_afresh() -> None:
    """A sidecar restarted between polls numbers its sessions from the start again: a new
    session, healthy for the first time (no hold-down on the host), but never longer than seen."""
    c = Checker(hold_down_s=1.0, grace_s=0.5)
    c.route(view(0.0, "primary", seq={"primary": 9, "backup": 3}, primary=UP, backup=UP))
    c.route(view(5.0, "backup", seq={"primary": 2, "backup": 2}, primary=UP, backup=UP))
    assert c.violations == []


def test_rule2_nothing_healthy_any_path_of_the_order() -> None:
    c = Checker()
    c.route(view(0.0, "primary", primary=DOWN, backup=DOWN))
    c.route(view(0.1, "backup", primary=None, backup=DOWN))
    assert c.violations == []


def test_rule3_epoch_never_goes_back_but_an_era_bump_is_newer() -> None:
    c = Checker()
    c.route(view(0.0, "primary", (1, 10), primary=UP))
    c.route(view(0.1, "primary", (2, 3), primary=UP))
    assert c.violations == []
    c.route(view(0.2, "primary", (2, 2), primary=UP))
    assert rules(c) == [3]


def test_rule4_same_epoch_two_orders_across_hosts() -> None:
    c = Checker()
    c.route(view(0.0, "primary", (1, 10), host="h1", primary=UP, backup=UP))
    c.route(view(0.0, "backup", (1, 10), ("backup", "primary"), host="h2", primary=UP, backup=UP))
    assert rules(c) == [4]


def test_rule5_exactly_one_outcome() -> None:
    c = Checker(outcome_bound_s=2.0)
    c.sent(("h1", "s", 1), 0.0)
    c.sent(("h1", "s", 2), 0.0)
    c.sent(("h1", "s", 3), 9.5)
    c.outcome(("h1", "s", 1), "ACKED", 0.1, "h1-s-1")
    c.outcome(("h1", "s", 1), "IN_DOUBT", 0.2)
    c.outcome(("h1", "s", 9), "ACKED", 0.3)
    rep = c.finish(10.0)
    assert [v.rule for v in rep.violations] == [5, 5, 5]  # second outcome, never sent, order 2 missing
    assert rep.outcomes == {"ACKED": 1, "REJECTED": 0, "IN_DOUBT": 0, "NO_PATH": 0, "pending": 2}


def test_rule6_client_order_id_twice_and_venue_counter() -> None:
    c = Checker()
    c.sent(("h1", "s", 1), 0.0)
    c.sent(("h2", "s", 1), 0.0)
    c.outcome(("h1", "s", 1), "ACKED", 0.1, "X")
    c.outcome(("h2", "s", 1), "ACKED", 0.1, "X")
    c.venue(0.2, 0)
    c.venue(0.3, 0)
    c.venue(0.4, 2)
    assert rules(c) == [6, 6]


def test_rule7_static_stability_only_when_the_data_plane_is_quiet() -> None:
    c = Checker(grace_s=0.5, recovery_s=1.0)
    c.control_plane(10.0, up=False)
    c.route(view(10.2, "backup", primary=DOWN, backup=UP))  # within grace: not judged
    c.route(view(10.6, "backup", primary=DOWN, backup=UP))  # a blip: down for 0.4 s
    assert rules(c) == []
    c.route(view(11.3, "backup", primary=DOWN, backup=UP))  # down for 1.1 s: not kept warm
    assert rules(c) == [7]
    c.data_plane_fault(11.1, active=True)
    c.route(view(11.5, "backup", primary=DOWN, backup=UP))
    c.sent(("h1", "s", 1), 11.5)
    c.outcome(("h1", "s", 1), "NO_PATH", 11.6)
    c.data_plane_fault(12.0, active=False)
    c.route(view(12.5, "backup", primary=DOWN, backup=UP))  # still recovering
    assert rules(c) == [7]
    c.sent(("h1", "s", 2), 14.0)
    c.outcome(("h1", "s", 2), "NO_PATH", 14.0)
    c.control_plane(15.0, up=True)
    c.route(view(15.1, "backup", primary=DOWN, backup=UP))
    assert rules(c) == [7, 7]


def test_rule2_a_down_blip_between_two_samples_restarts_the_hold_down() -> None:
    """The observer samples; a path that went down and up between two samples is UP in both,
    but its change sequence moved on: its hold-down starts again (no false 'stuck')."""
    c = Checker(hold_down_s=1.0, grace_s=0.2)

    def v(t: float, eff: str, seq: int) -> RouteView:
        return RouteView(
            "h1",
            "g",
            t,
            eff,
            PB,
            (1, 10),
            health={"primary": UP, "backup": UP},
            seq={"primary": seq, "backup": 1},
        )

    c.route(v(0.0, "primary", 3))
    c.route(v(5.0, "backup", 5))  # primary went down and came back since the last sample
    c.route(v(5.9, "backup", 5))  # in its hold-down again
    assert c.violations == []
    c.route(v(6.5, "backup", 5))  # 1.5 s since it was seen back: stuck
    assert rules(c) == [2]


def test_rule2_a_path_that_died_right_after_its_failback_waits_a_doubled_hold_down() -> None:
    """The sidecar doubles the hold-down of a path that dies again within its hold-down of
    being taken back (client/failover_sidecar/route.py, rule 5); the checker allows the same."""
    c = Checker(hold_down_s=1.0, grace_s=0.2)
    c.route(view(0.0, "primary", primary=UP, backup=UP))
    c.route(view(0.1, "backup", primary=DOWN, backup=UP))
    c.route(view(0.2, "backup", primary=UP, backup=UP))
    c.route(view(1.3, "primary", primary=UP, backup=UP))  # failback after 1 s
    c.route(view(1.4, "backup", primary=DOWN, backup=UP))  # died 0.1 s later: doubled
    c.route(view(1.5, "backup", primary=UP, backup=UP))
    c.route(view(3.0, "backup", primary=UP, backup=UP))  # 1.5 s in: within 2 s + grace
    assert c.violations == []
    c.route(view(3.8, "backup", primary=UP, backup=UP))  # 2.3 s in: past 2 s + grace
    assert rules(c) == [2]


def test_rule2_a_path_that_served_past_its_hold_down_is_back_to_the_base() -> None:
    c = Checker(hold_down_s=1.0, grace_s=0.2)
    c.route(view(0.0, "primary", primary=UP, backup=UP))
    c.route(view(0.1, "backup", primary=DOWN, backup=UP))
    c.route(view(0.2, "backup", primary=UP, backup=UP))
    c.route(view(1.3, "primary", primary=UP, backup=UP))
    c.route(view(5.0, "backup", primary=DOWN, backup=UP))  # served 3.7 s: no doubling
    c.route(view(5.1, "backup", primary=UP, backup=UP))
    c.route(view(6.5, "backup", primary=UP, backup=UP))  # 1.4 s in: past 1 s + grace
    assert rules(c) == [2]


def test_rule2_a_new_order_starts_every_path_afresh() -> None:
    c = Checker(hold_down_s=1.0, grace_s=0.2)
    c.route(view(0.0, "primary", primary=UP, backup=UP))
    c.route(view(0.1, "backup", primary=DOWN, backup=UP))
    c.route(view(0.2, "backup", primary=UP, backup=UP))
    c.route(view(1.3, "primary", primary=UP, backup=UP))
    c.route(view(1.4, "backup", primary=DOWN, backup=UP))  # doubled
    c.route(view(1.5, "backup", (1, 11), ("backup", "primary"), primary=DOWN, backup=UP))
    c.route(view(1.6, "backup", (1, 12), PB, primary=DOWN, backup=UP))  # switched back: afresh
    c.route(view(1.7, "backup", (1, 12), PB, primary=UP, backup=UP))
    c.route(view(3.1, "backup", (1, 12), PB, primary=UP, backup=UP))  # 1.4 s: past 1 s + grace
    assert rules(c) == [2]
