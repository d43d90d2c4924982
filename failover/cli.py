"""The ``failover`` command line: one entry point, a subcommand per job.

Errors are one clear line on stderr and a non-zero exit (2: bad input or
config, 1: the operation failed), never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import grpc
import typer
from google.protobuf import json_format
from rich.console import Console

from failover.config_source import ConfigError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="gRPC failover coordinator for trading connectivity."
)
era_app = typer.Typer(no_args_is_help=True, help="The era that orders decisions across etcd restores.")
group_app = typer.Typer(no_args_is_help=True, help="Route group definitions.")
app.add_typer(era_app, name="era")
app.add_typer(group_app, name="group")

err = Console(stderr=True, soft_wrap=True)
out = Console()
T = TypeVar("T")

Coordinators = Annotated[
    str,
    typer.Option(
        "--coordinators",
        "-c",
        envvar="FAILOVER_COORDINATORS",
        help="Comma-separated replica addresses; the first that answers is used.",
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Operator = Annotated[
    str,
    typer.Option("--operator", help="Who is acting (default: the login name).", envvar="FAILOVER_OPERATOR"),
]
DEFAULT_COORDINATORS = "127.0.0.1:7001"


def fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except grpc.aio.AioRpcError as exc:
        fail(f"{exc.code().name}: {exc.details()}", 1)
    except ConfigError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(str(exc), 1)
    except Exception as exc:  # a bug: say so in one line, keep the details in the log
        logging.getLogger("failover").exception("unexpected error")
        fail(f"unexpected error: {exc!r} (details in the log)", 1)
    raise AssertionError


async def with_admin(addresses: str, call: Callable[[Any], Awaitable[T]]) -> T:
    """Call the first replica that answers (UNAVAILABLE moves on to the next)."""
    from failover import rpc
    from failover.v1 import admin_pb2_grpc

    targets = [a.strip() for a in addresses.split(",") if a.strip()]
    if not targets:
        fail("--coordinators: give at least one host:port")
    last: grpc.aio.AioRpcError | None = None
    for target in targets:
        async with rpc.channel(target) as ch:
            try:
                return await call(admin_pb2_grpc.AdminStub(ch))
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                last = exc
    assert last is not None
    raise last


def print_json(msg: Any) -> None:
    print(
        json_format.MessageToJson(
            msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    )


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run a server coroutine until SIGINT/SIGTERM sets the stop event."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    run_async(runner())


def serve(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a server until SIGINT/SIGTERM, then cancel it (its finally blocks clean up)."""

    async def main(stop: asyncio.Event) -> None:
        task = asyncio.create_task(make())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run_until_signal(main)


# --- coordinator -------------------------------------------------------------


@app.command()
def coordinator(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    replica_id: Annotated[str | None, typer.Option("--id", help="Replica id (overrides the file).")] = None,
    listen: Annotated[str | None, typer.Option("--listen", help="host:port to serve on.")] = None,
    advertise: Annotated[
        str | None, typer.Option("--advertise", help="host:port peers and sidecars use.")
    ] = None,
    etcd: Annotated[str | None, typer.Option("--etcd", help="Comma-separated etcd endpoints.")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    log_format: Annotated[str, typer.Option("--log-format", help="console or json")] = "console",
) -> None:
    """Run one coordinator replica (elects a leader through etcd, serves sidecars)."""
    from coordinator.config import CoordinatorConfig
    from coordinator.replica import Replica
    from failover import logs
    from failover.config_source import load

    overrides: dict[str, Any] = {"replica_id": replica_id, "listen": listen, "advertise": advertise}
    try:
        if etcd:
            from failover.config_source import read_yaml

            section = dict(read_yaml(config).get("etcd") or {})
            section["endpoints"] = [e.strip() for e in etcd.split(",") if e.strip()]
            overrides["etcd"] = section
        cfg = load(CoordinatorConfig, config, overrides)
    except ConfigError as exc:
        fail(f"config: {exc}")
        return
    logs.setup(log_level, log_format, cfg.replica_id)

    serve(lambda: Replica(cfg).run())


@app.command()
def sidecar(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    host_id: Annotated[
        str | None, typer.Option("--host-id", help="This host's id (overrides the file).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    log_format: Annotated[str, typer.Option("--log-format", help="console or json")] = "console",
) -> None:
    """Run the sidecar of one trading host: warm paths, flips, the strategy API."""
    from failover_sidecar.app import SidecarApp
    from failover_sidecar.config import SidecarConfig
    from failover_sidecar.state_file import StateFileError

    from failover import logs
    from failover.config_source import load

    try:
        cfg = load(SidecarConfig, config, {"host_id": host_id})
        app_ = SidecarApp(cfg)
    except (ConfigError, StateFileError) as exc:
        fail(f"config: {exc}")
        return
    logs.setup(log_level, log_format, cfg.host_id)

    serve(app_.run)


@app.command("sidecar-status")
def sidecar_status(
    socket: Annotated[str, typer.Option("--socket", help="The sidecar's unix socket (or host:port).")],
    as_json: JsonFlag = False,
) -> None:
    """One sidecar's own view: effective routes, deviations, flips, counters."""
    from failover import rpc
    from failover.status_view import render_sidecar
    from failover.v1 import sidecar_pb2 as spb
    from failover.v1 import sidecar_pb2_grpc

    target = socket if ":" in socket and not socket.startswith("/") else f"unix:{socket}"

    async def call() -> spb.SidecarLocalStatus:
        async with rpc.channel(target) as ch:
            st: spb.SidecarLocalStatus = await sidecar_pb2_grpc.SidecarStub(ch).GetStatus(
                spb.SidecarStatusRequest(), timeout=5
            )
            return st

    st = run_async(call())
    if as_json:
        print_json(st)
    else:
        render_sidecar(st, out)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="Shorter waits (CI).")] = False,
    repeat: Annotated[
        int, typer.Option("--repeat", min=1, max=100, help="Run the script this many times.")
    ] = 1,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the timeline to this file.")] = None,
    etcd: Annotated[
        str | None, typer.Option("--etcd", help="Use this etcd (comma-separated endpoints).")
    ] = None,
    heartbeat_ms: Annotated[int, typer.Option("--heartbeat-ms", min=1, max=1000)] = 50,
    interval_ms: Annotated[float, typer.Option("--order-interval-ms", min=1.0, max=1000.0)] = 10.0,
    hosts: Annotated[int, typer.Option("--hosts", min=1, max=50, help="Sidecars (hosts) to start.")] = 3,
    keep_logs: Annotated[bool, typer.Option("--keep-logs", help="Keep the processes' logs.")] = False,
    pid_file: Annotated[Path | None, typer.Option("--pid-file", hidden=True)] = None,
) -> None:
    """A local cluster (etcd, 3 coordinators, a venue, 3 sidecars) and scripted failovers, measured."""
    from failover import logs
    from failover.demo.run import DemoOptions, run_demo

    logs.setup("warning")
    # A shell may start us with SIGINT ignored (background jobs); Ctrl-C and SIGTERM must
    # still stop the demo and everything it started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # Progress must show as it happens, also when stdout is a pipe.
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    eps = [e.strip().removeprefix("http://") for e in etcd.split(",")] if etcd else None
    opts = DemoOptions(
        quick=quick,
        repeat=repeat,
        json_path=json_path,
        etcd=eps,
        heartbeat_ms=heartbeat_ms,
        order_interval_ms=interval_ms,
        hosts=hosts,
        keep_logs=keep_logs,
        pid_file=pid_file,
    )
    try:
        code = asyncio.run(run_demo(opts, out))
    except KeyboardInterrupt:
        err.print("interrupted: every process the demo started was stopped")
        raise typer.Exit(130) from None
    raise typer.Exit(code)


# --- operator commands ---------------------------------------------------------


@app.command()
def status(coordinators: Coordinators = DEFAULT_COORDINATORS, as_json: JsonFlag = False) -> None:
    """Leader, replicas, groups, routes, epochs and connected sidecars."""
    from failover.status_view import render_status
    from failover.v1 import admin_pb2 as apb

    st = run_async(with_admin(coordinators, lambda s: s.GetStatus(apb.GetStatusRequest(), timeout=5)))
    if as_json:
        print_json(st)
    else:
        render_status(st, out)


@app.command()
def switch(
    group: Annotated[str, typer.Argument(help="Route group.")],
    path: Annotated[str, typer.Argument(help="Path to make active.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the decision).")],
    operator: Operator = "",
    force: Annotated[bool, typer.Option("--force", help="Skip guard rails.")] = False,
    coordinators: Coordinators = DEFAULT_COORDINATORS,
    as_json: JsonFlag = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the commit.", min=0.1)
    ] = 10.0,
) -> None:
    """Operator switch: commit a decision with PATH active (through the leader)."""
    from failover.v1 import admin_pb2 as apb

    req = apb.SwitchRequest(
        group=group, path=path, reason=reason, operator=operator or login_name(), force=force
    )
    resp = run_async(with_admin(coordinators, lambda s: s.Switch(req, timeout=timeout)))
    if as_json:
        print_json(resp)
    else:
        d = resp.decision
        out.print(
            f"{group}: {' > '.join(d.paths)} at epoch {d.epoch.era}:{d.epoch.revision} ({resp.message})"
        )


@app.command()
def history(
    group: Annotated[str, typer.Argument(help="Route group.")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20,
    coordinators: Coordinators = DEFAULT_COORDINATORS,
    as_json: JsonFlag = False,
) -> None:
    """Decisions of a group, newest first."""
    from failover.status_view import render_history
    from failover.v1 import admin_pb2 as apb

    resp = run_async(
        with_admin(coordinators, lambda s: s.History(apb.HistoryRequest(group=group, limit=limit), timeout=5))
    )
    if as_json:
        print_json(resp)
    else:
        render_history(group, resp, out)


@era_app.command("bump")
def era_bump(
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. 'restored etcd from snapshot X').")],
    operator: Operator = "",
    expected: Annotated[int, typer.Option("--expected", help="Only bump if the era is this (0: any).")] = 0,
    coordinators: Coordinators = DEFAULT_COORDINATORS,
) -> None:
    """Bump the era after an etcd restore, so new decisions order after every earlier one."""
    from failover.v1 import admin_pb2 as apb

    req = apb.BumpEraRequest(operator=operator or login_name(), reason=reason, expected_era=expected)
    resp = run_async(with_admin(coordinators, lambda s: s.BumpEra(req, timeout=5)))
    out.print(f"era is now {resp.era}")


@group_app.command("put")
def group_put(
    file: Annotated[Path, typer.Argument(help="YAML file with one group definition (name, paths, policy).")],
    create_only: Annotated[bool, typer.Option("--create-only", help="Fail if the group exists.")] = False,
    coordinators: Coordinators = DEFAULT_COORDINATORS,
) -> None:
    """Create or replace a group definition (validated; an invalid one changes nothing)."""
    from pydantic import ValidationError

    from failover.config_source import read_yaml
    from failover.model.convert import group_pb
    from failover.model.spec import GroupSpec, describe_validation_error
    from failover.v1 import admin_pb2 as apb

    try:
        spec = GroupSpec.model_validate(read_yaml(file))
    except ConfigError as exc:
        fail(str(exc))
        return
    except ValidationError as exc:
        fail(f"{file}: {describe_validation_error(exc)}")
        return
    req = apb.PutGroupRequest(definition=group_pb(spec, 0), create_only=create_only)
    resp = run_async(with_admin(coordinators, lambda s: s.PutGroup(req, timeout=5)))
    out.print(f"group {spec.name} stored at revision {resp.definition.mod_revision}")


def _control(
    action_name: str, group: str, path: str, reason: str, operator: str, force: bool, coordinators: str
) -> None:
    from failover.v1 import admin_pb2 as apb

    action = getattr(apb, f"CONTROL_ACTION_{action_name.upper()}")
    req = apb.SetControlRequest(
        action=action, group=group, path=path, reason=reason, operator=operator or login_name(), force=force
    )
    resp = run_async(with_admin(coordinators, lambda s: s.SetControl(req, timeout=10)))
    out.print(resp.message)


def _make_control(action: str, with_path: bool, doc: str) -> None:
    if with_path:

        def cmd(
            group: Annotated[str, typer.Argument()],
            path: Annotated[str, typer.Argument()],
            reason: Annotated[str, typer.Option("--reason")] = "",
            operator: Operator = "",
            force: Annotated[bool, typer.Option("--force")] = False,
            coordinators: Coordinators = DEFAULT_COORDINATORS,
        ) -> None:
            _control(action, group, path, reason, operator, force, coordinators)
    else:

        def cmd(  # type: ignore[misc]
            group: Annotated[str, typer.Argument()],
            reason: Annotated[str, typer.Option("--reason")] = "",
            operator: Operator = "",
            force: Annotated[bool, typer.Option("--force")] = False,
            coordinators: Coordinators = DEFAULT_COORDINATORS,
        ) -> None:
            _control(action, group, "", reason, operator, force, coordinators)

    cmd.__doc__ = doc
    app.command(action)(cmd)


for _action, _with_path, _doc in [
    ("drain", True, "Never choose PATH in GROUP; move off it if active (--force: also the pinned path)."),
    ("undrain", True, "Allow PATH again."),
    ("pin", True, "Keep GROUP on PATH: no automatic moves."),
    ("unpin", False, "Remove a pin."),
    ("pause", False, "No automatic decisions for GROUP."),
    ("resume", False, "Lift pause and halt."),
    ("halt", False, "Kill switch: a decision with no path; sidecars stop sending."),
]:
    _make_control(_action, _with_path, _doc)


def _mount_optional() -> None:
    from failover.venue.cli import venue_app

    app.add_typer(venue_app, name="venue", help="The venue simulator and its fault controls.")
    try:
        from failover.bench.cli import bench_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # the benchmark package is optional in slim installs
        return
    app.add_typer(bench_app, name="bench", help="Measure failover stages, fan-out and the relay.")


_mount_optional()


@app.command()
def chaos(
    duration: Annotated[str, typer.Option("--duration", help="How long to run, e.g. 120s or 10m.")] = "2m",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fault schedule (replays a run).")] = 1,
    hosts: Annotated[int, typer.Option("--hosts", min=1, max=8, help="Sidecars, one strategy each.")] = 2,
) -> None:
    """Random overlapping faults on a local cluster while strategies trade; exit 1 on a violation."""
    from failover.chaos.run import install_sigterm, parse_duration, run_chaos

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        fail(str(exc))
    install_sigterm()
    raise typer.Exit(
        run_async(run_chaos(seconds, seed, hosts, lambda s: out.print(s, markup=False, highlight=False)))
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
