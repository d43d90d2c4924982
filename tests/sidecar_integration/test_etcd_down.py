"""Static stability: etcd stopped entirely, sidecars restarted meanwhile, routing goes on."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest
from failover_client.api import OutcomeKind

from tests.sidecar_integration.harness import (
    GROUP,
    OrderFlow,
    System,
    all_up,
    epoch_of,
    gateway,
    route_of,
    standard,
    system,
    until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HOSTS = ("h1", "h2", "h3")


async def _logons(s: System) -> dict[str, dict[str, int]]:
    c = await s.counters()
    return {gw: dict(gateway(c, gw).logons_by_session) for gw in ("primary", "backup")}


async def _stored_revision(path: Path) -> int:
    """The revision of the decision in a sidecar's state file (0: none yet)."""
    try:
        data = json.loads(await asyncio.to_thread(path.read_text))
        return int(data["decisions"][GROUP]["epoch"]["revision"])
    except (OSError, ValueError, KeyError):
        return 0


async def _one_order(s: System, host: str) -> None:
    flow = OrderFlow(host, s.sidecars[host].socket)
    await flow.open()
    try:
        outcome = await flow.send_one()
    finally:
        await flow.close()
    assert outcome.kind == OutcomeKind.ACKED and outcome.path == "backup", (host, outcome)


async def _comes_back_on_stored_route(s: System, host: str, epoch: tuple[int, int], connected: bool | None):
    before = await _logons(s)
    await s.restart_sidecar(host)
    st = await s.wait_sidecar(
        host,
        lambda st: route_of(st).effective_path == "backup" and all_up(route_of(st)),
        "back on its stored route (backup) with both paths logged on",
    )
    r = route_of(st)
    assert epoch_of(r) == epoch and list(r.decision_paths) == ["backup", "primary"], r
    if connected is not None:
        assert st.control_plane_connected is connected, st
    after = await _logons(s)
    for gw in ("primary", "backup"):  # warm again: one new logon per line for the restarted host only
        expected = dict(before[gw])
        expected[host] = expected.get(host, 0) + 1
        assert after[gw] == expected, (gw, before[gw], after[gw])
    await _one_order(s, host)


async def test_etcd_down_sidecar_restart_keeps_route_and_warm_paths(tmp_path, own_etcd, prefix) -> None:
    async with system(tmp_path, own_etcd.endpoints, prefix) as s:
        # 200 ms heartbeats (silent after 600 ms): this test is about static stability, and its
        # "lines untouched" checks must not depend on a starved venue answering within 150 ms.
        await standard(s, HOSTS, heartbeat_ms=200)
        # A route other than the seeded one, so "stored" cannot be confused with "default".
        d = await s.switch("backup", "before the outage")
        epoch = (d.epoch.era, d.epoch.revision)
        for h in HOSTS:
            await s.wait_sidecar(h, lambda st: epoch_of(route_of(st)) == epoch, "the switch to backup")
            await until(
                functools.partial(_stored_revision, s.sidecars[h].state_file),
                lambda rev: rev == epoch[1],
                f"{h}'s state file to hold the decision",
            )

        for i in range(len(own_etcd.members)):
            await asyncio.to_thread(own_etcd.stop_member, i)

        # Coordinators still run but reach no etcd: h1 restarts while the control plane is blind.
        await _comes_back_on_stored_route(s, "h1", epoch, connected=None)
        # Then no coordinator at all: h2 restarts with nothing but its state file.
        for p in s.coordinators.values():
            await asyncio.to_thread(p.kill)
        await _comes_back_on_stored_route(s, "h2", epoch, connected=False)

        # h3 was never restarted: still routing, its lines untouched since the start.
        st = await s.status("h3")
        assert route_of(st).effective_path == "backup" and all_up(route_of(st)), st
        logons = await _logons(s)
        assert logons["primary"]["h3"] == 1 and logons["backup"]["h3"] == 1, logons
        await _one_order(s, "h3")
        c = await s.counters()
        assert c.duplicates == 0 and gateway(c, "backup").orders == 3, c
