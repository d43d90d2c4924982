"""``failover bench cli-startup``: how long an operator command takes to reach a coordinator.

During an incident, ``failover switch`` first waits for Python to load the CLI. A sample is
the time from spawning the command to the moment its TCP connection arrives at a socket
this benchmark listens on (the command's "coordinator"), plus the CPU the command used
until then (read from /proc while it is still connected). The connection is then closed,
so the command fails at once and exits; nothing else runs. Commands are measured in
rotation, so load from other processes hits every row alike. The floor row is the bare
interpreter opening the same connection.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from failover.bench.report import (
    BenchFailure,
    command_line,
    out,
    print_header,
    print_stats,
    progress,
    sigterm_as_interrupt,
    write_results,
)
from failover.cli_values import finite_seconds
from failover.machine import MachineLoad, load_line, proc_cpu_s
from failover.procs import Child, child_env, cli_argv
from failover.stats import Latency

_FLOOR = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1]))).recv(1)"


def _commands(port: int) -> dict[str, list[str]]:
    target = f"127.0.0.1:{port}"
    return {
        "status": cli_argv("status", "-c", target),
        "switch": cli_argv("switch", "bench-group", "primary", "--reason", "bench", "-c", target),
        "python floor": [sys.executable, "-c", _FLOOR, str(port)],
    }


def _one(name: str, argv: list[str], srv: socket.socket, logs: Path, timeout_s: float) -> tuple[int, float]:
    """Spawn ``argv``; return (ns from spawn to its connection, CPU seconds it used by then)."""
    child = Child(name, argv, logs / f"{name.replace(' ', '-')}.log", env=child_env(drop_prefix="FAILOVER_"))
    t0 = time.monotonic_ns()
    child.start()
    try:
        srv.settimeout(timeout_s)
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            raise BenchFailure(
                f"{name}: no connection within {timeout_s:.0f} s; its log ends:\n{child.tail()}"
            ) from None
        elapsed = time.monotonic_ns() - t0
        cpu = proc_cpu_s(child.pid)
        conn.close()
    finally:
        child.reap(timeout_s)
    return elapsed, cpu


def cli_startup(
    runs: Annotated[int, typer.Option("--runs", min=1, max=1000, help="Samples per command.")] = 30,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=1, callback=finite_seconds, help="Seconds a command may take to connect."
        ),
    ] = 60.0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write raw results (every sample) to this file.")
    ] = None,
) -> None:
    """Operator command start-up: spawn -> connected to the coordinator, and CPU until then."""
    params: dict[str, Any] = {"runs": runs, "timeout": timeout, "json_out": json_out}
    info = print_header("failover bench cli-startup", command_line("cli-startup", params), params)
    load = MachineLoad()
    wall = {
        n: Latency(n, f"spawn `{n}` -> its TCP connection accepted")
        for n in ("status", "switch", "python floor")
    }
    cpu = {n: Latency(f"{n} CPU", f"user+sys CPU of `{n}` until it connected") for n in wall}
    code = 0
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="fo-cli-startup-") as tmp:
        srv = socket.create_server(("127.0.0.1", 0))
        commands = _commands(srv.getsockname()[1])
        try:
            for i in range(runs):
                for name, argv in commands.items():
                    ns, cpu_s = _one(name, argv, srv, Path(tmp), timeout)
                    wall[name].record_ns(ns)
                    cpu[name].record_ns(round(cpu_s * 1e9))
                if (i + 1) % 10 == 0 or i + 1 == runs:
                    progress(f"{i + 1}/{runs} rounds")
        except KeyboardInterrupt:
            code = 130
        except BenchFailure as exc:
            out.print(f"[red]FAILED:[/red] {exc}")
            code = 1
        finally:
            srv.close()
    print_stats("start-up to first connection", list(wall.values()))
    print_stats("CPU until connected (10 ms clock ticks)", list(cpu.values()))
    ml = load.finish()
    out.print(load_line(ml))
    doc = {
        "benchmark": "cli-startup",
        "machine": info,
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in params.items()},
        "machine_load": ml,
        "results": {s.name: s.to_json() for s in (*wall.values(), *cpu.values())},
        "ok": code == 0,
    }
    write_results(json_out, doc)
    if code:
        raise typer.Exit(code)
