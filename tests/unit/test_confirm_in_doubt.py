"""Confirming with the venue what a dead path left without a reply (no network: the agent
is built but not started; a scripted session stands for the live path).

Every message gets exactly one outcome: ACKED or REJECTED when the venue says it has it,
IN_DOUBT when it does not know it, does not answer in time, no path can ask, or the
sidecar stops while asking.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from failover_sidecar.ledger import Ledger, LedgerError, Outcome
from failover_sidecar.orders import OrderPath

from failover.v1 import sidecar_pb2 as spb
from failover.wire import protocol as vp
from tests.unit.test_order_limits import make as order_path

WAIT_S = 5.0


class LiveSession:
    """Accepts every write (the status queries) and never answers by itself."""

    can_send = True
    connections_opened = 1

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> bool:
        self.sent.append(msg)
        return True


def make(
    tmp_path, *, live: bool = True, confirm_ms: int = 10_000
) -> tuple[OrderPath, LiveSession, list[Any]]:
    op = order_path(tmp_path, confirm_in_doubt_ms=confirm_ms)
    backup = LiveSession()
    if live:
        op.agent.sessions[("g", "backup")] = backup  # type: ignore[assignment]
    outcomes: list[spb.Outcome] = []
    op.sinks["s1"] = lambda ev: outcomes.append(ev.outcome)
    for i in (1, 2):
        e = op.ledger.submit(("s1", str(i)), "g", 0)
        op.ledger.mark_sent(e, "primary", 0)
    return op, backup, outcomes


async def until(pred: Any) -> None:
    async with asyncio.timeout(WAIT_S):
        while not pred():  # noqa: ASYNC110 - the state is the order path's, with no event to await
            await asyncio.sleep(0.001)


def cid(i: int) -> str:
    return f"h1.s1.{i}"


async def test_what_the_venue_has_is_acked_or_rejected_and_the_rest_stays_in_doubt(tmp_path) -> None:
    op, backup, outcomes = make(tmp_path)
    op._on_path_dead("g", "primary")
    assert op.undelivered() == 2 and op.ledger.unresolved() == 0  # resolved, not delivered yet
    await until(lambda: len(backup.sent) == 2)
    assert {m["clordid"] for m in backup.sent} == {cid(1), cid(2)} and not outcomes
    op._on_venue("g", "backup", vp.status_reply(cid(1), vp.OrderState.FILLED, "V1"))
    op._on_venue("g", "backup", vp.status_reply(cid(2), vp.OrderState.UNKNOWN))
    await until(lambda: len(outcomes) == 2)
    by_id = {o.client_msg_id: o for o in outcomes}
    assert by_id[1].kind == spb.OUTCOME_KIND_ACKED and by_id[1].venue_order_id == "V1", by_id[1]
    assert "the venue has it (filled, asked over backup)" in by_id[1].reason
    assert by_id[2].kind == spb.OUTCOME_KIND_IN_DOUBT and by_id[2].reason == "primary died before the reply"
    assert op.ledger.get(("s1", "1")).outcome is Outcome.ACKED  # type: ignore[union-attr]
    assert op.counters["acked"] == 1 and op.counters["in_doubt"] == 1 and op.counters["confirmed"] == 1
    assert op.undelivered() == 0


async def test_no_answer_in_time_is_in_doubt(tmp_path) -> None:
    op, _, outcomes = make(tmp_path, confirm_ms=20)
    op._on_path_dead("g", "primary")
    await until(lambda: len(outcomes) == 2)
    assert {o.kind for o in outcomes} == {spb.OUTCOME_KIND_IN_DOUBT}


async def test_no_live_path_to_ask_is_in_doubt_at_once(tmp_path) -> None:
    op, _, outcomes = make(tmp_path, live=False)
    op._on_path_dead("g", "primary")
    await until(lambda: len(outcomes) == 2)
    assert {o.kind for o in outcomes} == {spb.OUTCOME_KIND_IN_DOUBT}


async def test_confirmation_off_delivers_in_doubt_inside_the_path_death(tmp_path) -> None:
    op, backup, outcomes = make(tmp_path, confirm_ms=0)
    op._on_path_dead("g", "primary")
    assert [o.kind for o in outcomes] == [spb.OUTCOME_KIND_IN_DOUBT] * 2 and not backup.sent


async def test_a_sidecar_stopping_while_asking_delivers_in_doubt_once(tmp_path) -> None:
    op, backup, outcomes = make(tmp_path)
    runner = asyncio.create_task(op.run())
    op._on_path_dead("g", "primary")
    await until(lambda: len(backup.sent) == 2)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert [o.kind for o in outcomes] == [spb.OUTCOME_KIND_IN_DOUBT] * 2
    # A late answer finds nobody waiting and changes nothing.
    op._on_venue("g", "backup", vp.status_reply(cid(1), vp.OrderState.ACKED, "V1"))
    assert len(outcomes) == 2 and op.ledger.get(("s1", "1")).outcome is Outcome.IN_DOUBT  # type: ignore[union-attr]


def test_the_ledger_confirms_only_an_in_doubt_outcome() -> None:
    ledger = Ledger()
    e = ledger.submit(("s", "1"), "g", 0)
    ledger.mark_sent(e, "p", 0)
    ledger.on_reply(e.key, acked=True)
    with pytest.raises(LedgerError):
        ledger.confirm(e, Outcome.REJECTED, "x")
    f = ledger.submit(("s", "2"), "g", 0)
    ledger.mark_sent(f, "p", 0)
    ledger.on_path_dead("p")
    with pytest.raises(LedgerError):
        ledger.confirm(f, Outcome.NO_PATH, "x")
    ledger.confirm(f, Outcome.REJECTED, "venue: rejected")
    assert f.outcome is Outcome.REJECTED and f.reason == "venue: rejected"
