"""The dev overlay started as processes, and the few checks the tests share."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import yaml

from failover.v1 import admin_pb2 as apb
from failover.v1 import admin_pb2_grpc
from tests.deploy.kubelet import Cluster, Node, Pod
from tests.deploy.manifests import K8S, Obj, config_file, one, parse, render_text

TRADING = {"failover.io/trading": "true"}
TAINT = ("failover.io/trading", "true", "NoSchedule")
NODES = [
    Node("infra-a", {}),
    Node("infra-b", {}),
    Node("infra-c", {}),
    Node("trading-a", TRADING, (TAINT,)),
    Node("trading-b", TRADING, (TAINT,)),
]
COORDINATOR = "failover-coordinator"
SIDECAR = "failover-sidecar"
GROUP = "cme-orders"


def render_dev() -> list[Obj]:
    return parse(render_text(K8S / "overlays" / "dev"))


def start_dev(objs: list[Obj], root: Path, etcd_endpoints: list[str]) -> Cluster:
    """Venue, coordinators, sidecars (the example strategy is left to the test)."""
    cluster = Cluster(objs, root, etcd_endpoints, NODES)
    pods = cluster.plan()
    cluster.add(pods)
    try:
        for kind in ("Deployment", "StatefulSet", "DaemonSet"):
            cluster.start(*[p for p in pods if p.owner["kind"] == kind])
        for pod in pods_of(cluster, SIDECAR):
            cluster.wait_file(pod, "sidecar", sidecar_socket(objs))
    except BaseException:
        cluster.close()
        raise
    return cluster


def sidecar_socket(objs: list[Obj]) -> str:
    """The socket path the sidecar config names (inside the container)."""
    ds = one(objs, "DaemonSet", SIDECAR)
    _, text = config_file(objs, ds, "sidecar", "/etc/failover")
    return str(yaml.safe_load(text)["listen"]["socket"])


def pods_of(cluster: Cluster, owner: str) -> list[Pod]:
    return [p for p in cluster.pods.values() if p.owner["metadata"]["name"] == owner]


def admin_address(pod: Pod) -> str:
    port = pod.spec["containers"][0]["ports"][0]["containerPort"]
    return f"{pod.ip}:{port}"


def status(cluster: Cluster) -> apb.ClusterStatus:
    """GetStatus (every host listed) from the first coordinator that answers, as `failover status --hosts`."""
    last: Exception | None = None
    for pod in pods_of(cluster, COORDINATOR):
        if not any(p.alive for p in pod.procs.values()):
            continue
        with grpc.insecure_channel(admin_address(pod)) as ch:
            try:
                st: apb.ClusterStatus = admin_pb2_grpc.AdminStub(ch).GetStatus(
                    apb.GetStatusRequest(hosts=True), timeout=3
                )
                return st
            except grpc.RpcError as exc:
                last = exc
    raise AssertionError(f"no coordinator answered: {last}")


def wait_for(
    cluster: Cluster, what: str, check: Callable[[apb.ClusterStatus], bool], timeout: float = 20.0
) -> apb.ClusterStatus:
    deadline = time.monotonic() + timeout
    st: apb.ClusterStatus | None = None
    while time.monotonic() < deadline:
        cluster.check_alive()
        try:
            st = status(cluster)
        except AssertionError:
            st = None
        if st is not None and check(st):
            return st
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last status:\n{st}")


def sidecar_view(st: apb.ClusterStatus) -> dict[str, tuple[str, int]]:
    """host_id -> (effective path, acked revision) for GROUP, over every replica."""
    out: dict[str, tuple[str, int]] = {}
    for r in st.replicas:
        for s in r.sidecars:
            out[s.host_id] = (s.effective.get(GROUP, ""), s.acked[GROUP].revision if GROUP in s.acked else 0)
    return out


def decision(st: apb.ClusterStatus) -> Any:
    g = next(g for g in st.groups if g.definition.name == GROUP)
    return g.decision if g.HasField("decision") else None


def all_on(path: str, hosts: set[str]) -> Callable[[apb.ClusterStatus], bool]:
    """Every host uses ``path`` and acked the current decision, which puts it first."""

    def check(st: apb.ClusterStatus) -> bool:
        d = decision(st)
        view = sidecar_view(st)
        return (
            d is not None
            and list(d.paths)[:1] == [path]
            and set(view) == hosts
            and all(v == (path, d.epoch.revision) for v in view.values())
        )

    return check


def kubectl_exec(cluster: Cluster, pod: Pod, argv: list[str], timeout: float = 30) -> dict[str, Any]:
    """`kubectl exec POD -- ARGV` with the container's environment; parses --json output."""
    container = pod.spec["containers"][0]
    env = cluster._env(pod, container, {})
    exe = [*cluster.image["entrypoint"]] if argv[0] == "failover" else []
    import shutil

    path = shutil.which(exe[0] if exe else argv[0], path=env["PATH"])
    assert path is not None
    done = subprocess.run(
        [path, *argv[1:]] if exe else [path, *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(f"{argv} in {pod.name} failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
