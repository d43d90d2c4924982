"""The held-epoch restore rule: what a sidecar's hello proves about etcd's history."""

from __future__ import annotations

from coordinator.core.restore_rule import EtcdNow, held_epoch_evidence, worth_checking
from failover.model.spec import Epoch

G = "cme-orders"


def test_route_key_below_the_held_revision_is_a_restore() -> None:
    detail = held_epoch_evidence(G, Epoch(0, 30), EtcdNow(era=0, route_mod_revision=21))
    assert "0:30" in detail and "revision 21" in detail


def test_route_key_at_or_above_the_held_revision_fits_one_history() -> None:
    assert held_epoch_evidence(G, Epoch(0, 30), EtcdNow(0, 30)) == ""
    assert held_epoch_evidence(G, Epoch(0, 30), EtcdNow(0, 45)) == ""


def test_missing_route_key_in_the_held_era_is_a_restore() -> None:
    """The lost first decision: the copy predates the group's first decision."""
    assert "no decision" in held_epoch_evidence(G, Epoch(0, 12), EtcdNow(0, None))


def test_held_era_above_etcds_is_a_restore() -> None:
    assert "era 1" in held_epoch_evidence(G, Epoch(2, 5), EtcdNow(1, 90))


def test_held_era_below_etcds_proves_nothing() -> None:
    """After the bump, sidecars still hold the old era's decisions until the re-commit."""
    assert held_epoch_evidence(G, Epoch(0, 99), EtcdNow(1, 20)) == ""
    assert held_epoch_evidence(G, Epoch(0, 99), EtcdNow(1, None)) == ""


def test_nothing_held_proves_nothing() -> None:
    assert held_epoch_evidence(G, Epoch(0, 0), EtcdNow(0, None)) == ""


def test_only_claims_ahead_of_the_view_are_read_from_etcd() -> None:
    assert not worth_checking(Epoch(0, 20), Epoch(0, 20), 0)
    assert not worth_checking(Epoch(0, 10), Epoch(0, 20), 0)
    assert not worth_checking(Epoch(0, 30), Epoch(0, 20), 1)  # older era than the view's
    assert not worth_checking(Epoch(0, 0), None, 0)
    assert worth_checking(Epoch(0, 30), Epoch(0, 20), 0)
    assert worth_checking(Epoch(0, 30), None, 0)
    assert worth_checking(Epoch(1, 3), Epoch(0, 20), 1)
