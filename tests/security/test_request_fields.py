"""Every field of every request is checked (issue 15, item 4): INVALID_ARGUMENT naming the field.

One table over the Admin RPCs and the sidecar stream, sent to a real replica
over gRPC. Each row is a request with one bad field and the field the refusal
must name; nothing is written to etcd.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from failover.v1 import admin_pb2 as apb
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb
from tests.harness import ReplicaSet, admin

pytestmark = pytest.mark.cluster

G = "cme-orders"
LONG = "x" * 2000

ADMIN_ROWS: list[tuple[str, str, Any, str]] = [
    ("GetStatus", "bad group name", apb.GetStatusRequest(group="Bad Name"), "group:"),
    ("GetStatus", "host_limit too big", apb.GetStatusRequest(host_limit=10**9), "host_limit:"),
    ("GetStatus", "bad hosts_after", apb.GetStatusRequest(hosts=True, hosts_after="../x"), "hosts_after:"),
    ("History", "no group", apb.HistoryRequest(), "group:"),
    ("History", "limit too big", apb.HistoryRequest(group=G, limit=10**9), "limit:"),
    ("Switch", "no group", apb.SwitchRequest(path="backup", reason="r"), "group: required"),
    ("Switch", "bad path name", apb.SwitchRequest(group=G, path="a" * 64, reason="r"), "path:"),
    ("Switch", "reason too long", apb.SwitchRequest(group=G, path="backup", reason=LONG), "reason:"),
    (
        "Switch",
        "operator too long",
        apb.SwitchRequest(group=G, path="b", reason="r", operator=LONG),
        "operator:",
    ),
    (
        "SetControl",
        "undefined action",
        apb.SetControlRequest(action=42, group=G),
        "action: undefined enum value 42",
    ),
    ("SetControl", "no action", apb.SetControlRequest(group=G), "action: required"),
    ("SetControl", "bad group", apb.SetControlRequest(action=apb.CONTROL_ACTION_PAUSE, group="-x"), "group:"),
    (
        "SetControl",
        "bad path",
        apb.SetControlRequest(action=apb.CONTROL_ACTION_DRAIN, group=G, path="A B", reason="r"),
        "path:",
    ),
    (
        "SetControl",
        "reason too long",
        apb.SetControlRequest(action=apb.CONTROL_ACTION_PAUSE, group=G, reason=LONG),
        "reason:",
    ),
    (
        "PutGroup",
        "undefined warmth",
        apb.PutGroupRequest(
            definition=pb.GroupDefinition(
                name="g9", paths=[pb.Path(name="p", transport="sim", endpoint="127.0.0.1:1", warmth=9)]
            )
        ),
        "definition.paths.0.warmth: undefined enum value 9",
    ),
    (
        "PutGroup",
        "too many paths",
        apb.PutGroupRequest(
            definition=pb.GroupDefinition(name="g9", paths=[pb.Path(name=f"p{i}") for i in range(65)])
        ),
        "definition.paths:",
    ),
    (
        "PutGroup",
        "negative expected_mod_revision",
        apb.PutGroupRequest(
            definition=pb.GroupDefinition(name="g9", paths=[pb.Path(name="p", endpoint="127.0.0.1:1")]),
            expected_mod_revision=-1,
        ),
        "expected_mod_revision:",
    ),
    (
        "PutGroup",
        "huge group name (once echoed whole into the status message)",
        apb.PutGroupRequest(definition=pb.GroupDefinition(name="a" * 100_000, paths=[pb.Path(name="p")])),
        "definition.name:",
    ),
    (
        "PutGroup",
        "huge path name",
        apb.PutGroupRequest(definition=pb.GroupDefinition(name="g9", paths=[pb.Path(name="P" * 100_000)])),
        "definition.paths.0.name:",
    ),
    ("BumpEra", "reason too long", apb.BumpEraRequest(reason=LONG), "reason:"),
    (
        "BumpEra",
        "expected_era out of range",
        apb.BumpEraRequest(reason="r", expected_era=2**63),
        "expected_era:",
    ),
]

STREAM_ROWS: list[tuple[str, list[sync_pb2.SidecarMessage], str]] = [
    (
        "bad host id",
        [sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id="H 1", groups=[G]))],
        "hello.host_id:",
    ),
    ("no groups", [sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id="h1"))], "hello.groups:"),
    (
        "held for another group",
        [
            sync_pb2.SidecarMessage(
                hello=sync_pb2.Hello(host_id="h1", groups=[G], held={"other": pb.Epoch(era=1)})
            )
        ],
        "hello.held:",
    ),
    (
        "negative held revision",
        [
            sync_pb2.SidecarMessage(
                hello=sync_pb2.Hello(host_id="h1", groups=[G], held={G: pb.Epoch(revision=-1)})
            )
        ],
        "hello.held.cme-orders.revision:",
    ),
    (
        "ack for another group",
        [
            sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id="h1", groups=[G])),
            sync_pb2.SidecarMessage(ack=sync_pb2.Ack(group="other", epoch=pb.Epoch(era=1, revision=1))),
        ],
        "ack.group:",
    ),
    (
        "health with an undefined state",
        [
            sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id="h1", groups=[G])),
            sync_pb2.SidecarMessage(
                health=sync_pb2.HealthReport(paths=[pb.PathHealth(group=G, path="primary", state=7)])
            ),
        ],
        "health.paths.0.state: undefined enum value 7",
    ),
    (
        "health for another group",
        [
            sync_pb2.SidecarMessage(hello=sync_pb2.Hello(host_id="h1", groups=[G])),
            sync_pb2.SidecarMessage(health=sync_pb2.HealthReport(effective={"other": "primary"})),
        ],
        "health.effective:",
    ),
]


@pytest.fixture
async def replica(etcd_cluster, prefix):  # type: ignore[no-untyped-def]
    rs = ReplicaSet(etcd_cluster.endpoints, prefix, n=1)
    await rs.start_all()
    try:
        await rs.wait_leader()
        yield rs
    finally:
        await rs.stop_all()


async def test_every_admin_rpc_refuses_bad_fields_naming_them(replica: ReplicaSet) -> None:
    failures = []
    async with admin(replica.address(0)) as stub:
        for rpc, what, request, field in ADMIN_ROWS:
            try:
                await getattr(stub, rpc)(request, timeout=10)
                failures.append(f"{rpc} ({what}): accepted")
            except grpc.aio.AioRpcError as exc:
                details = exc.details() or ""
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT or field not in details:
                    failures.append(f"{rpc} ({what}): {exc.code().name} {details[:300]!r}, wanted {field!r}")
                elif len(details) > 300:
                    failures.append(f"{rpc} ({what}): a {len(details)}-character message")
    assert not failures, "\n".join(failures)


async def test_sidecar_stream_refuses_bad_fields_naming_them(replica: ReplicaSet) -> None:
    failures = []
    for what, msgs, field in STREAM_ROWS:
        async with grpc.aio.insecure_channel(replica.address(0)) as ch:
            call = ch.stream_stream(
                "/failover.v1.Sync/Stream",
                request_serializer=sync_pb2.SidecarMessage.SerializeToString,
                response_deserializer=sync_pb2.ReplicaMessage.FromString,
            )(iter(msgs), timeout=10)
            try:
                async for _ in call:
                    pass
                failures.append(f"{what}: stream ended without an error")
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.INVALID_ARGUMENT or field not in (exc.details() or ""):
                    failures.append(f"{what}: {exc.code().name} {exc.details()!r}, wanted {field!r}")
    assert not failures, "\n".join(failures)
