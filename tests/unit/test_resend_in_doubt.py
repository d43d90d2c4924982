"""Resending what a dead path left without a reply (``orders.resend_in_doubt``).

The ledger rules (pure), then the order path with scripted sessions (no network): the
requeued messages go first to the next path, under the same client order id, ahead of
every later message; the venue's ack makes them ACKED, its duplicate refusal sends the
sidecar to ask what became of the first copy; a message is resent at most once, and one
that finds no path is IN_DOUBT, never NO_PATH (it was written once).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from failover_sidecar.ledger import Ledger, Outcome
from failover_sidecar.orders import OrderPath

from failover.v1 import sidecar_pb2 as spb
from failover.wire import protocol as vp
from tests.unit.test_confirm_in_doubt import LiveSession, cid, until
from tests.unit.test_order_limits import make as order_path
from tests.unit.test_order_limits import msg


def _written(ledger: Ledger, n: int, path: str = "primary") -> list[Any]:
    out = []
    for i in range(1, n + 1):
        e = ledger.submit(("s1", str(i)), "g", 0)
        ledger.mark_sent(e, path, 0)
        out.append(e)
    return out


# --------------------------------------------------------------------------- the ledger


def test_requeued_messages_go_ahead_of_later_ones_in_their_order() -> None:
    ledger = Ledger()
    first = _written(ledger, 2)
    later = ledger.submit(("s1", "3"), "g", 0)
    again, doubt = ledger.requeue("primary", "g")
    assert again == first and doubt == [] and ledger.unresolved() == 3
    assert ledger.next_to_send("g", "backup") == [*first, later]
    for e in ledger.next_to_send("g", "backup"):
        ledger.mark_sent(e, "backup", 1)  # raises on a write out of submit order
    assert [e.resent_from for e in (*first, later)] == ["primary", "primary", None]


def test_a_resent_message_is_acked_with_the_reason_and_never_resent_twice() -> None:
    ledger = Ledger()
    a, b = _written(ledger, 2)
    ledger.requeue("primary", "g")
    for e in (a, b):
        ledger.mark_sent(e, "backup", 1)
    assert ledger.on_reply(a.key, acked=True) is a
    assert a.outcome is Outcome.ACKED and a.reason == "resent on backup after primary died"
    again, doubt = ledger.requeue("backup", "g")  # the second carrier dies too
    assert again == [] and doubt == [b] and b.outcome is Outcome.IN_DOUBT


def test_a_duplicate_refusal_of_a_resent_message_is_in_doubt_not_rejected() -> None:
    ledger = Ledger()
    (a,) = _written(ledger, 1)
    ledger.requeue("primary", "g")
    ledger.mark_sent(a, "backup", 1)
    ledger.on_reply(a.key, acked=False, reason="duplicate clordid 'x'", duplicate=True)
    assert a.outcome is Outcome.IN_DOUBT and "the venue already had it" in a.reason
    # A duplicate refusal of a message sent once is a plain reject (the strategy reused an id).
    b = ledger.submit(("s1", "9"), "g", 0)
    ledger.mark_sent(b, "backup", 1)
    ledger.on_reply(b.key, acked=False, reason="duplicate clordid 'y'", duplicate=True)
    assert b.outcome is Outcome.REJECTED


def test_a_requeued_message_that_finds_no_path_is_in_doubt_never_no_path() -> None:
    ledger = Ledger()
    a, b = _written(ledger, 2)
    fresh = ledger.submit(("s1", "3"), "g", 0)
    ledger.requeue("primary", "g")
    assert ledger.expire(1_000, 500) == [a, b, fresh]
    assert [e.outcome for e in (a, b, fresh)] == [Outcome.IN_DOUBT, Outcome.IN_DOUBT, Outcome.NO_PATH]
    assert "primary died before the reply; not resent: no usable path" in a.reason
    halted = Ledger()
    (c,) = _written(halted, 1)
    halted.requeue("primary", "g")
    assert halted.halt("g") == [c] and c.outcome is Outcome.IN_DOUBT


# --------------------------------------------------------------------------- the order path


def _order_path(tmp_path: Any) -> tuple[OrderPath, LiveSession, list[spb.Outcome]]:
    op = order_path(tmp_path, confirm_in_doubt_ms=10_000)
    op.agent.cfg = op.agent.cfg.model_copy(
        update={"orders": op.agent.cfg.orders.model_copy(update={"resend_in_doubt": True})}
    )
    backup = LiveSession()
    op.agent.sessions[("g", "backup")] = backup  # type: ignore[assignment]
    op.agent.routes["g"] = SimpleNamespace(effective="backup", halted=False)  # type: ignore[assignment]
    outcomes: list[spb.Outcome] = []
    op.sinks["s1"] = lambda ev: outcomes.append(ev.outcome)
    for i in (1, 2):
        e = op.ledger.submit(("s1", str(i)), "g", 0)
        op.ledger.mark_sent(e, "primary", 0)
        op._messages[e.key] = vp.new_order(cid(i), "x")
    return op, backup, outcomes


async def test_the_dead_paths_messages_are_written_first_to_the_next_path(tmp_path) -> None:
    op, backup, outcomes = _order_path(tmp_path)
    op._on_path_dead("g", "primary")
    op.submit("s1", msg(3))
    assert [m["clordid"] for m in backup.sent] == [cid(1), cid(2), cid(3)]
    assert [m["t"] for m in backup.sent] == ["new"] * 3 and op.counters["resent"] == 2
    for i in (1, 2, 3):
        op._on_venue("g", "backup", vp.ack(cid(i), f"V{i}"))
    assert [o.kind for o in outcomes] == [spb.OUTCOME_KIND_ACKED] * 3
    assert [o.path for o in outcomes] == ["backup"] * 3
    assert outcomes[0].reason == "resent on backup after primary died" and outcomes[2].reason == ""
    assert op.undelivered() == 0 and op.counters["in_doubt"] == 0


async def test_a_resend_the_venue_had_is_confirmed_by_a_status_query(tmp_path) -> None:
    op, backup, outcomes = _order_path(tmp_path)
    op._on_path_dead("g", "primary")
    op._on_venue("g", "backup", vp.reject(cid(1), f"{vp.DUPLICATE} {cid(1)!r}"))
    await until(lambda: any(m["t"] == "status" for m in backup.sent))
    assert not outcomes and op.undelivered() == 2
    op._on_venue("g", "backup", vp.status_reply(cid(1), vp.OrderState.ACKED, "V1"))
    await until(lambda: len(outcomes) == 1)
    assert outcomes[0].kind == spb.OUTCOME_KIND_ACKED and outcomes[0].venue_order_id == "V1"
    assert "the venue already had it" in outcomes[0].reason


async def test_without_a_live_path_the_requeued_wait_and_then_are_in_doubt(tmp_path) -> None:
    op, backup, outcomes = _order_path(tmp_path)
    backup.can_send = False
    runner = asyncio.create_task(op.run())
    try:
        op._on_path_dead("g", "primary")
        assert not backup.sent and not outcomes
        await until(lambda: len(outcomes) == 2)  # no_path_wait_ms (500) after their submit
        assert {o.kind for o in outcomes} == {spb.OUTCOME_KIND_IN_DOUBT}
        assert all("not resent" in o.reason for o in outcomes), outcomes
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
