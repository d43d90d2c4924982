"""Start and stop local etcd servers (tests, the demo).

Members listen on loopback with free ports and keep their data on tmpfs when
available (fsync jitter on shared cores otherwise churns etcd's own leader).
etcd's default timers are kept on purpose: fast timers make etcd re-elect its
own leader constantly on two shared cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from failover.procs import Child, free_ports


class EtcdNotFound(RuntimeError):
    """No etcd binary on PATH."""


def etcd_binary() -> str:
    found = shutil.which("etcd") or (os.path.exists("/usr/bin/etcd") and "/usr/bin/etcd")
    if not found:
        raise EtcdNotFound(
            "etcd is not on PATH: install Debian's etcd-server package or pass --etcd ENDPOINTS"
        )
    return str(found)


@dataclass(frozen=True)
class EtcdTls:
    """Client-certificate auth on the client port (``--client-cert-auth``, https URLs).

    ``cert_file``/``key_file`` are the server's; ``client_cert_file``/``client_key_file``
    a client certificate from the same CA, used only for our own /health probes.
    Peer traffic stays on loopback http.
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    client_cert_file: Path
    client_key_file: Path

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.client_cert_file), str(self.client_key_file))
        return ctx


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    child: Child | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return None if self.child is None else self.child.proc

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.alive


@dataclass
class EtcdCluster:
    """A loopback etcd cluster of ``size`` members, each a child process we own."""

    size: int = 3
    base_dir: Path | None = None
    members: list[Member] = field(default_factory=list)
    token: str = ""
    quota_backend_bytes: int = 256 * 1024 * 1024  # small values let a test raise the NOSPACE alarm
    _own_dir: bool = False
    # Client-certificate auth on https client URLs; None: plain http (the default).
    tls: EtcdTls | None = None

    def __post_init__(self) -> None:
        if self.base_dir is None:
            root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
            self.base_dir = Path(tempfile.mkdtemp(prefix="failover-etcd-", dir=root))
            self._own_dir = True
        self.token = f"failover-{os.getpid()}-{time.monotonic_ns()}"
        ports = free_ports(2 * self.size)
        for i in range(self.size):
            name = f"m{i}"
            self.members.append(
                Member(
                    name=name,
                    client_port=ports[2 * i],
                    peer_port=ports[2 * i + 1],
                    data_dir=self.base_dir / name,
                    log_path=self.base_dir / f"{name}.log",
                )
            )

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def _tls_args(self) -> list[str]:
        t = self.tls
        if t is None:
            return []
        return [
            "--client-cert-auth",
            "--trusted-ca-file",
            str(t.ca_file),
            "--cert-file",
            str(t.cert_file),
            "--key-file",
            str(t.key_file),
        ]

    def _initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def _start_member(self, m: Member, state: str = "new") -> None:
        args = [
            etcd_binary(),
            "--name",
            m.name,
            "--data-dir",
            str(m.data_dir),
            "--listen-client-urls",
            f"{self.scheme}://{m.endpoint}",
            "--advertise-client-urls",
            f"{self.scheme}://{m.endpoint}",
            *self._tls_args(),
            "--listen-peer-urls",
            m.peer_url,
            "--initial-advertise-peer-urls",
            m.peer_url,
            "--initial-cluster",
            self._initial_cluster(),
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            self.token,
            "--quota-backend-bytes",
            str(self.quota_backend_bytes),
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "10000",
            "--log-level",
            "warn",
        ]
        m.child = Child(f"etcd-{m.name}", args, m.log_path).start()

    def start(self, timeout_s: float = 20.0) -> None:
        for m in self.members:
            self._start_member(m)
        self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 20.0, members: list[Member] | None = None) -> None:
        """Block until every given running member answers /health with true."""
        deadline = time.monotonic() + timeout_s
        pending = [m for m in (members or self.members) if m.running]
        while pending:
            m = pending[0]
            if m.proc is not None and m.proc.poll() is not None:
                raise RuntimeError(f"etcd member {m.name} exited: {m.log_path.read_text()[-2000:]}")
            try:
                ctx = self.tls.client_context() if self.tls is not None else None
                with urllib.request.urlopen(
                    f"{self.scheme}://{m.endpoint}/health", timeout=1, context=ctx
                ) as r:
                    if b'"true"' in r.read():
                        pending.pop(0)
                        continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd member {m.name} not healthy after {timeout_s}s")
            time.sleep(0.05)

    def leader_index(self, skip: int = -1) -> int:
        """Index of the member that is etcd's own raft leader (-1 if none answers);
        ``skip``: a member not to ask (a paused one would hold the query for its timeout)."""
        ctx = self.tls.client_context() if self.tls is not None else None
        for i, m in enumerate(self.members):
            if i == skip or not m.running:
                continue
            req = urllib.request.Request(
                f"{self.scheme}://{m.endpoint}/v3/maintenance/status", data=b"{}", method="POST"
            )
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(req, timeout=1, context=ctx) as r,
            ):
                st = json.loads(r.read())
                if st.get("leader") and st["leader"] == st.get("header", {}).get("member_id"):
                    return i
        return -1

    def kill(self, index: int) -> None:
        """SIGKILL one member (a crash)."""
        m = self.members[index]
        if m.child is not None and m.child.alive:
            m.child.kill()

    def stop_member(self, index: int) -> None:
        """SIGTERM one member, SIGKILL after 10 s; reaped either way."""
        m = self.members[index]
        if m.child is not None and m.child.alive:
            m.child.stop(timeout=10)

    def restart(self, index: int, timeout_s: float = 20.0, wait: bool = True) -> None:
        """Start a stopped member again on its old data (rejoins the cluster).

        ``wait=False`` only starts it (call from the main thread, then ``wait_healthy``
        anywhere): a member started from a worker thread does not die with us.
        """
        m = self.members[index]
        if m.running:
            return
        self._start_member(m, state="existing" if m.data_dir.exists() else "new")
        if wait:
            self.wait_healthy(timeout_s, [m])

    def signal_member(self, index: int, sig: int) -> None:
        m = self.members[index]
        if m.child is not None:
            m.child.signal(sig)

    def stop(self) -> None:
        for i in range(len(self.members)):
            self.stop_member(i)
        if self._own_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
