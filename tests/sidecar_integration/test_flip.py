"""Warm backup lines and local failover with real processes.

etcd (session cluster), 3 coordinator processes, a venue process (gateways
primary and backup) and 3 sidecar processes h1..h3 on one site.
"""

from __future__ import annotations

import json
import time

import pytest
from failover_client.api import OutcomeKind

from failover.v1 import sidecar_pb2 as spb
from tests.sidecar_integration.harness import (
    OrderFlow,
    gateway,
    outcome_counters,
    route_of,
    run_cli,
    standard,
    system,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HOSTS = ("h1", "h2", "h3")


async def test_backup_is_logged_on_before_any_fault_and_a_flip_opens_no_connection(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, HOSTS)
        venue = s.venues["venue"]
        # Warm means warm: the venue's own counters (read through the CLI) show every host
        # logged on to the backup gateway before anything failed.
        code, out, err = await run_cli("venue", "counters", "--control", venue.control, "--json")
        assert code == 0, err
        before = {g["name"]: g for g in json.loads(out)["gateways"]}
        backup = before["backup"]
        assert set(backup["logons_by_session"]) == set(HOSTS), backup
        assert backup["active_sessions"] == len(HOSTS), backup
        assert backup["orders"] == 0 and before["primary"]["faults"] == [], before
        side_before = {}
        for h in HOSTS:
            st = await s.status(h)
            r = route_of(st)
            assert r.effective_path == "primary" and not r.deviates, r
            side_before[h] = int(st.counters["connections_opened.cme-orders.backup"])
            assert side_before[h] == 1, st.counters

        faulted_ns = time.monotonic_ns()
        await s.fault("primary", "reset")
        flips = {}
        for h in HOSTS:
            st = await s.wait_route(h, "backup", up=False)
            flips[h] = list(st.flips)
        _check_moved(flips, "reset", faulted_ns)
        # Use the backup (an order acked there per host), then look at the counters again.
        for h in HOSTS:
            flow = OrderFlow(h, s.sidecars[h].socket)
            await flow.open()
            try:
                outcome = await flow.send_one()
            finally:
                await flow.close()
            assert outcome.kind == OutcomeKind.ACKED and outcome.path == "backup", outcome
        after = await s.counters()
        gb = gateway(after, "backup")
        assert gb.connections_opened == backup["connections_opened"], "the flip opened a backup connection"
        assert gb.logons == backup["logons"], "the flip logged on to the backup again"
        assert gb.orders == len(HOSTS)
        for h in HOSTS:
            st = await s.status(h)
            assert int(st.counters["connections_opened.cme-orders.backup"]) == side_before[h], (
                h,
                st.counters,
            )


@pytest.mark.parametrize("kind", ["reset", "stall"])
async def test_gateway_fault_moves_every_sidecar_and_orders_get_one_outcome(
    tmp_path, etcd_cluster, prefix, kind
) -> None:
    """Hard (reset) and silent (stall) failure of the primary gateway while orders flow."""
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, HOSTS)
        flows = {h: OrderFlow(h, s.sidecars[h].socket, interval_s=0.005) for h in HOSTS}
        try:
            for f in flows.values():
                await f.open()
                f.start()
            t0 = time.monotonic_ns()
            for f in flows.values():
                await f.until_acked("primary", t0, 3)
            faulted_ns = time.monotonic_ns()
            await s.fault("primary", kind)
            seen_on_backup: dict[str, int] = {}
            for h in HOSTS:
                await s.wait_route(h, "backup", up=False)
                seen_on_backup[h] = time.monotonic_ns()
            for h, f in flows.items():
                await f.until_acked("backup", seen_on_backup[h], 10)
            for f in flows.values():
                await f.stop()
        finally:
            for f in flows.values():
                await f.close()

        cause = "reset" if kind == "reset" else "silent"
        total_acked = total_in_doubt = 0
        flips = {}
        for h, f in flows.items():
            st = await s.status(h)
            r = route_of(st)
            assert r.effective_path == "backup", r
            flips[h] = list(st.flips)
            # Exactly one outcome per order: every future resolved, and the sidecar's own
            # outcome counters add up to what it was given, kind by kind.
            kinds = f.kinds()
            counters = outcome_counters(st)
            assert counters["submitted"] == len(f.sent), (h, counters, len(f.sent))
            assert sum(v for k, v in counters.items() if k != "submitted") == counters["submitted"], counters
            assert kinds.get("ACKED", 0) == counters["acked"], (kinds, counters)
            assert kinds.get("IN_DOUBT", 0) == counters["in_doubt"], (kinds, counters)
            assert kinds.get("REJECTED", 0) == 0 and kinds.get("NO_PATH", 0) == counters["no_path"], kinds
            # Acked orders, in submit order: primary first, then backup, never back.
            paths = [r.outcome.path for r in f.sent if r.outcome.kind == OutcomeKind.ACKED]
            assert set(paths) <= {"primary", "backup"}, set(paths)
            first_backup = paths.index("backup")
            assert all(p == "backup" for p in paths[first_backup:]), f"{h}: acked paths went back: {paths}"
            late = [r for r in f.sent if r.submitted_ns > seen_on_backup[h]]
            assert late and all(
                r.outcome.kind == OutcomeKind.ACKED and r.outcome.path == "backup" for r in late
            ), [(OutcomeKind.name(r.outcome.kind), r.outcome.path, r.outcome.reason) for r in late][:10]
            total_acked += counters["acked"]
            total_in_doubt += counters["in_doubt"]
        _check_moved(flips, cause, faulted_ns)
        c = await s.counters()
        assert c.duplicates == 0, c
        assert total_acked <= c.orders <= total_acked + total_in_doubt, (c, total_acked, total_in_doubt)
        assert gateway(c, "backup").orders >= sum(len(f.acked_after("backup", 0)) for f in flows.values())


def _check_moved(flips: dict[str, list[spb.Flip]], cause: str, since_ns: int) -> None:
    """Each host moved primary -> backup exactly once from the fault on (``since_ns``, the
    host's monotonic clock), on its own (local, with the cause) or by decision.

    Only the fault's flips: at a sidecar's start, a backup whose first heartbeat echo comes
    before the primary's takes the route until the failback hold-down brings it back (seen
    once on two loaded cores).

    The coordinated path can beat a host's own detection: the leader decides once a majority
    of hosts reported the primary down (measured here: ~10 ms after a reset), and a host
    that was descheduled for that long on 2 busy cores applies the decision first. The
    hosts whose reports made that majority had flipped locally before reporting, so at
    least a majority of the flips are local.
    """
    local = 0
    for h, fl in flips.items():
        moves = [
            (f.from_path, f.to_path, f.trigger, f.cause)
            for f in fl
            if f.from_path and f.at_monotonic_ns >= since_ns
        ]
        assert moves in ([("primary", "backup", "local", cause)], [("primary", "backup", "decision", "")]), (
            h,
            fl,
        )
        local += moves[0][2] == "local"
    assert local * 2 > len(flips), f"only {local} of {len(flips)} hosts flipped on their own: {flips}"
