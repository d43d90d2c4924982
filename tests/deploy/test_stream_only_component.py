"""components/stream-only-replicas: a second coordinator set that never leads, and the
sidecars pointed at it only (docs/deploy.md, "Stream-only replicas")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.deploy import manifests
from tests.deploy.dev_cluster import (
    COORDINATOR,
    GROUP,
    SIDECAR,
    admin_address,
    all_on,
    pods_of,
    start_dev,
    wait_for,
)
from tests.deploy.manifests import KUBE_VERSION, OVERLAYS, Obj, find, one, pod_spec

pytestmark = pytest.mark.skipif(manifests.kubectl() is None, reason="kubectl is not installed: cannot render")
STREAMS = "failover-coordinator-streams"
HOSTS = {"trading-a", "trading-b"}


def _render(overlay: str, tmp: Path) -> list[Obj]:
    return manifests.parse(manifests.render_with_components(overlay, ["stream-only-replicas"], tmp))


def _env(workload: Obj, container: str) -> dict[str, str]:
    c = next(c for c in pod_spec(workload)["containers"] if c["name"] == container)
    return {e["name"]: e.get("value", "") for e in c["env"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_component_adds_a_stream_only_set_and_points_the_sidecars_at_it(overlay, tmp_path):
    objs = _render(overlay, tmp_path)
    plain = manifests.parse(manifests.render_text(manifests.K8S / "overlays" / overlay))
    base, streams = one(objs, "StatefulSet", COORDINATOR), one(objs, "StatefulSet", STREAMS)
    # The campaigning set is exactly what the overlay alone renders.
    assert base == one(plain, "StatefulSet", COORDINATOR)
    assert "FAILOVER_ELECTION__CAMPAIGN" not in _env(base, "coordinator")
    assert _env(streams, "coordinator")["FAILOVER_ELECTION__CAMPAIGN"] == "false"
    # The same pod otherwise: image, config, probes, the overlay's patches (prod: the etcd TLS proxy).
    b, s = pod_spec(base), pod_spec(streams)
    assert [c["name"] for c in manifests.all_containers(b)] == [
        c["name"] for c in manifests.all_containers(s)
    ]
    assert b["volumes"] == s["volumes"]
    assert b["containers"][0]["image"] == s["containers"][0]["image"]
    # Selectors apart: neither set's selector matches the other's pods.
    base_pods = base["spec"]["template"]["metadata"]["labels"]
    stream_pods = streams["spec"]["template"]["metadata"]["labels"]
    assert not streams["spec"]["selector"]["matchLabels"].items() <= base_pods.items()
    assert streams["spec"]["selector"]["matchLabels"].items() <= stream_pods.items()
    # The headless Service, the PDB and the NetworkPolicies select the stream pods as replicas.
    svc = one(objs, "Service", COORDINATOR)
    assert streams["spec"]["serviceName"] == COORDINATOR
    assert svc["spec"]["selector"].items() <= stream_pods.items()
    assert (
        one(objs, "PodDisruptionBudget", COORDINATOR)["spec"]["selector"]["matchLabels"].items()
        <= stream_pods.items()
    )
    assert len(find(objs, "PodDisruptionBudget")) == len(
        find(plain, "PodDisruptionBudget")
    )  # one PDB per pod
    # Every sidecar streams from the stream-only replicas, all of them, and only them.
    listed = json.loads(_env(one(objs, "DaemonSet", SIDECAR), "sidecar")["FAILOVER_SIDECAR_COORDINATORS"])
    assert listed == [f"{STREAMS}-{i}.{COORDINATOR}:7001" for i in range(streams["spec"]["replicas"])]
    assert streams["spec"]["replicas"] >= 2


def test_the_component_validates_strictly(tmp_path):
    for overlay in OVERLAYS:
        d = tmp_path / overlay
        d.mkdir()
        f = tmp_path / f"{overlay}.yaml"
        f.write_text(manifests.render_with_components(overlay, ["stream-only-replicas"], d))
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "kubernetes-validate"),
                "--strict",
                "--quiet",
                "-k",
                KUBE_VERSION,
                str(f),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{overlay}:\n{done.stdout}{done.stderr}"


def _status(address: str) -> apb.ClusterStatus:
    with grpc.insecure_channel(address) as ch:
        st: apb.ClusterStatus = admin_pb2_grpc.AdminStub(ch).GetStatus(
            apb.GetStatusRequest(hosts=True), timeout=3
        )
        return st


@pytest.mark.slow
@pytest.mark.cluster
@pytest.mark.timeout(180)
def test_dev_with_stream_only_replicas_elects_serves_and_switches(own_etcd, tmp_path_factory):
    objs = _render("dev", tmp_path_factory.mktemp("kz"))
    root = tmp_path_factory.mktemp("k8s", numbered=True)
    with start_dev(objs, root, own_etcd.endpoints) as cluster:
        st = wait_for(cluster, "a leader and both sidecars on primary", all_on("primary", HOSTS), timeout=60)
        campaigning = {p.name for p in pods_of(cluster, COORDINATOR)}
        stream_only = {p.name for p in pods_of(cluster, STREAMS)}
        assert len(stream_only) == 2 and st.leader.replica_id in campaigning
        roles = {r.replica_id: r.streams_only for r in st.replicas}
        assert roles == {**dict.fromkeys(campaigning, False), **dict.fromkeys(stream_only, True)}, roles
        # The sidecars stream from the stream-only replicas only.
        on = {s.host_id: r.replica_id for r in st.replicas for s in r.sidecars}
        assert set(on) == HOSTS and set(on.values()) <= stream_only, on
        # An operator's switch, sent to a campaigning replica, reaches every sidecar.
        with grpc.insecure_channel(admin_address(pods_of(cluster, COORDINATOR)[0])) as ch:
            admin_pb2_grpc.AdminStub(ch).Switch(
                apb.SwitchRequest(group=GROUP, path="backup", reason="test", operator="t", force=True),
                timeout=10,
            )
        wait_for(cluster, "both sidecars on backup", all_on("backup", HOSTS), timeout=30)
        # A stream-only replica answers status too, naming the same leader.
        pod = pods_of(cluster, STREAMS)[0]
        assert _status(admin_address(pod)).leader.replica_id == st.leader.replica_id
