"""A rolling update of the dev overlay's coordinators, as the StatefulSet controller would run it.

Replicas are replaced one at a time, highest ordinal first: the kubelet's
termination (preStop, SIGTERM, SIGKILL at the grace period's end), then the
same pod started again and waited for through its gRPC readiness probe.
Meanwhile a strategy on each trading node sends orders through its sidecar
and an etcd watch records every change of the election key. After each
replacement an operator switch (``kubectl exec ... failover switch``) must be
committed and reach every sidecar. Checked: every order has an outcome, every
switch is in ``failover history``, and a leader hand-off happens only when the
leader itself is replaced, once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.deploy import manifests
from tests.deploy.dev_cluster import (
    COORDINATOR,
    GROUP,
    SIDECAR,
    all_on,
    kubectl_exec,
    pods_of,
    render_dev,
    sidecar_socket,
    start_dev,
    wait_for,
)
from tests.deploy.kubelet import Cluster, Pod
from tests.deploy.rollout import LeaderWatch, OrderFlow

pytestmark = [
    pytest.mark.skipif(manifests.kubectl() is None, reason="kubectl is not installed: cannot render"),
    pytest.mark.timeout(300),  # about 60 s on an idle machine; a shared 2-core machine is slower
]
HOSTS = {"trading-a", "trading-b"}
STRATEGY = "example"  # listed in the dev sidecar config's `strategies`
ORDER_INTERVAL_S = 0.01


def _ordinal(pod: Pod) -> int:
    return int(pod.name.rsplit("-", 1)[1])


def _etcd_prefix(objs: list[manifests.Obj]) -> str:
    import yaml

    sts = manifests.one(objs, "StatefulSet", COORDINATOR)
    _, text = manifests.config_file(objs, sts, "coordinator", "/etc/failover")
    return str(yaml.safe_load(text)["etcd"]["prefix"])


def _switch(cluster: Cluster, pod: Pod, path: str, reason: str, timeout: float = 30.0) -> dict[str, Any]:
    """`failover switch` from inside ``pod``, retried while the leader refuses it for the target's health.

    The leader refuses a switch to a path no host reports up (FAILED_PRECONDITION);
    on a starved machine the sidecars' silence detector can briefly mark the
    simulated venue's path down. That refusal is the product's safety check, not
    a lost decision, so the test waits for the path, bounded, rather than forcing.
    """
    argv = ["failover", "switch", GROUP, path, "--reason", reason, "--json"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            return kubectl_exec(cluster, pod, argv)
        except AssertionError as exc:
            if "no host reports" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.cluster
def test_rolling_update_loses_no_order_and_no_decision(own_etcd, tmp_path_factory):
    objs = render_dev()
    sts = manifests.one(objs, "StatefulSet", COORDINATOR)
    # What the loop below emulates: one replica at a time (maxUnavailable 1), every ordinal.
    update = sts["spec"]["updateStrategy"]
    assert update["type"] == "RollingUpdate"
    assert update.get("rollingUpdate", {}).get("partition", 0) == 0
    assert update.get("rollingUpdate", {}).get("maxUnavailable", 1) == 1
    root = tmp_path_factory.mktemp("k8s-roll", numbered=True)
    with start_dev(objs, root, own_etcd.endpoints) as cluster:
        wait_for(cluster, "a leader and both sidecars on primary", all_on("primary", HOSTS), timeout=30)
        sockets = [
            str(cluster.host_path(p, "sidecar", sidecar_socket(objs))) for p in pods_of(cluster, SIDECAR)
        ]
        watch = LeaderWatch(own_etcd.endpoints, _etcd_prefix(objs))
        watch.start()
        flow = OrderFlow(sockets, STRATEGY, GROUP, ORDER_INTERVAL_S)
        flow.start(timeout=30)
        try:
            switched: list[int] = []  # revisions of the switches committed during the roll
            report: list[str] = []
            path = "primary"
            for pod in sorted(pods_of(cluster, COORDINATOR), key=_ordinal, reverse=True):
                t0 = time.monotonic()
                leader_before = watch.leader_at(t0)
                codes = cluster.terminate(pod)
                assert not pod.killed, f"{pod.name} outlived its grace period: {codes}"
                assert set(codes.values()) == {0}, f"{pod.name} exit codes {codes}"
                cluster.start(pod, ready_timeout=60)  # ready = its gRPC readiness probe answers SERVING
                t1 = time.monotonic()

                handoffs = watch.handoffs(t0, t1)
                was_leader = leader_before == pod.name
                assert len(handoffs) == (1 if was_leader else 0), (
                    f"replacing {pod.name} (leader before: {leader_before}): hand-offs {handoffs}"
                )
                line = f"{pod.name}: replaced in {t1 - t0:.1f}s"
                if was_leader:
                    assert pod.sigterm_at is not None
                    took_ms = 1000 * (handoffs[0].at - pod.sigterm_at)
                    line += f", was leader; {handoffs[0].leader} leads {took_ms:.0f} ms after SIGTERM"
                report.append(line)

                # A decision right after the replacement: committed and on every sidecar.
                path = "backup" if path == "primary" else "primary"
                other = next(p for p in pods_of(cluster, COORDINATOR) if p is not pod)
                out = _switch(cluster, other, path, f"roll {pod.name}")
                assert out["decision"]["paths"][0] == path
                switched.append(int(out["decision"]["epoch"]["revision"]))
                wait_for(cluster, f"sidecars on {path} after {pod.name}", all_on(path, HOSTS), timeout=30)
        finally:
            flow.stop()
            watch.stop()

        argv = ["failover", "history", GROUP, "--limit", "50", "--json"]
        history = kubectl_exec(cluster, pods_of(cluster, COORDINATOR)[0], argv)
        revisions = {int(d["epoch"]["revision"]) for d in history["decisions"]}
        assert set(switched) <= revisions, f"decisions lost: {sorted(set(switched) - revisions)}"

    kinds = ("ACKED", "REJECTED", "IN_DOUBT", "NO_PATH")
    print("\nrolling update:", *report, sep="\n  ")
    print(f"  orders: {flow.sent} sent, outcomes {dict(flow.outcomes)}")
    assert flow.without_outcome == 0, f"{flow.without_outcome} orders without an outcome"
    assert sum(flow.outcomes[k] for k in kinds) == flow.sent, (flow.sent, flow.outcomes)
    assert flow.sent > 100, "the strategy sent almost nothing during the roll"
