"""`failover sync`, `sidecars` and `watch` against a real cluster with Sync streams as sidecars."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest

from tests.harness import ReplicaSet, switch, wait_for
from tests.procs import REPO, cli
from tests.syncclient import SyncClient

pytestmark = pytest.mark.cluster

GROUP = "cme-orders"


async def _fleet(rs: ReplicaSet, n: int, **kw: object) -> list[SyncClient]:
    clients = []
    for i in range(n):
        sc = SyncClient(f"h{i:02d}", [GROUP], **kw)  # type: ignore[arg-type]
        await sc.connect(rs.address(i % 2))
        clients.append(sc)
    return clients


async def test_sync_waits_for_the_last_ack_and_names_the_laggard(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    clients: list[SyncClient] = []
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the initial decision")
        clients = await _fleet(rs, 5)
        late = SyncClient("h99", [GROUP])
        await late.connect(rs.address(1))
        clients.append(late)
        for sc in clients:
            await sc.wait(lambda sc=sc: bool(sc.decisions), 10, "first decision")
        addrs = f"{rs.address(0)},{rs.address(1)}"
        r = await asyncio.to_thread(cli, "sync", GROUP, "--wait", "-c", addrs, "--page-size", "2")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "6 of 6 sidecars applied it" in r.stdout

        # h99 stops acking: a new decision reaches it, --wait times out naming it (and only it).
        late.auto_ack = False
        await switch(rs.address(0), GROUP, "backup")
        await late.wait(lambda: len(late.decisions) == 2, 10, "the switch")
        r = await asyncio.to_thread(cli, "sync", GROUP, "--wait", "--timeout", "2", "-c", addrs)
        assert r.returncode == 1, (r.stdout, r.stderr)
        err = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error: timed out after 2 s: 1 sidecar(s)"), r.stderr
        assert err[0].endswith(": h99"), r.stderr
        assert "5 of 6 sidecars applied it; behind: h99" in r.stdout
        r = await asyncio.to_thread(cli, "sync", GROUP, "--json", "-c", addrs, "--page-size", "2")
        assert r.returncode == 1, r.stderr  # without --wait: the answer now, exit 1 while any is behind
        rep = json.loads(r.stdout)
        assert [b["host_id"] for b in rep["behind"]] == ["h99"] and len(rep["applied"]) == 5

        # --wait returns 0 once the last sidecar acks.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "failover.cli", "sync", GROUP, "--wait", "--timeout", "20",
            "-c", addrs, "--page-size", "2", cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        # Give it time to poll while h99 is still behind (the test passes either way).
        await asyncio.sleep(0.5)
        late.ack(GROUP, late.held[GROUP])
        out, errb = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, errb.decode()
        assert "6 of 6 sidecars applied it" in out.decode()

        # A stopped sidecar is no longer connected: it is not counted, the others are in sync.
        await late.close()
        clients.remove(late)
        r = await asyncio.to_thread(cli, "sync", GROUP, "--wait", "--timeout", "20", "-c", addrs)
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "5 of 5 sidecars applied it" in r.stdout
    finally:
        for sc in clients:
            await sc.close()
        await rs.stop_all()


async def test_sidecars_lists_every_host_across_pages(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    clients: list[SyncClient] = []
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the initial decision")
        clients = await _fleet(rs, 7)
        for sc in clients:
            await sc.wait(lambda sc=sc: bool(sc.decisions), 10, "first decision")
        clients[3].report({(GROUP, "primary"): 2, (GROUP, "backup"): 1})
        r1 = rs.replicas[1]
        assert r1 is not None
        await wait_for(
            lambda: any(s.host_id == "h03" and s.health for s in r1.hub.sidecar_statuses()),
            10,
            "h03's report",
        )
        addrs = f"127.0.0.1:1,{rs.address(0)}"  # the first address does not answer
        r = await asyncio.to_thread(cli, "sidecars", "--json", "-c", addrs, "--page-size", "2")
        assert r.returncode == 0, r.stderr
        hosts = json.loads(r.stdout)["hosts"]
        assert [h["host_id"] for h in hosts] == [f"h{i:02d}" for i in range(7)]
        assert {h["replica"] for h in hosts} == {"c1", "c2"}
        assert all(h["groups"][GROUP]["in_sync"] for h in hosts)
        paths = {p["path"]: p["state"] for p in hosts[3]["groups"][GROUP]["paths"]}
        assert paths == {"primary": "down", "backup": "up"}
        r = await asyncio.to_thread(cli, "sidecars", "--group", GROUP, "-c", rs.address(1))
        assert r.returncode == 0, r.stderr
        assert "h06" in r.stdout and "sidecars (7)" in r.stdout
    finally:
        for sc in clients:
            await sc.close()
        await rs.stop_all()


async def test_watch_json_prints_a_change_after_a_switch_and_ctrl_c_exits_130(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    clients: list[SyncClient] = []
    procs: list[asyncio.subprocess.Process] = []
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: GROUP in leader.view.routes, 10, "the initial decision")
        clients = await _fleet(rs, 3)
        for sc in clients:
            await sc.wait(lambda sc=sc: bool(sc.decisions), 10, "first decision")
        addrs = f"{rs.address(0)},{rs.address(1)}"

        async def watcher(*args: str) -> asyncio.subprocess.Process:
            p = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "failover.cli", "watch", *args, "-c", addrs, cwd=REPO,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            procs.append(p)
            return p

        proc = await watcher(GROUP, "--json", "--count", "2", "--interval-ms", "100")
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert first["changed"] == ["era", "groups", "hosts", "leader", "unreachable_replicas"]
        assert first["groups"][GROUP]["paths"][0] == "primary"
        assert sorted(first["hosts"]) == ["h00", "h01", "h02"]
        await switch(rs.address(1), GROUP, "backup")
        second = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert "groups" in second["changed"]
        assert second["groups"][GROUP]["paths"][0] == "backup"
        assert second["groups"][GROUP]["epoch"] != first["groups"][GROUP]["epoch"]
        assert await asyncio.wait_for(proc.wait(), 20) == 0

        # Ctrl-C ends a watch with 130 and no traceback.
        endless = await watcher("--json", "--interval-ms", "100")
        assert endless.stdout is not None and endless.stderr is not None
        await asyncio.wait_for(endless.stdout.readline(), 20)  # it is polling
        endless.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(endless.wait(), 20) == 130
        assert b"Traceback" not in await endless.stderr.read()

        # The live (rich) view; on a pipe it prints each change as it comes.
        r = await asyncio.to_thread(cli, "watch", "--count", "1", "-c", addrs, env={"COLUMNS": "200"})
        assert r.returncode == 0, r.stderr
        assert "decisions and sync" in r.stdout and "backup > primary" in r.stdout and "h02" in r.stdout
        # Without --count, on a pipe, the first screen arrives at once (rich's Live showed
        # nothing until its end, which a watch stopped by a signal never reached).
        piped = await watcher("--interval-ms", "100")
        assert piped.stdout is not None
        lines = []
        async with asyncio.timeout(20):
            while not any("h02" in line for line in lines):
                lines.append((await piped.stdout.readline()).decode())
        assert any("decisions and sync" in line for line in lines), lines
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        for sc in clients:
            await sc.close()
        await rs.stop_all()
