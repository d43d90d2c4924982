"""The leader's decision path against races: controls that disagree, callers that give up,
requests that arrive while leadership changes hands. Real etcd, real gRPC on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import json_format

from coordinator.commit import Leadership
from coordinator.keys import Keys
from coordinator.replica import Replica
from coordinator.store.etcd_store import EtcdStore
from failover.model.spec import ControlsSpec
from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.harness import ReplicaSet, admin, code_of, wait_for
from tests.procs import Proc, coordinator_config, group

pytestmark = [pytest.mark.cluster]
G = "cme-orders"


@contextlib.asynccontextmanager
async def replicas(
    endpoints: list[str], prefix: str, n: int = 3, **overrides: object
) -> AsyncIterator[ReplicaSet]:
    rs = ReplicaSet(endpoints, prefix, n, **overrides)
    try:
        await rs.start_all()
        yield rs
    finally:
        await rs.stop_all()


async def control(address: str, action: int, path: str = "", force: bool = False) -> apb.ControlResponse:
    async with admin(address) as stub:
        resp: apb.ControlResponse = await stub.SetControl(
            apb.SetControlRequest(action=action, group=G, path=path, reason="t", operator="t", force=force),
            timeout=10,
        )
        return resp


async def test_drain_of_the_pinned_path_is_refused_unless_forced_and_force_clears_the_pin(
    etcd_cluster, prefix
) -> None:
    async with replicas(etcd_cluster.endpoints, prefix) as rs:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the first decision")
        addr = rs.address(0)
        await control(addr, apb.CONTROL_ACTION_PIN, "backup")
        await wait_for(lambda: leader.view.routes[G].record.paths[0] == "backup", 10, "the pin to move")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await control(addr, apb.CONTROL_ACTION_DRAIN, "backup")
        assert code_of(err.value) == grpc.StatusCode.FAILED_PRECONDITION
        assert "pinned" in err.value.details() and "unpin" in err.value.details()
        resp = await control(addr, apb.CONTROL_ACTION_DRAIN, "backup", force=True)
        assert resp.decision.paths == ["primary"], resp
        ctl = leader.view.controls[G].value
        assert ctl.pinned is None and ctl.drained == ["backup"]


async def test_pin_and_drain_on_one_path_in_etcd_settle_instead_of_flapping(etcd_cluster, prefix) -> None:
    """Controls written before the rule existed (or by hand): one decision, then quiet."""
    async with replicas(etcd_cluster.endpoints, prefix) as rs:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the first decision")
        await control(rs.address(0), apb.CONTROL_ACTION_PIN, "backup")
        await wait_for(lambda: leader.view.routes[G].record.paths[0] == "backup", 10, "the pin to move")
        spec = ControlsSpec(drained=["backup"], pinned="backup", operator="t", reason="by hand")
        await leader.store.put(leader.keys.control(G), spec.model_dump_json().encode())
        await wait_for(lambda: leader.view.routes[G].record.paths == ["primary"], 10, "the drain to win")
        epoch = leader.view.routes[G].epoch
        await asyncio.sleep(1.0)  # asserting an absence: a flap commits within milliseconds
        assert leader.view.routes[G].epoch == epoch, (
            f"the route kept moving: {[c.record.paths for c in leader.leader.recent[-6:]]}"
        )


async def test_a_caller_giving_up_never_ends_the_leaders_term(etcd_cluster, prefix) -> None:
    """Forced switches with deadlines too short for a commit: replies are dropped, the term goes on."""
    async with replicas(etcd_cluster.endpoints, prefix) as rs:
        leader = await rs.wait_leader()
        await wait_for(lambda: G in leader.view.routes, 10, "the first decision")
        terms = leader.election.terms
        follower = next(i for i, r in enumerate(rs.replicas) if r is not leader)
        async with admin(leader.cfg.listen) as to_leader, admin(rs.address(follower)) as to_follower:
            for i in range(40):
                stub = to_leader if i % 4 else to_follower
                path = ("primary", "backup")[i % 2]
                req = apb.SwitchRequest(group=G, path=path, reason=f"storm {i}", operator="t", force=True)
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.Switch(req, timeout=0.002 + 0.001 * (i % 8))
            resp = await to_follower.Switch(
                apb.SwitchRequest(group=G, path="backup", reason="after", operator="t", force=True),
                timeout=10,
            )
        assert resp.decision.leader_id == leader.cfg.replica_id
        assert leader.election.terms == terms and leader.leader.leadership is not None, "the term ended"
        assert rs.leaders() == [leader]


async def test_a_request_arriving_as_a_replica_becomes_leader_runs_when_its_term_begins(
    etcd_cluster, prefix
) -> None:
    """The election key is in our view before our leader work starts: the request must not
    wait for the next view change (up to the 5 s leader wait), only for the term."""
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, 2)
    try:
        first = await rs.start(0)
        await rs.wait_leader()
        # The second replica's leader work waits on a gate, widening the window to seconds.
        gate = asyncio.Event()
        second = Replica(rs.configs[1])
        work = second.leader.run

        async def gated(leadership: Leadership) -> None:
            await gate.wait()
            await work(leadership)

        second.leader.run = gated  # type: ignore[method-assign]
        rs.replicas[1] = second
        rs.tasks[1] = asyncio.create_task(second.run())
        async with asyncio.timeout(10):
            await second.ready.wait()
        await rs.stop(0)  # graceful: resigns, the second replica is elected at once
        await wait_for(
            lambda: second.view.leader is not None and second.view.leader.replica_id == "c2", 10, "c2 elected"
        )
        await wait_for(lambda: "c1" not in second.view.members, 10, "c1's member key to go")
        call = asyncio.create_task(
            control(rs.address(1), apb.CONTROL_ACTION_PAUSE)  # no health needed, no guard rail
        )
        await asyncio.sleep(0.3)  # let the request reach the replica and wait there (no event to await)
        assert not call.done(), call
        opened = time.monotonic()
        gate.set()
        resp = await asyncio.wait_for(call, 10)
        took = time.monotonic() - opened
        assert "pause recorded" in resp.message
        assert took < 2.0, f"the request waited {took:.2f}s after the term began"
        assert first is not second
    finally:
        await rs.stop_all()


# --- real coordinator processes (a frozen process cannot be in-process) ----------------


def _status(address: str) -> dict:
    with grpc.insecure_channel(address) as ch:
        st = admin_pb2_grpc.AdminStub(ch).GetStatus(apb.GetStatusRequest(), timeout=3)
    return json_format.MessageToDict(st, preserving_proto_field_name=True)


def _route(address: str) -> list[str]:
    groups = {g["definition"]["name"]: g for g in _status(address).get("groups", [])}
    return list(groups.get(G, {}).get("decision", {}).get("paths", []))


def _poll(pred, timeout: float, what: str):
    """Poll another process's state over gRPC (no event crosses the process boundary)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(grpc.RpcError):
            if (v := pred()) is not None and v is not False:
                return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def test_a_control_change_during_a_commit_is_decided_again(tmp_path, etcd_cluster, prefix) -> None:
    """A change lands while the leader is in a pass and its commit loses to it (StaleInputs):
    the leader must decide again on the newer view, not wait for some later change."""
    cfg, addr = coordinator_config(
        tmp_path,
        "c1",
        etcd_cluster.endpoints,
        prefix,
        groups=[group(paths=("primary", "backup", "third"))],
        test_hooks={"hold_before_commit_ms": 1500},
    )
    proc = Proc("c1", ["coordinator", "--config", str(cfg)], tmp_path).start()
    store = EtcdStore(etcd_cluster.endpoints)
    key = Keys(prefix).control(G)
    try:
        want = ["primary", "backup", "third"]
        await asyncio.to_thread(_poll, lambda: _route(addr) == want, 30, "the first decision")
        log_len = len(proc.log())
        # Written straight to etcd (the leader is busy): drains the leader must decide on.
        await store.put(key, ControlsSpec(drained=["third"], reason="one").model_dump_json().encode())
        await asyncio.to_thread(
            _poll, lambda: "holding commit" in proc.log()[log_len:], 10, "the leader to hold its commit"
        )
        # While that commit is held, drain backup too: the held commit loses (StaleInputs).
        spec = ControlsSpec(drained=["backup", "third"], reason="two")
        await store.put(key, spec.model_dump_json().encode())
        await asyncio.to_thread(_poll, lambda: _route(addr) == ["primary"], 8, "the second drain decided")
    finally:
        await store.close()
        await asyncio.to_thread(proc.stop)


def test_a_request_forwarded_to_a_frozen_leader_is_re_resolved(tmp_path, etcd_cluster, prefix) -> None:
    """SIGSTOP the leader: a switch sent to a follower reaches the next leader once the frozen
    one's lease runs out (TTL 2 s), well before the client's 10 s deadline."""
    procs, addrs = [], []
    for i in range(3):
        cfg, addr = coordinator_config(tmp_path, f"c{i + 1}", etcd_cluster.endpoints, prefix)
        procs.append(Proc(f"c{i + 1}", ["coordinator", "--config", str(cfg)], tmp_path).start())
        addrs.append(addr)
    frozen: Proc | None = None
    try:
        for a in addrs:  # every replica up (a loaded machine starts processes slowly)
            _poll(lambda a=a: _route(a), 30, f"the first decision at {a}")
        lid = _poll(lambda: _status(addrs[0]).get("leader", {}).get("replica_id"), 15, "a leader")
        idx = int(lid[1:]) - 1
        follower = addrs[(idx + 1) % 3]
        frozen = procs[idx]
        req = apb.SwitchRequest(group=G, path="primary", reason="warm", operator="t", force=True)
        with grpc.insecure_channel(follower) as ch:
            stub = admin_pb2_grpc.AdminStub(ch)
            stub.Switch(req, timeout=10)  # the follower's channel to the leader is now open
            frozen.signal(signal.SIGSTOP)
            started = time.monotonic()
            req = apb.SwitchRequest(group=G, path="backup", reason="frozen", operator="t", force=True)
            resp = stub.Switch(req, timeout=10)
        took = time.monotonic() - started
        assert resp.decision.paths[0] == "backup" and resp.decision.leader_id != lid
        assert took < 7.0, f"the forwarded switch took {took:.2f}s"
    finally:
        if frozen is not None:
            frozen.signal(signal.SIGCONT)
        for p in procs:
            p.stop()
