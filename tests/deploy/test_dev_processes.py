"""The dev overlay drives real processes: what it describes elects, connects and fails over.

Each pod of the rendered overlay runs as the processes its containers name
(tests/deploy/kubelet.py); the test's own etcd stands in for the etcd
StatefulSet. A wrong flag, a config key the processes refuse or a port the
Service does not expose fails here, and the mutation tests below prove it.
"""

from __future__ import annotations

import ast
import copy
import urllib.request

import pytest

from tests.deploy import manifests
from tests.deploy.dev_cluster import (
    COORDINATOR,
    GROUP,
    NODES,
    SIDECAR,
    all_on,
    kubectl_exec,
    pods_of,
    render_dev,
    sidecar_socket,
    start_dev,
    wait_for,
)
from tests.deploy.kubelet import Cluster, ManifestError, PodFailed

pytestmark = [
    pytest.mark.skipif(manifests.kubectl() is None, reason="kubectl is not installed: cannot render"),
    # Generous: a shared 2-core machine under load starts each Python process in seconds.
    pytest.mark.timeout(180),
]
HOSTS = {"trading-a", "trading-b"}


@pytest.mark.slow
@pytest.mark.cluster
def test_dev_overlay_elects_connects_and_fails_over(own_etcd, tmp_path_factory):
    objs = render_dev()
    root = tmp_path_factory.mktemp("k8s", numbered=True)
    with start_dev(objs, root, own_etcd.endpoints) as cluster:
        st = wait_for(cluster, "a leader and both sidecars on primary", all_on("primary", HOSTS))
        replicas = {p.name for p in pods_of(cluster, COORDINATOR)}
        assert {r.replica_id for r in st.replicas} == replicas
        assert st.leader.replica_id in replicas

        # Prometheus can scrape every pod on the port its annotations name.
        for owner, family in (
            (COORDINATOR, "failover_leader_is_leader"),
            (SIDECAR, "failover_link_connected"),
            (SIDECAR, "failover_gc_pause_max_seconds"),  # the collector's pauses, every process
            (COORDINATOR, "failover_gc_pause_max_seconds"),
        ):
            for p in pods_of(cluster, owner):
                fams = _scrape(
                    p.ip, int(p.owner["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
                )
                assert family in fams, (p.name, sorted(fams))

        # The example strategy Pod, exactly as rendered: 200 orders through its node's sidecar.
        strategy = cluster.plan(skip=())
        pod = next(p for p in strategy if p.name == "example-strategy")
        cluster.add([pod])
        cluster.start(pod)
        proc = pod.procs["strategy"]
        assert proc.popen is not None
        assert proc.popen.wait(timeout=30) == 0, proc.log()
        outcomes = _outcomes(proc.log())
        # Every order has one outcome. Not all ACKED: on a starved machine the sidecar's
        # silence detector may fail the simulated venue over locally, and orders in flight
        # then end IN_DOUBT; the example resolves each of them.
        assert sum(outcomes.get(k, 0) for k in ("ACKED", "REJECTED", "IN_DOUBT", "NO_PATH")) == 200, outcomes
        resolved = sum(v for k, v in outcomes.items() if k.startswith("resolved:"))
        assert resolved == outcomes.get("IN_DOUBT", 0), outcomes
        assert outcomes.get("ACKED", 0) >= 100, outcomes

        # An operator failover from inside a coordinator pod (kubectl exec ... failover switch).
        coordinator = pods_of(cluster, COORDINATOR)[0]
        out = kubectl_exec(
            cluster, coordinator, ["failover", "switch", GROUP, "backup", "--reason", "deploy test", "--json"]
        )
        assert out["decision"]["paths"][0] == "backup"
        wait_for(cluster, "both sidecars on backup", all_on("backup", HOSTS))
        seen = kubectl_exec(cluster, coordinator, ["failover", "status", "--json"])
        assert seen["leader"]["replica_id"] in replicas


def _scrape(ip: str, port: int) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=10) as resp:  # noqa: S310
        return {f.name for f in text_string_to_metric_families(resp.read().decode())}


def _outcomes(log: str) -> dict[str, int]:
    """The example strategy's last line, ``outcomes: {...}``."""
    line = next((ln for ln in reversed(log.splitlines()) if ln.startswith("outcomes: ")), None)
    assert line is not None, log
    result: dict[str, int] = ast.literal_eval(line.removeprefix("outcomes: "))
    return result


def _container(objs, kind, name, container):
    w = manifests.one(objs, kind, name)
    return next(c for c in manifests.pod_spec(w)["containers"] if c["name"] == container)


def _start_one(objs, root, pod_name, ready_timeout=15.0):
    """Register every pod (so names resolve), then start only ``pod_name``."""
    with Cluster(objs, root, ["127.0.0.1:1"] * 3, NODES) as cluster:
        pods = cluster.plan()
        cluster.add(pods)
        pod = next(p for p in pods if p.name == pod_name)
        cluster.start(pod, ready_timeout=ready_timeout)
        if pod.owner["kind"] == "DaemonSet":
            cluster.wait_file(pod, "sidecar", sidecar_socket(objs), timeout=ready_timeout)


@pytest.mark.slow
def test_a_wrong_flag_fails(tmp_path):
    objs = copy.deepcopy(render_dev())
    c = _container(objs, "StatefulSet", COORDINATOR, "coordinator")
    c["args"][c["args"].index("--advertise")] = "--advertize"
    with pytest.raises(PodFailed, match="advertize"):
        _start_one(objs, tmp_path, "failover-coordinator-0")


@pytest.mark.slow
def test_a_config_key_the_sidecar_refuses_fails(tmp_path):
    objs = copy.deepcopy(render_dev())
    sidecar = manifests.one(objs, "DaemonSet", "failover-sidecar")
    _, text = manifests.config_file(objs, sidecar, "sidecar", "/etc/failover")
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and "sidecar.yaml" in o.get("data", {}))
    cm["data"]["sidecar.yaml"] = text.replace("state_file:", "statefile:")
    with pytest.raises(PodFailed, match="state_file"):
        _start_one(objs, tmp_path, "failover-sidecar-trading-a")


@pytest.mark.slow
def test_a_port_the_service_does_not_expose_fails(tmp_path):
    objs = copy.deepcopy(render_dev())
    svc = manifests.one(objs, "Service", COORDINATOR)
    svc["spec"]["ports"][0]["port"] = 7002
    svc["spec"]["ports"][0]["targetPort"] = 7002
    with pytest.raises(ManifestError, match="exposes no port 7001"):
        _start_one(objs, tmp_path, "failover-sidecar-trading-a")


@pytest.mark.slow
def test_a_container_port_off_the_listen_port_fails(tmp_path):
    objs = copy.deepcopy(render_dev())
    c = _container(objs, "StatefulSet", COORDINATOR, "coordinator")
    c["args"] = [a.replace(":7001", ":7003") for a in c["args"]]
    with pytest.raises(PodFailed, match="not ready"):
        _start_one(objs, tmp_path, "failover-coordinator-0", ready_timeout=6)
