"""Child processes and loopback ports for the demo, the benchmarks and the tests.

One home for both, so a fix reaches every user:

- ``free_port``/``free_ports`` pick outside the kernel's ephemeral range (so no
  outgoing connection takes a port between the pick and a child's bind) and
  never hand out a port this process handed out recently (two children told
  the same port made tests fail);
- ``Child`` is a process we started in its own session with its output in a log
  file, signalled and stopped only by its pid (never by name), always reaped,
  and killed by the kernel if we die first (``PR_SET_PDEATHSIG``), so a killed
  test run leaves no etcd or coordinator behind.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Self

_recent: deque[int] = deque(maxlen=4096)
_rng = random.Random()  # seeded per process: concurrent runs pick apart

_SETPRIV = shutil.which("setpriv")  # util-linux
_SH = shutil.which("sh") or "/bin/sh"
# Run by the child after setpriv armed the signal: "$0" is the pid of the process that
# started it; a different parent means that one died before the signal was armed.
_PARENT_CHECK = '[ "$PPID" = "$0" ] || exit 125; exec "$@"'


def _dying_with_us(argv: list[str]) -> list[str]:
    """``argv`` run so that the kernel SIGKILLs it when we die (``PR_SET_PDEATHSIG``).

    Set by util-linux's ``setpriv`` just before it execs the command: a
    ``preexec_fn`` would run Python between fork and exec, which is unsafe in a
    process with threads (gRPC's) and was seen to crash the child. The kernel
    sends the signal when the *thread* that forked exits, so a child started
    from a worker thread gets none (it would die with that thread) and relies
    on our stop paths.

    A parent killed between the fork and setpriv's ``prctl`` leaves a child the
    kernel never signals (seen: `failover demo` SIGKILLed as it started its
    coordinators left one running). So, once the signal is armed, a shell checks
    that the parent is still us and execs the command (same pid), or exits 125.
    """
    if _SETPRIV is None or threading.current_thread() is not threading.main_thread():
        return argv
    return [_SETPRIV, "--pdeathsig", "KILL", "--", _SH, "-c", _PARENT_CHECK, str(os.getpid()), *argv]


_EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10000  # below this, well-known and registered services cluster
_MIN_SPAN = 2000


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections (Linux's default if unreadable)."""
    try:
        low, high = (int(x) for x in _EPHEMERAL_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def picking_range() -> tuple[int, int]:
    """Where ports are picked: below the ephemeral range, else above it.

    A port the kernel chose for ``bind(0)`` is an ephemeral one: between our
    release and a child's bind, any process's ``connect`` on the host may take
    it (CI saw a venue fail to bind its gateway this way). Outside the range, only
    another explicit bind can.
    """
    low, high = ephemeral_range()
    if low - 1 - _LOWEST >= _MIN_SPAN:
        return _LOWEST, low - 1
    if 65535 - (high + 1) >= _MIN_SPAN:
        return high + 1, 65535
    return 1024, 65535


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago and that this process has not handed out recently."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free a moment ago, outside the ephemeral range, none handed out recently.

    Each candidate is test-bound (without ``SO_REUSEADDR``, so a port with a
    connection still in TIME_WAIT is skipped too) and released for the caller's
    children to bind.
    """
    lo, hi = picking_range()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ports: list[int] = []
    for _ in range(200 * n):
        if len(ports) == n:
            break
        port = _rng.randint(lo, hi)
        if port in ports or port in _recent:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        ports.append(port)
    if len(ports) < n:
        raise OSError(f"no {n} fresh free port(s) found on {host} in {lo}-{hi}")
    _recent.extend(ports)
    return ports


def cli_argv(*args: str) -> list[str]:
    """``python -m failover.cli ARGS`` with this interpreter."""
    return [sys.executable, "-m", "failover.cli", *args]


def child_env(extra: Mapping[str, str] | None = None, *, drop_prefix: str | None = None) -> dict[str, str]:
    """This process's environment for a child, without variables starting with ``drop_prefix``
    (``FAILOVER_`` ones would override a child's config file), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if drop_prefix is None or not k.startswith(drop_prefix)}
    env.update(extra or {})
    return env


class ChildExited(RuntimeError):
    """A child that should be running has exited (the message ends with its log's tail)."""


class Child:
    """One child process we own: its own session, stdout and stderr appended to ``log_path``.

    ``start`` may be called again after the child exited (a restart; ``starts``
    counts them). Signals go to the pid of our own child only, and only while it
    runs; ``stop`` and ``kill`` always reap it.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        banner: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.banner = banner  # write a "--- start #N ---" line to the log before each start
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Self:
        self.starts += 1
        with open(self.log_path, "ab") as log:
            if self.banner:
                log.write(f"--- start #{self.starts} at {time.strftime('%H:%M:%S')} ---\n".encode())
                log.flush()
            self.proc = subprocess.Popen(
                _dying_with_us(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to our child while it runs (a no-op once it exited)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def terminate(self) -> None:
        """SIGTERM (and SIGCONT, in case it was stopped), without waiting."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)

    def kill(self, timeout: float = 10.0) -> int | None:
        """SIGKILL (a crash) and reap."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        return None if self.proc is None else self.proc.wait(timeout=timeout)

    def reap(self, timeout: float = 10.0) -> int | None:
        """Wait up to ``timeout`` for the child to exit, then SIGKILL it; returns its exit code."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; always reaps."""
        self.terminate()
        return self.reap(timeout)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def tail_lines(self, n: int = 15) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def check(self, what: str | None = None) -> None:
        """Raise ``ChildExited`` if the child was started and is no longer running."""
        if self.proc is not None and not self.alive:
            raise ChildExited(
                f"{what or self.name} exited (code {self.proc.returncode}); its log ends:\n{self.tail()}"
            )

    def wait_log(self, needle: str, timeout: float = 10.0) -> None:
        """Block until ``needle`` is in the log (polled: a file has no event to wait on)."""
        deadline = time.monotonic() + timeout
        while needle not in self.log():
            if not self.alive:
                raise ChildExited(f"{self.name} exited:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not in {self.name} log after {timeout}s:\n{self.tail()}")
            time.sleep(0.02)


def stop_all(children: Iterable[Child], grace_s: float = 5.0) -> list[str]:
    """SIGTERM every running child at once, reap them within one shared ``grace_s``, SIGKILL the rest.

    Returns the names of the children that needed SIGKILL.
    """
    live = [c for c in children if c.alive]
    for c in live:
        c.terminate()
    deadline = time.monotonic() + grace_s
    killed: list[str] = []
    for c in live:
        assert c.proc is not None
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.kill()
            killed.append(c.name)
    return killed
