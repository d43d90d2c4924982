from __future__ import annotations

import pytest

from failover.venue.book import Book, OrderNotOpen, UnknownOrder
from failover.venue.faults import FaultKind, FaultSet
from failover.wire.protocol import OrderState


def test_duplicate_clordid_rejected_wherever_it_arrives() -> None:
    book = Book()
    first = book.new("c1", "host-a", gateway="primary")
    assert first.accepted and first.order_id == "O1"
    again = book.new("c1", "host-a", gateway="backup")
    assert not again.accepted and again.duplicate and "duplicate" in again.reason
    other_sender = book.new("c1", "host-b")
    assert other_sender.duplicate
    # a cancel request cannot reuse an order's clordid either
    assert book.cancel("c1", "c1", "host-a").duplicate
    assert (book.orders, book.duplicates, book.open_orders) == (1, 3, 1)
    assert book.status("c1") == (OrderState.ACKED, "O1")


def test_status_states() -> None:
    book = Book()
    for c in ("o1", "o2", "o3"):
        book.new(c, "host-a")
    ok = book.cancel("x1", "o1", "host-a")
    assert ok.accepted and ok.order_id == "O1"
    bad = book.cancel("x2", "o1", "host-a")
    assert not bad.accepted and not bad.duplicate and "cancelled" in bad.reason
    book.fill("o2", 5)
    assert book.status("o1") == (OrderState.CANCELLED, "O1")
    assert book.status("o2") == (OrderState.FILLED, "O2")
    assert book.status("o3") == (OrderState.ACKED, "O3")
    assert book.status("x1") == (OrderState.ACKED, "O1")
    assert book.status("x2") == (OrderState.REJECTED, "O1")
    assert book.status("nope") == (OrderState.UNKNOWN, None)
    assert book.get("o2") is not None and book.get("o2").filled_qty == 5  # type: ignore[union-attr]
    assert book.open_orders == 1 and book.cancels == 1


def test_cancel_rules() -> None:
    book = Book()
    book.new("o1", "host-a")
    assert "another sender" in book.cancel("x1", "o1", "host-b").reason
    assert "unknown order" in book.cancel("x2", "missing", "host-a").reason
    assert "unknown order" in book.cancel("x3", "x1", "host-a").reason  # a cancel request is not an order
    assert book.status("o1")[0] is OrderState.ACKED


def test_events_need_an_open_order() -> None:
    book = Book()
    book.new("o1", "host-a")
    book.cancel("x1", "o1", "host-a")
    with pytest.raises(UnknownOrder):
        book.fill("missing", 1)
    with pytest.raises(OrderNotOpen, match="already cancelled"):
        book.fill("o1", 1)
    with pytest.raises(OrderNotOpen, match="cancel request"):
        book.unsolicited_cancel("x1")
    book.new("o2", "host-a")
    entry = book.unsolicited_cancel("o2", "risk")
    assert entry.state is OrderState.CANCELLED and entry.reason == "risk"
    assert book.owner("o2") == "host-a" and book.owner("zzz") is None


def test_cancel_on_disconnect_by_sender_or_session() -> None:
    book = Book()
    book.new("a1", "host-a", session="primary-1")
    book.new("a2", "host-a", session="backup-2")
    book.new("a3", "host-a", session="primary-1")
    book.fill("a3", 1)
    book.new("b1", "host-b", session="primary-3")
    cancelled = book.cancel_open_orders("host-a", "primary-1")
    assert [e.clordid for e in cancelled] == ["a1"]
    assert book.status("a1")[0] is OrderState.CANCELLED
    assert book.get("a1").reason == "cancel on disconnect"  # type: ignore[union-attr]
    assert book.status("a2")[0] is OrderState.ACKED
    assert [e.clordid for e in book.cancel_open_orders("host-a")] == ["a2"]
    assert book.status("b1")[0] is OrderState.ACKED
    assert book.open_orders == 1


def test_fault_set_rules() -> None:
    faults = FaultSet()
    faults.apply(FaultKind.STALL, "host-a")
    faults.apply(FaultKind.SLOW, None, 100)
    faults.apply(FaultKind.SLOW, "host-b", 300)
    assert faults.stalled("host-a") and not faults.stalled("host-b") and not faults.stalled(None)
    assert faults.delay_ms(None) == 100 and faults.delay_ms("host-b") == 300
    assert faults.describe() == ["slow(100ms)", "stall@host-a", "slow(300ms)@host-b"]
    faults.apply(FaultKind.RECOVER, "host-a")
    assert faults.describe() == ["slow(100ms)", "slow(300ms)@host-b"]
    with pytest.raises(ValueError, match="delay_ms"):
        faults.apply(FaultKind.SLOW, None, 0)
    faults.apply(FaultKind.RESET)
    assert faults.gateway_reset() and faults.reset("anyone")
    faults.recover()
    assert faults.describe() == []
    assert FaultKind.parse("logon-refused") is FaultKind.LOGON_REFUSED
    with pytest.raises(ValueError, match="expected one of"):
        FaultKind.parse("explode")
