"""`failover sync` and `failover sidecars` see every connected sidecar: also one that never acked,
and each with the software version its hello carried.

Real replicas (in this process) on a real etcd, sidecars as Sync streams (and one real
``failover sidecar`` process), the CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from failover.procs import free_port
from tests.harness import ReplicaSet, wait_for
from tests.procs import Proc, cli
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster

GROUP = "cme-orders"


async def test_sync_lists_a_connected_sidecar_that_never_acked(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    clients: list[SyncClient] = []
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the initial decision")
        for i in range(2):
            sc = SyncClient(f"h{i:02d}", [GROUP])
            await sc.connect(rs.address(i))
            clients.append(sc)
        # Connected, subscribed to the group, holds nothing, acks nothing, reports nothing.
        mute = SyncClient("h98", [GROUP], auto_ack=False)
        await mute.connect(rs.address(1))
        clients.append(mute)
        for sc in clients:
            await sc.wait(lambda sc=sc: bool(sc.decisions), 10, "first decision")
        addrs = f"{rs.address(0)},{rs.address(1)}"

        r = await asyncio.to_thread(cli, "sync", GROUP, "--wait", "--timeout", "1", "-c", addrs)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "2 of 3 sidecars applied it; behind: h98 (at nothing)" in r.stdout, r.stdout
        err = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error: timed out after 1 s: 1 sidecar(s)"), r.stderr
        assert err[0].endswith(": h98"), r.stderr

        r = await asyncio.to_thread(cli, "sync", GROUP, "--json", "-c", rs.address(0))
        assert r.returncode == 1, r.stderr
        rep = json.loads(r.stdout)
        assert rep["behind"] == [{"host_id": "h98", "acked": None}] and sorted(rep["applied"]) == [
            "h00",
            "h01",
        ]

        # The replica's default answer (no --hosts) lists it among the hosts needing attention.
        r = await asyncio.to_thread(cli, "sidecars", "--json", "--group", GROUP, "-c", addrs)
        assert r.returncode == 0, r.stderr
        hosts = {h["host_id"]: h for h in json.loads(r.stdout)["hosts"]}
        assert set(hosts) == {"h00", "h01", "h98"}
        assert hosts["h98"]["groups"][GROUP]["acked"] is None
        assert hosts["h98"]["groups"][GROUP]["in_sync"] is False

        # Once it acks, --wait returns 0.
        mute.ack(GROUP, mute.held[GROUP])
        r = await asyncio.to_thread(cli, "sync", GROUP, "--wait", "--timeout", "20", "-c", addrs)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "3 of 3 sidecars applied it" in r.stdout
    finally:
        for sc in clients:
            await sc.close()
        await rs.stop_all()


def _sidecar_config(tmp: Path, coordinator: str) -> Path:
    cfg = {
        "host_id": "real-1",
        "groups": [GROUP],
        "coordinators": [coordinator],
        "state_file": str(tmp / "real-1.state.json"),
        "strategies": ["s1"],
        "listen": {"socket": str(tmp / "real-1.sock")},
    }
    path = tmp / "sidecar.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
async def test_sidecars_shows_the_version_each_sidecar_sent(etcd_cluster, prefix, tmp_path) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    sock_dir = Path("/tmp") / f"fo-ver-{free_port()}"  # short: unix socket path limit
    sock_dir.mkdir()
    proc = Proc("sidecar", ["sidecar", "--config", str(_sidecar_config(sock_dir, rs.address(0)))], tmp_path)
    old = SyncClient("old-1", [GROUP])  # a sidecar that sends no version
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the initial decision")
        await old.connect(rs.address(0))
        proc.start()
        hub = rs.replicas[0]
        assert hub is not None
        await wait_for(
            lambda: any(s.host_id == "real-1" for s in hub.hub.sidecar_statuses()), 30, "the real sidecar"
        )
        r = await asyncio.to_thread(cli, "sidecars", "--json", "-c", rs.address(0))
        assert r.returncode == 0, r.stderr
        hosts = {h["host_id"]: h for h in json.loads(r.stdout)["hosts"]}
        assert hosts["real-1"]["version"] == version("failover")
        assert hosts["old-1"]["version"] == ""
        # Each sidecar process names itself (Hello.instance: a shared host id is told apart).
        assert len(hosts["real-1"]["instance"]) == 12 and hosts["old-1"]["instance"] == ""
        r = await asyncio.to_thread(cli, "sidecars", "-c", rs.address(0), env={"COLUMNS": "250"})
        assert r.returncode == 0, r.stderr
        assert "version" in r.stdout and version("failover") in r.stdout
    finally:
        proc.stop(timeout=10)
        await old.close()
        await rs.stop_all()
        for p in sock_dir.iterdir():
            p.unlink()
        sock_dir.rmdir()
