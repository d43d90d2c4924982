"""What every benchmark prints and writes: progress lines, the header, tables, the JSON file.

Progress goes to stderr, the header and tables to stdout, raw results to
``--json FILE`` (``failover.machine.write_json``). The header says which
command, machine, software and code produced the figures, so a pasted result
carries its own provenance.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.table import Table

from failover.machine import code_info, machine_info, write_json
from failover.stats import Latency

# Wide enough for the tables when stdout is a file or a pipe (rich assumes 80 then).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
_started = time.monotonic()
_PACKAGE = Path(__file__).resolve().parent.parent  # failover/


class BenchFailure(RuntimeError):
    """A measurement could not be completed (the message says which and why)."""


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the command started."""
    print(f"[{time.monotonic() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


def fmt_ms(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2f}"


def fmt_us(v: Any) -> str:
    return "-" if v is None else f"{float(v):,.0f}"


def print_stats(title: str, rows: list[Latency]) -> None:
    """The result table (p50/p99/max in ms), then what each row measures."""
    t = Table(title=title, title_justify="left")
    t.add_column("measure")
    t.add_column("n", justify="right")
    for col in ("p50 ms", "p99 ms", "max ms"):
        t.add_column(col, justify="right")
    for s in rows:
        t.add_row(s.name, str(s.count), fmt_ms(s.ms(50)), fmt_ms(s.ms(99)), fmt_ms(s.ms(None)))
    out.print(t)
    for s in rows:
        out.print(f"  {s.name}: {s.what}")


def _module_of(script: str) -> str | None:
    """``failover.bench.relay`` when ``script`` is a file of this package run with ``python -m``."""
    with contextlib.suppress(ValueError, OSError):
        rel = Path(script).resolve().relative_to(_PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts and parts[0] == "failover":
            if parts[-1] == "__main__":
                parts.pop()
            return ".".join(parts)
    return None


def command_line(subcommand: str, params: dict[str, Any]) -> str:
    """The command line as typed; when invoked in-process (tests), an equivalent one."""
    argv = list(sys.argv) or [""]
    module = _module_of(argv[0])
    if module is not None:
        return shlex.join([sys.executable, "-m", module, *argv[1:]])
    if subcommand in argv[1:]:
        if os.path.basename(argv[0]) == "failover":
            return shlex.join(["failover", *argv[1:]])
        return shlex.join(argv)
    flags: list[str] = []
    for k, v in params.items():
        if v is None or v is False:
            continue
        flag = "--json" if k == "json_out" else f"--{k.replace('_', '-')}"
        for item in v if isinstance(v, list) else [v]:
            flags.append(flag)
            if item is not True:
                flags.append(str(item))
    return shlex.join(["failover", "bench", subcommand, *flags]) + "   (in-process; equivalent command)"


def print_header(
    title: str,
    cmd: str,
    params: dict[str, Any],
    *,
    network: str = "loopback (127.0.0.1) only",
    etcd: bool = False,
    extra: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Print what produced the figures; returns the ``machine`` block of the JSON (with ``code``)."""
    info = machine_info(network, etcd=etcd)
    out.rule(title)
    out.print(f"command:  {cmd}", markup=False)
    out.print(f"started:  {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    out.print(
        f"machine:  {info['cpus_usable']} usable cores ({info['cpu_model']}), Linux {info['kernel']}, "
        f"{info['network']}",
        markup=False,
    )
    software = f"software: Python {info['python']}, grpcio {info['grpcio']}"
    out.print(software + (f", {info['etcd']}" if etcd else ""), markup=False)
    code = info["code"] = code_info()
    dirty = f", modified: {', '.join(code['dirty'])}" if code["dirty"] else ""
    out.print(f"code:     {code['path']} at {code['commit'][:12]}{dirty}", markup=False)
    la = info["load_average_at_start"]
    out.print(f"load:     load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} at start (shared cores)")
    out.print("params:   " + ", ".join(f"{k}={v}" for k, v in params.items()), markup=False)
    for k, v in (extra or {}).items():
        out.print(f"{k + ':':9s} {v}", markup=False)
    for n in notes or []:
        out.print(f"note:     {n}", markup=False)
    return info


def write_results(path: Path | None, doc: dict[str, Any]) -> None:
    """Write the raw results to ``--json FILE`` (if given) and say so on stderr."""
    if path is not None:
        write_json(path, doc)
        progress(f"raw results written to {path}")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so ``finally`` blocks stop every child (main thread only)."""
    previous: Any = None
    with contextlib.suppress(ValueError):  # not the main thread: keep the default
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
