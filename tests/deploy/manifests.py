"""Render the Kustomize overlays and read the objects they describe."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
# The Kubernetes version the manifests are validated against (kubernetes-validate schemas).
KUBE_VERSION = "1.32.0"

Obj = dict[str, Any]


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render_text(path: Path) -> str:
    exe = kubectl()
    assert exe is not None
    done = subprocess.run([exe, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed:\n{done.stderr}")
    return done.stdout


def render_with_components(overlay: str, components: list[str], workdir: Path) -> str:
    """An overlay with components added to its own ``components``, as an operator adds them.

    The tree is copied, so the repository's overlay stays as it is. A component must sit in
    the overlay that generates the ConfigMaps: listed one level up, the name references it
    adds would miss the generated names' hash suffix."""
    tree = workdir / "k8s"
    shutil.copytree(K8S, tree)
    kfile = tree / "overlays" / overlay / "kustomization.yaml"
    k = yaml.safe_load(kfile.read_text())
    k["components"] = [*k.get("components", []), *(f"../../components/{c}" for c in components)]
    kfile.write_text(yaml.safe_dump(k, sort_keys=False))
    return render_text(kfile.parent)


def parse(text: str) -> list[Obj]:
    return [o for o in yaml.safe_load_all(text) if o]


def find(objs: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    return spec


def all_containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in ("StatefulSet", "Deployment", "DaemonSet", "Pod")]


def config_file(objs: list[Obj], workload: Obj, container: str, mount_path: str) -> tuple[str, str]:
    """(file name, contents) of the ConfigMap file a container reads under ``mount_path``."""
    spec = pod_spec(workload)
    c = next(c for c in all_containers(spec) if c["name"] == container)
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == mount_path)
    vol = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    cm = one(objs, "ConfigMap", vol["configMap"]["name"])
    (name, text), *rest = cm["data"].items()
    assert not rest, f"ConfigMap {cm['metadata']['name']} holds more than one file"
    return name, text


def dockerfile_final_stage() -> list[str]:
    """Instruction lines of the Dockerfile's last stage (continuations joined)."""
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    last = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last:]
