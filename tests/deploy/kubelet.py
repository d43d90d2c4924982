"""Run the pods a rendered overlay describes as real processes on loopback.

A stand-in for the kubelet, cluster DNS and kube-proxy, no more:

* each pod gets its own loopback address (``127.A.B.n``, a fresh ``A.B`` per
  run), so every container binds exactly the ports its manifest names;
* each container runs its own command/args (the image's ENTRYPOINT, read from
  deploy/Dockerfile, when ``command`` is absent) with its own env, ``$(VAR)``
  expanded as Kubernetes does and downward-API fields filled in;
* volumes are directories under one temp root: hostPath per node, emptyDir per
  pod, ConfigMap files written where they are mounted; absolute paths under a
  mount are rewritten to that directory in args, env and config files;
* ``host:port`` names of Services are resolved as cluster DNS and kube-proxy
  would (per-pod names of a headless Service -> that pod, a ClusterIP Service
  port -> a selected pod's targetPort); a port the Service does not expose is
  an error, not a guess. The etcd StatefulSet is stood in for by the test's
  own etcd (``etcd-N.etcd:2379`` -> member N).

Anything the emulation cannot honour (Secrets, unknown fieldRefs) raises.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from failover.procs import Child
from tests.deploy.manifests import REPO, Obj, all_containers, dockerfile_final_stage, pod_spec

VENV_BIN = Path(sys.executable).parent
HOST_PORT = re.compile(r"(?<![\w.$/-])([a-z0-9][a-z0-9.-]*[a-z0-9]):(\d{1,5})\b")
VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
DNS_SUFFIXES = (".svc.cluster.local", ".svc")


class ManifestError(AssertionError):
    """The manifests describe something that cannot work."""


class PodFailed(AssertionError):
    """A container exited or never became ready; carries its log."""


@dataclass(frozen=True)
class Node:
    name: str
    labels: dict[str, str]
    taints: tuple[tuple[str, str, str], ...] = ()

    def admits(self, spec: Obj) -> bool:
        """nodeSelector matches and every NoSchedule taint is tolerated."""
        if any(self.labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            return False
        tolerations = spec.get("tolerations") or []
        for key, value, effect in self.taints:
            if not any(_tolerates(t, key, value, effect) for t in tolerations):
                return False
        return True


def _tolerates(t: Obj, key: str, value: str, effect: str) -> bool:
    if t.get("effect") not in (None, "", effect):
        return False
    if t.get("operator") == "Exists":
        return t.get("key") in (None, "", key)
    return t.get("key") == key and t.get("value") == value


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: ``$$`` escapes, unknown references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return VAR_REF.sub(sub, text)


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class Proc(Child):
    """One container's process; the pod's environment and working directory are given at start."""

    def start_in(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd = env, cwd
        self.start()

    @property
    def popen(self) -> subprocess.Popen[bytes] | None:
        return self.proc

    def failure(self, what: str) -> PodFailed:
        code = self.popen.poll() if self.popen else None
        return PodFailed(f"{self.name}: {what} (exit {code}); argv {self.argv}\n{self.log()[-3000:]}")


@dataclass
class Pod:
    name: str
    labels: dict[str, str]
    ip: str
    node: str
    spec: Obj
    owner: Obj
    procs: dict[str, Proc] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    killed: bool = False
    sigterm_at: float | None = None  # monotonic time of the last SIGTERM (after preStop)


class Cluster:
    """The pods of one rendered overlay, as processes. Use as a context manager."""

    def __init__(self, objs: list[Obj], root: Path, etcd_endpoints: list[str], nodes: list[Node]) -> None:
        self.objs = objs
        self.root = root
        self.etcd_endpoints = etcd_endpoints
        self.nodes = nodes
        self.services = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Service"}
        self.net = f"127.{random.randint(1, 250)}.{random.randint(1, 250)}."
        self._next_ip = 10
        self.pods: dict[str, Pod] = {}
        self.image = _image_from_dockerfile()

    # --- scheduling --------------------------------------------------------

    def plan(self, skip: tuple[str, ...] = ("etcd",)) -> list[Pod]:
        """Every pod the workloads ask for (the etcd StatefulSet is the test's own etcd)."""
        out: list[Pod] = []
        for o in self.objs:
            name = o["metadata"]["name"]
            if o["kind"] not in ("StatefulSet", "Deployment", "DaemonSet", "Pod") or name in skip:
                continue
            spec = pod_spec(o)
            meta = o["metadata"] if o["kind"] == "Pod" else o["spec"]["template"]["metadata"]
            labels = dict(meta["labels"])
            admitting = [n for n in self.nodes if n.admits(spec)]
            if not admitting:
                raise ManifestError(f"{o['kind']} {name}: no node admits it (nodeSelector/tolerations)")
            if o["kind"] == "StatefulSet":
                n = o["spec"]["replicas"]
                names = [(f"{name}-{i}", admitting[i % len(admitting)].name) for i in range(n)]
            elif o["kind"] == "Deployment":
                names = [(f"{name}-{i}", admitting[0].name) for i in range(o["spec"].get("replicas", 1))]
            elif o["kind"] == "DaemonSet":
                names = [(f"{name}-{n.name}", n.name) for n in admitting]
            else:
                names = [(name, admitting[0].name)]
            for pod_name, node in names:
                out.append(Pod(pod_name, labels, self._ip(), node, spec, o))
        return out

    def _ip(self) -> str:
        self._next_ip += 1
        return f"{self.net}{self._next_ip}"

    def add(self, pods: list[Pod]) -> None:
        for p in pods:
            self.pods[p.name] = p

    # --- DNS and kube-proxy -------------------------------------------------

    def resolve(self, host: str, port: int) -> str | None:
        """``host:port`` as a pod would reach it, or None when ``host`` is no Service name."""
        name = host
        for suffix in DNS_SUFFIXES:
            if name.endswith(suffix):
                name = name.removesuffix(suffix).rpartition(".")[0]  # drop the namespace
                break
        parts = name.split(".")
        pod_name: str | None = None
        if len(parts) == 1:
            svc_name = parts[0]
        elif len(parts) == 2 and parts[1] in self.services:
            pod_name, svc_name = parts
        elif len(parts) == 2 and parts[0] in self.services:
            svc_name = parts[0]  # <svc>.<namespace>
        else:
            return None
        svc = self.services.get(svc_name)
        if svc is None:
            return None
        ports = svc["spec"]["ports"]
        sp = next((p for p in ports if p["port"] == port), None)
        if sp is None:
            raise ManifestError(f"{host}:{port}: Service {svc_name} exposes no port {port}")
        headless = svc["spec"].get("clusterIP") == "None"
        if svc_name == "etcd":
            if pod_name is None or not re.fullmatch(r"etcd-\d+", pod_name) or sp.get("name") != "client":
                raise ManifestError(f"{host}:{port}: not an etcd member's client address")
            idx = int(pod_name.rsplit("-", 1)[1])
            if idx >= len(self.etcd_endpoints):
                raise ManifestError(f"{host}:{port}: no etcd member {idx}")
            return self.etcd_endpoints[idx]
        selected = [p for p in self.pods.values() if labels_match(svc["spec"]["selector"], p.labels)]
        if pod_name is not None:
            if not headless:
                raise ManifestError(f"{host}: per-pod names need a headless Service ({svc_name} is not)")
            selected = [p for p in selected if p.name == pod_name]
            if not selected:
                raise ManifestError(f"{host}: no pod {pod_name} behind Service {svc_name}")
        if not selected:
            raise ManifestError(f"{host}: Service {svc_name} selects no pod")
        pod = selected[0]
        target = _target_port(pod.spec, sp)
        if headless and target != port:
            raise ManifestError(
                f"{host}:{port}: headless Service {svc_name} maps {port} to {target}; DNS gives only "
                "the pod's address, so clients would dial the wrong port"
            )
        return f"{pod.ip}:{target}"

    def rewrite_addresses(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            resolved = self.resolve(m.group(1), int(m.group(2)))
            return resolved if resolved is not None else m.group(0)

        return HOST_PORT.sub(sub, text)

    # --- starting pods ---------------------------------------------------------

    def start(self, *pods: Pod, ready_timeout: float = 30.0) -> None:
        """Init containers to completion, then every container of every pod; wait until all are ready."""
        for pod in pods:
            self.pods[pod.name] = pod
            pod.killed = False
            shutil.rmtree(self.root / "pods" / pod.name, ignore_errors=True)
            (self.root / "pods" / pod.name).mkdir(parents=True)
            for c in pod.spec.get("initContainers", []):
                if c.get("restartPolicy") == "Always":
                    raise ManifestError(f"{pod.name}/{c['name']}: native sidecars are not emulated")
                proc = self._launch(pod, c)
                assert proc.popen is not None
                try:
                    code = proc.popen.wait(timeout=ready_timeout)
                except subprocess.TimeoutExpired:
                    raise proc.failure("init container did not finish") from None
                if code != 0:
                    raise proc.failure("init container failed")
            for c in pod.spec["containers"]:
                pod.procs[c["name"]] = self._launch(pod, c)
        for pod in pods:
            for c in pod.spec["containers"]:
                self._wait_ready(pod, c, ready_timeout)

    def host_path(self, pod: Pod, container: str, path: str) -> Path:
        """Where ``path`` inside a container of ``pod`` lives on this machine."""
        c = next(c for c in all_containers(pod.spec) if c["name"] == container)
        return Path(self._rewrite(path, self._mounts(pod, c, write=False)))

    def wait_file(self, pod: Pod, container: str, path: str, timeout: float = 30.0) -> Path:
        """Wait until a container creates ``path`` (e.g. its socket); raise if it exits first."""
        where = self.host_path(pod, container, path)
        proc = pod.procs[container]
        deadline = time.monotonic() + timeout
        while not where.exists():
            if not proc.alive:
                raise proc.failure(f"exited before creating {path}")
            if time.monotonic() > deadline:
                raise proc.failure(f"no {path} after {timeout}s")
            time.sleep(0.05)
        return where

    def _launch(self, pod: Pod, c: Obj) -> Proc:
        mounts = self._mounts(pod, c)
        env = self._env(pod, c, mounts)
        argv = [expand(a, env) for a in [*(c.get("command") or self.image["entrypoint"]), *c.get("args", [])]]
        argv = [self._rewrite(a, mounts) for a in argv]
        exe = shutil.which(argv[0], path=env["PATH"])
        if exe is None:
            raise ManifestError(f"{pod.name}/{c['name']}: {argv[0]!r} is not in the image")
        argv[0] = exe
        argv = [self.image["files"].get(a, a) for a in argv]
        proc = Proc(f"{pod.name}.{c['name']}", argv, self.root / f"{pod.name}.{c['name']}.log")
        proc.start_in(env, cwd=self.root)
        return proc

    def _mounts(self, pod: Pod, c: Obj, write: bool = True) -> dict[str, Path]:
        vols = {v["name"]: v for v in pod.spec.get("volumes", [])}
        out: dict[str, Path] = {}
        for m in c.get("volumeMounts", []):
            v = vols.get(m["name"])
            if v is None:
                raise ManifestError(f"{pod.name}/{c['name']}: mount of unknown volume {m['name']}")
            if "hostPath" in v:
                d = self.root / "nodes" / pod.node / v["hostPath"]["path"].lstrip("/")
                if v["hostPath"].get("type") == "Directory" and not d.is_dir():
                    raise ManifestError(f"{pod.name}: hostPath {v['hostPath']['path']} does not exist")
                d.mkdir(parents=True, exist_ok=True)
            elif "emptyDir" in v:
                d = self.root / "pods" / pod.name / m["name"]
                d.mkdir(parents=True, exist_ok=True)
            elif "configMap" in v:
                d = self.root / "pods" / pod.name / f"{c['name']}-{m['name']}"
                d.mkdir(parents=True, exist_ok=True)
            else:
                raise ManifestError(f"{pod.name}: volume {m['name']} of an unsupported kind {sorted(v)}")
            out[m["mountPath"]] = d
        # ConfigMap files last: their paths are rewritten with every mount of this container.
        for m in c.get("volumeMounts", []) if write else []:
            v = vols[m["name"]]
            if "configMap" in v:
                cm = next(
                    (
                        o
                        for o in self.objs
                        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == v["configMap"]["name"]
                    ),
                    None,
                )
                if cm is None:
                    raise ManifestError(f"{pod.name}: ConfigMap {v['configMap']['name']} is not rendered")
                for key, text in cm.get("data", {}).items():
                    (out[m["mountPath"]] / key).write_text(self.rewrite_addresses(self._rewrite(text, out)))
        return out

    def _env(self, pod: Pod, c: Obj, mounts: dict[str, Path]) -> dict[str, str]:
        env = dict(self.image["env"])
        env["HOSTNAME"] = pod.name
        env["HOME"] = str(self.root)
        for e in c.get("env", []):
            if "value" in e:
                value = expand(str(e["value"]), env)
            elif "fieldRef" in e.get("valueFrom", {}):
                value = self._field(pod, e["valueFrom"]["fieldRef"]["fieldPath"])
            else:
                raise ManifestError(f"{pod.name}/{c['name']}: env {e['name']}: source not emulated")
            env[e["name"]] = self.rewrite_addresses(self._rewrite(value, mounts))
        return env

    def _field(self, pod: Pod, path: str) -> str:
        fields = {
            "metadata.name": pod.name,
            "metadata.namespace": pod.owner["metadata"].get("namespace", "default"),
            "status.podIP": pod.ip,
            "spec.nodeName": pod.node,
        }
        if path not in fields:
            raise ManifestError(f"{pod.name}: fieldRef {path} not emulated")
        return fields[path]

    def _rewrite(self, text: str, mounts: dict[str, Path]) -> str:
        """One pass, so a rewritten path is never rewritten again (e.g. by a /tmp mount)."""
        if not mounts:
            return text
        alternatives = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
        pattern = rf"(?<![\w./-])({alternatives})(?=[/\s\"',\]]|$)"
        return re.sub(pattern, lambda m: str(mounts[m.group(1)]), text, flags=re.M)

    def _wait_ready(self, pod: Pod, c: Obj, timeout: float) -> None:
        proc = pod.procs[c["name"]]
        probe = c.get("readinessProbe")
        deadline = time.monotonic() + timeout
        while True:
            if not proc.alive:
                raise proc.failure("exited before it was ready")
            if probe is None or _probe(pod.ip, probe, c):
                return
            if time.monotonic() > deadline:
                raise proc.failure(f"not ready after {timeout}s")
            time.sleep(0.1)

    # --- stopping pods ---------------------------------------------------------

    def terminate(self, pod: Pod) -> dict[str, int | None]:
        """The kubelet's way: preStop hooks, then SIGTERM, SIGKILL at the grace period's end."""
        grace = pod.spec.get("terminationGracePeriodSeconds", 30)
        deadline = time.monotonic() + grace
        for c in pod.spec["containers"]:
            pre = (c.get("lifecycle") or {}).get("preStop")
            if pre and "sleep" in pre:
                time.sleep(pre["sleep"]["seconds"])
            elif pre:
                raise ManifestError(f"{pod.name}: preStop {sorted(pre)} not emulated")
        pod.sigterm_at = time.monotonic()
        for proc in pod.procs.values():
            if proc.alive:
                assert proc.popen is not None
                os.killpg(proc.popen.pid, signal.SIGTERM)
        for name, proc in pod.procs.items():
            assert proc.popen is not None
            try:
                pod.exit_codes[name] = proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pod.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                pod.exit_codes[name] = proc.popen.wait(timeout=10)
        return pod.exit_codes

    def check_alive(self, *names: str) -> None:
        """Raise with the log of any long-running container of these pods that exited."""
        for pod in self.pods.values():
            if names and pod.name not in names:
                continue
            if pod.spec.get("restartPolicy") == "Never":
                continue
            for proc in pod.procs.values():
                if proc.popen is not None and not proc.alive:
                    raise proc.failure("exited")

    def close(self) -> None:
        for pod in self.pods.values():
            for proc in pod.procs.values():
                if proc.alive:
                    assert proc.popen is not None
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.popen.pid, signal.SIGTERM)
        for pod in self.pods.values():
            for proc in pod.procs.values():
                if proc.popen is not None:
                    try:
                        proc.popen.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.popen.pid, signal.SIGKILL)
                        proc.popen.wait(timeout=10)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _target_port(spec: Obj, service_port: Obj) -> int:
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    for c in all_containers(spec):
        for p in c.get("ports", []):
            if p.get("name") == target:
                return int(p["containerPort"])
    raise ManifestError(f"targetPort {target!r} names no container port")


def _probe(ip: str, probe: Obj, container: Obj) -> bool:
    """One readiness probe as the kubelet would run it against the pod's address."""
    if "grpc" in probe:
        with grpc.insecure_channel(f"{ip}:{probe['grpc']['port']}") as ch:
            try:
                resp = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")), timeout=1
                )
            except grpc.RpcError:
                return False
            return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)
    if "tcpSocket" in probe:
        port = probe["tcpSocket"]["port"]
        if not isinstance(port, int):
            named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
            if not named:
                raise ManifestError(f"tcpSocket probe on port {port!r}: no such container port")
            port = named[0]
        with contextlib.suppress(OSError), socket.create_connection((ip, port), timeout=1):
            return True
        return False
    raise ManifestError(f"readiness probe {sorted(probe)} not emulated")


def _image_from_dockerfile() -> dict[str, Any]:
    """ENTRYPOINT, ENV and the files the final stage copies, mapped onto this checkout."""
    entrypoint: list[str] = []
    files: dict[str, str] = {}
    env = {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin"}
    for line in dockerfile_final_stage():
        word, _, rest = line.partition(" ")
        if word.upper() == "ENTRYPOINT":
            import json

            entrypoint = json.loads(rest)
        elif word.upper() == "COPY" and "--from" not in rest:
            src, dst = rest.split()
            files[dst] = str(REPO / src)
        elif word.upper() == "ENV":
            for k, v in re.findall(r"(\w+)=(\S+)", rest):
                if k != "PATH":  # the image's venv is this checkout's venv
                    env[k] = v
    assert entrypoint, "deploy/Dockerfile has no ENTRYPOINT"
    return {"entrypoint": entrypoint, "files": files, "env": env}
