"""One host loses its primary line (a per-session fault): it moves alone, and status shows it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from failover_client.api import OutcomeKind

from tests.sidecar_integration.harness import (
    GROUP,
    OrderFlow,
    epoch_of,
    route_of,
    run_cli,
    standard,
    system,
    until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HOSTS = ("h1", "h2", "h3")


def _sidecars_in_status(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for rep in st.get("replicas", []):
        for sc in rep.get("sidecars", []):
            out[sc["host_id"]] = sc
    return out


def _leader_counts(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The leader's path health for GROUP, per path, from `failover status --json`."""
    return {
        j["path"]: j
        for rep in st.get("replicas", [])
        if rep.get("is_leader")
        for j in rep.get("path_health", [])
        if j["group"] == GROUP
    }


async def test_one_host_primary_fault_moves_that_host_only_and_status_shows_the_deviation(
    tmp_path, etcd_cluster, prefix
) -> None:
    async with system(tmp_path, etcd_cluster.endpoints, prefix) as s:
        await standard(s, HOSTS)
        before = {h: await s.status(h) for h in HOSTS}
        decided = epoch_of(route_of(before["h1"]))

        code, out, err = await run_cli(
            "venue", "fault", "--control", s.venues["venue"].control, "--gateway", "primary",
            "--kind", "reset", "--session", "h1",
        )  # fmt: skip
        assert code == 0, err
        st1 = await s.wait_route("h1", "backup", up=False, timeout=5)
        r1 = route_of(st1)
        assert r1.deviates and list(r1.decision_paths) == ["primary", "backup"], r1
        assert "primary down locally" in r1.reason, r1.reason
        moves = [(f.from_path, f.to_path, f.trigger, f.cause) for f in st1.flips if f.from_path]
        assert moves == [("primary", "backup", "local", "reset")], list(st1.flips)

        # The coordinators hear of it: `failover status --json` shows h1 using backup while
        # the decision (unchanged: one host of three is no majority) says primary.
        async def cluster_view() -> dict[str, Any]:
            code, out, err = await run_cli("status", "--json", "--hosts", "-c", s.coordinator_list)
            assert code == 0, err
            return dict(json.loads(out))

        view = await until(
            cluster_view,
            lambda v: _sidecars_in_status(v).get("h1", {}).get("effective", {}).get(GROUP) == "backup",
            "failover status to show h1 on backup",
            interval=0.1,
        )
        group = next(g for g in view["groups"] if g["definition"]["name"] == GROUP)
        assert group["decision"]["paths"] == ["primary", "backup"], group["decision"]
        assert int(group["decision"]["epoch"]["revision"]) == decided[1], group["decision"]
        sidecars = _sidecars_in_status(view)
        assert {h: sidecars[h]["effective"][GROUP] for h in HOSTS} == {
            "h1": "backup",
            "h2": "primary",
            "h3": "primary",
        }, sidecars

        # Why: the leader's policy counts one host of three down on primary, not a majority.
        counted = await until(
            cluster_view,
            lambda v: _leader_counts(v).get("primary", {}).get("down") == 1,
            "the leader to count h1's primary down",
            interval=0.1,
        )
        primary = _leader_counts(counted)["primary"]
        assert (primary["reporting"], primary["up"], primary.get("failing", False)) == (3, 2, False), primary
        assert _leader_counts(counted)["backup"]["up"] == 3, counted

        # The others did not move, and their lines were never touched.
        for h in ("h2", "h3"):
            st = await s.status(h)
            r = route_of(st)
            assert r.effective_path == "primary" and not r.deviates, r
            assert epoch_of(r) == decided, r
            assert list(st.flips) == list(before[h].flips), st.flips
        # Orders: h1's go to the backup, the others' to the primary.
        for h, path in (("h1", "backup"), ("h2", "primary"), ("h3", "primary")):
            flow = OrderFlow(h, s.sidecars[h].socket)
            await flow.open()
            try:
                outcome = await flow.send_one()
            finally:
                await flow.close()
            assert outcome.kind == OutcomeKind.ACKED and outcome.path == path, (h, outcome)
