"""Bad operator input is refused with the field named, and changes nothing."""

from __future__ import annotations

import grpc
import pytest

from failover.model.convert import group_pb
from failover.model.spec import GroupSpec
from failover.v1 import admin_pb2 as apb
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, admin, kv_snapshot, wait_for
from tests.procs import cli

pytestmark = pytest.mark.cluster


async def _err(coro) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await coro
    return exc.value


async def test_bad_admin_input_is_refused_and_changes_nothing(etcd_cluster, prefix) -> None:
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=2)
    await rs.start_all()
    try:
        leader = await rs.wait_leader()
        await wait_for(lambda: "cme-orders" in leader.view.routes, 10, "the initial decision")
        store = leader.store
        before = await kv_snapshot(store, prefix)
        follower = rs.address(1 - rs.replicas.index(leader))
        async with admin(follower) as stub:
            e = await _err(
                stub.Switch(apb.SwitchRequest(group="cme-orders", path="nope", reason="x"), timeout=10)
            )
            assert e.code() == grpc.StatusCode.NOT_FOUND and "path" in e.details() and "nope" in e.details()
            e = await _err(
                stub.Switch(apb.SwitchRequest(group="nope", path="backup", reason="x"), timeout=10)
            )
            assert e.code() == grpc.StatusCode.NOT_FOUND and "group" in e.details()
            e = await _err(stub.Switch(apb.SwitchRequest(group="cme-orders", path="backup"), timeout=10))
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "reason" in e.details()
            # Invalid definitions: duplicate path, bad address, empty path list.
            good = GroupSpec.model_validate(
                {
                    "name": "cme-orders",
                    "paths": [{"name": "primary", "endpoints": {"default": "127.0.0.1:9001"}}],
                }
            )
            dup = group_pb(good, 0)
            dup.paths.append(dup.paths[0])
            e = await _err(stub.PutGroup(apb.PutGroupRequest(definition=dup), timeout=5))
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "duplicate path 'primary'" in e.details()
            bad = group_pb(good, 0)
            bad.paths[0].endpoints["default"] = "not-an-address"
            e = await _err(stub.PutGroup(apb.PutGroupRequest(definition=bad), timeout=5))
            assert (
                e.code() == grpc.StatusCode.INVALID_ARGUMENT and "definition.paths.0.endpoints" in e.details()
            )
            e = await _err(
                stub.PutGroup(apb.PutGroupRequest(definition=pb.GroupDefinition(name="x")), timeout=5)
            )
            assert "definition.paths" in e.details()
            # Duplicate group: create-only on an existing name.
            e = await _err(
                stub.PutGroup(apb.PutGroupRequest(definition=group_pb(good, 0), create_only=True), timeout=5)
            )
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "already exists" in e.details()
        after = await kv_snapshot(store, prefix)
        assert after == before
    finally:
        await rs.stop_all()


def test_bad_coordinator_config_is_refused_naming_the_field(tmp_path) -> None:
    cases = {
        "bad-address": ("etcd:\n  endpoints: ['127.0.0.1']\n", "etcd.endpoints"),
        "dup-group": (
            "groups:\n" + "  - {name: g, paths: [{name: a, endpoints: {default: 'h:1'}}]}\n" * 2,
            "duplicate group 'g'",
        ),
        "bad-def": (
            "groups:\n  - {name: g, paths: [{name: a, endpoints: {default: 'h:1'}}, "
            "{name: a, endpoints: {default: 'h:2'}}]}\n",
            "duplicate path 'a'",
        ),
        "budget": ("election: {lease_ttl_s: 1}\netcd: {rpc_timeout_ms: 600}\n", "timing budget"),
        "typo": ("replica: c1\n", "replica"),
    }
    for name, (text, needle) in cases.items():
        f = tmp_path / f"{name}.yaml"
        f.write_text(text)
        r = cli("coordinator", "--config", str(f), timeout=30)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert needle in r.stderr, (name, r.stderr)
        assert "Traceback" not in r.stderr
    r = cli("coordinator", "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "missing.yaml" in r.stderr


def test_cli_reports_unreachable_coordinators_clearly() -> None:
    r = cli("status", "-c", "127.0.0.1:1", timeout=30)
    assert r.returncode == 1 and "UNAVAILABLE" in r.stderr and "Traceback" not in r.stderr
