"""Orders a dead path left without a reply are confirmed with the venue over a live path.

A venue process (gateways primary and backup), 3 coordinators, one sidecar. The primary
gateway becomes slow: it books each order at once but answers 3 s later, so the sidecar
declares the line silent with orders the venue has. Asked over the backup, the venue
says it has them: each one's outcome is ACKED, not IN_DOUBT, and the strategy never has
to resolve it. A line that stalls reads nothing: what it was sent is unknown to the venue
and stays IN_DOUBT (an order the venue does not know may still be on its way), unless
the sidecar resends it (``orders.resend_in_doubt``): then the backup carries a second
copy under the same client order id, the venue books it once, and refuses the first
copy when the stalled line is read again.
"""

from __future__ import annotations

import asyncio

import pytest
from failover_client.api import OutcomeKind, Sidecar

from tests.sidecar_integration.harness import (
    GROUP,
    STRATEGY,
    outcome_counters,
    standard,
    system,
    until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

N = 5
WAIT_S = 15.0  # each outcome is due within a silence limit (150 ms) and a status round trip


async def _send_after_fault(s, sock: str, kind: str, delay_ms: int = 0):  # type: ignore[no-untyped-def]
    async with await Sidecar.connect(sock, STRATEGY) as sc:
        warm = await asyncio.wait_for(sc.send(GROUP, '{"warm":1}'), WAIT_S)
        assert warm.kind == OutcomeKind.ACKED and warm.path == "primary", warm
        await s.fault("primary", kind, delay_ms=delay_ms)
        futs = [sc.submit(GROUP, f'{{"n":{i}}}')[1] for i in range(N)]
        return [await asyncio.wait_for(f, WAIT_S) for f in futs]


async def test_orders_the_venue_has_are_acked_after_the_line_goes_silent(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",))
        outcomes = await _send_after_fault(s, s.sidecars["h1"].socket, "slow", delay_ms=3000)
        kinds = [OutcomeKind.name(o.kind) for o in outcomes]
        assert kinds == ["ACKED"] * N, [(k, o.reason) for k, o in zip(kinds, outcomes, strict=True)]
        for o in outcomes:
            assert o.path == "primary" and "the venue has it" in o.reason and "backup" in o.reason, o
            assert o.venue_order_id, o
        st = await s.status("h1")
        counters = outcome_counters(st)
        assert counters["in_doubt"] == 0 and counters["acked"] == N + 1, counters


async def test_orders_a_stalled_line_never_read_stay_in_doubt(tmp_path, etcd_cluster, prefix) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",))
        outcomes = await _send_after_fault(s, s.sidecars["h1"].socket, "stall")
        kinds = {OutcomeKind.name(o.kind) for o in outcomes}
        # Written to the stalled primary: unknown to the venue, so in doubt. Any written
        # after the flip went to the backup and were acked there.
        assert kinds <= {"IN_DOUBT", "ACKED"} and "IN_DOUBT" in kinds, [(o.kind, o.reason) for o in outcomes]
        for o in outcomes:
            if o.kind == OutcomeKind.IN_DOUBT:
                assert o.path == "primary" and "the venue has it" not in o.reason, o
            else:
                assert o.path == "backup", o


async def test_orders_a_stalled_line_held_are_resent_on_the_backup_and_booked_once(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, ("h1",), sidecar={"orders": {"resend_in_doubt": True}})
        before = await s.counters()
        outcomes = await _send_after_fault(s, s.sidecars["h1"].socket, "stall")
        kinds = [OutcomeKind.name(o.kind) for o in outcomes]
        assert kinds == ["ACKED"] * N, [(k, o.reason) for k, o in zip(kinds, outcomes, strict=True)]
        resent = [o for o in outcomes if o.reason.startswith("resent on backup after primary died")]
        assert resent, [o.reason for o in outcomes]  # at least the first went to the stalled line
        for o in outcomes:
            assert o.path == "backup" and o.venue_order_id, o
        counters = outcome_counters(await s.status("h1"))
        assert counters["resent"] == len(resent) and counters["in_doubt"] == 0, counters
        # The stalled line is read again: the first copies that reached the venue's socket
        # are refused as duplicates (those still in our socket when it was closed never
        # arrive), and nothing is booked twice.
        await s.fault("primary", "recover")
        after = await until(
            s.counters,
            lambda c: c.duplicates > before.duplicates,
            "the venue refusing a first copy",
            timeout=WAIT_S,
        )
        assert after.duplicates - before.duplicates <= len(resent), (before, after)
        assert after.orders - before.orders == N + 1, (before, after)  # the warm-up order and N
