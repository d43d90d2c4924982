"""Leader faults with real coordinator processes: SIGKILL, SIGTERM, SIGSTOP."""

from __future__ import annotations

import signal
import time

import grpc
import pytest
from google.protobuf import json_format

from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.procs import Proc, cli, coordinator_config, status_json

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

TTL_S = 2


def start_cluster(tmp_path, endpoints, prefix, n=3, **extra):
    procs, addrs = [], []
    for i in range(n):
        cfg, addr = coordinator_config(tmp_path, f"c{i + 1}", endpoints, prefix, **extra)
        procs.append(Proc(f"c{i + 1}", ["coordinator", "--config", str(cfg)], tmp_path).start())
        addrs.append(addr)
    return procs, addrs


def _status(address: str) -> dict:
    """GetStatus over a plain (sync) gRPC channel: polling through the CLI would add its start-up time."""
    with grpc.insecure_channel(address) as ch:
        st = admin_pb2_grpc.AdminStub(ch).GetStatus(apb.GetStatusRequest(), timeout=3)
    return json_format.MessageToDict(st, preserving_proto_field_name=True)


def wait_leader(addrs, timeout=15.0, not_id=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for a in addrs:
            try:
                st = _status(a)
            except grpc.RpcError as exc:  # this replica may be the dead one
                last = exc
                continue
            lid = st.get("leader", {}).get("replica_id")
            if lid and lid != not_id:
                return lid, st
        time.sleep(0.01)
    raise AssertionError(f"no leader after {timeout}s ({last})")


def try_switch(addr, path, reason):
    return cli(
        "switch", "cme-orders", path, "--reason", reason, "--operator", "t", "--force", "-c", addr, timeout=20
    )


def stop_all(procs):
    for p in procs:
        p.stop()


def test_leader_sigkill_new_leader_commits_within_ttl_plus_1s(tmp_path, etcd_cluster, prefix) -> None:
    procs, addrs = start_cluster(tmp_path, etcd_cluster.endpoints, prefix)
    try:
        lid, _ = wait_leader(addrs)
        idx = int(lid[1:]) - 1
        survivors = [a for i, a in enumerate(addrs) if i != idx]
        assert try_switch(survivors[0], "backup", "warm-up")
        killed_at = time.monotonic()
        procs[idx].kill()
        # Keep asking a survivor to commit until it does; the replica waits for the election.
        ok = False
        for _ in range(20):
            ok = try_switch(survivors[0], "primary", "after kill")
            if ok:
                break
        took = time.monotonic() - killed_at
        assert ok
        assert took < TTL_S + 1.0, f"new leader committed {took:.2f}s after SIGKILL"
        new_lid, _ = wait_leader(survivors, not_id=lid)
        assert new_lid != lid
    finally:
        stop_all(procs)


def test_graceful_stop_hands_over_well_under_ttl(tmp_path, etcd_cluster, prefix) -> None:
    procs, addrs = start_cluster(tmp_path, etcd_cluster.endpoints, prefix)
    try:
        lid, _ = wait_leader(addrs)
        idx = int(lid[1:]) - 1
        survivors = [a for i, a in enumerate(addrs) if i != idx]
        stopped_at = time.monotonic()
        assert procs[idx].stop() == 0, procs[idx].log()[-2000:]
        new_lid, _ = wait_leader(survivors, not_id=lid)
        took = time.monotonic() - stopped_at
        assert took < TTL_S / 2, f"hand-over took {took:.2f}s"
        assert "revok" not in procs[idx].log().lower() or "failed" not in procs[idx].log().lower()
    finally:
        stop_all(procs)


def test_frozen_leader_with_queued_switch_is_fenced_out(tmp_path, etcd_cluster, prefix) -> None:
    """SIGSTOP the leader just before its transaction goes out; after SIGCONT etcd must refuse it."""
    procs, addrs = start_cluster(
        tmp_path, etcd_cluster.endpoints, prefix, n=2, test_hooks={"hold_before_commit_ms": 1500}
    )
    try:
        lid, st = wait_leader(addrs)
        idx = int(lid[1:]) - 1
        other = 1 - idx
        before = {g["definition"]["name"]: g.get("decision", {}) for g in st["groups"]}["cme-orders"]
        # Wait until the initial decision is in (it is held 1.5 s by the hook too).
        deadline = time.monotonic() + 10
        while not before.get("paths") and time.monotonic() < deadline:
            time.sleep(0.1)
            before = {
                g["definition"]["name"]: g.get("decision", {}) for g in status_json(addrs[idx])["groups"]
            }["cme-orders"]
        assert before["paths"] == ["primary", "backup"]
        leader_log_len = len(procs[idx].log())
        switch_proc = Proc(
            "switch",
            [
                "switch",
                "cme-orders",
                "backup",
                "--reason",
                "queued",
                "--force",
                "--timeout",
                "60",
                "-c",
                addrs[idx],
            ],
            tmp_path,
        ).start()
        # The hook logs just before the transaction; freeze the leader right there.
        deadline = time.monotonic() + 10
        while "holding commit" not in procs[idx].log()[leader_log_len:]:
            assert time.monotonic() < deadline, "leader never reached the hook"
            time.sleep(0.01)
        procs[idx].signal(signal.SIGSTOP)
        new_lid, _ = wait_leader([addrs[other]], timeout=15, not_id=lid)
        assert new_lid != lid
        procs[idx].signal(signal.SIGCONT)
        assert switch_proc.proc is not None
        rc = switch_proc.proc.wait(timeout=20)
        assert rc != 0, f"the deposed leader's switch succeeded: {switch_proc.log()}"
        deadline = time.monotonic() + 10
        while "fenced out" not in procs[idx].log():
            assert time.monotonic() < deadline, procs[idx].log()[-3000:]
            time.sleep(0.05)
        after = {g["definition"]["name"]: g.get("decision", {}) for g in status_json(addrs[other])["groups"]}[
            "cme-orders"
        ]
        assert after["paths"] == ["primary", "backup"], "a fenced-out transaction changed the route"
    finally:
        stop_all(procs)
