"""The ``failover`` command line: one entry point, a subcommand per job.

Errors are one clear line on stderr and a non-zero exit (2: bad input or
config, 1: the operation failed), never a traceback, usage errors included.

Start-up is part of an operator's incident time: only typer is imported at
module level; grpc, protobuf, rich, pydantic, the simulator and the benchmarks
are imported by the commands that use them (``tests/unit/test_cli_errors.py``
checks this, docs/benchmarks.md has the figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import getpass
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from failover import gc_policy
from failover.cli_values import finite, finite_seconds, require_text_everywhere
from failover.log_options import LogFormat, LogFormatOpt, LogLevel, LogLevelOpt

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="gRPC failover coordinator for trading connectivity."
)
era_app = typer.Typer(no_args_is_help=True, help="The era that orders decisions across etcd restores.")
group_app = typer.Typer(no_args_is_help=True, help="Route group definitions.")
app.add_typer(era_app, name="era")
app.add_typer(group_app, name="group")

T = TypeVar("T")


PIPED_WIDTH = 1000  # columns of table output that goes to a pipe or a file


class _LazyConsole:
    """A rich Console created on first use (rich costs ~50 ms to import)."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._console: Console | None = None

    def get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            kwargs = dict(self._kwargs)
            stream = sys.stderr if kwargs.get("stderr") else sys.stdout
            if "width" not in kwargs and not os.environ.get("COLUMNS") and not stream.isatty():
                # Piped or redirected: rich would cut every table to 80 columns ("prim…"),
                # and `failover sidecars | grep primary` would miss hosts.
                kwargs["width"] = PIPED_WIDTH
            self._console = Console(**kwargs)
            if not kwargs.get("stderr"):
                # rich exits 1 ("the operation failed") when the reader goes away.
                self._console.on_broken_pipe = reader_gone  # type: ignore[method-assign]
        return self._console

    def print(self, *args: Any, **kwargs: Any) -> None:
        self.get().print(*args, **kwargs)


err = _LazyConsole(stderr=True, soft_wrap=True)
out = _LazyConsole()


class AllCoordinatorsFailed(Exception):
    """No replica answered; the message names each address tried and its error."""


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
LEADER_TIMEOUT_S = 10.0
LeaderTimeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Seconds the whole command waits for the leader, shared across the addresses.",
        min=0.1,
        callback=finite_seconds,
    ),
]
"""``--timeout`` of every command the leader answers (switch, the controls): one budget for
the whole command, not per address (``with_admin``), so a quorum loss with three replicas
listed costs the operator ``--timeout``, not three times it."""


def fail(message: str, code: int = 2) -> None:
    """One plain line on stderr (no rich: an error must not wait for an import) and exit."""
    _plain_error(message)
    raise typer.Exit(code)


def _plain_error(message: str) -> None:
    """One line on stderr without rich (usage errors happen before anything is loaded)."""
    print(f"error: {message}", file=sys.stderr)


def login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def reader_gone() -> NoReturn:
    """Our stdout's reader went away (`failover watch | head -3`): end quietly, as any Unix
    tool killed by SIGPIPE would (exit 141); stdout goes to /dev/null first, so the
    interpreter's own flush at exit does not fail again."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(141)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    import grpc

    try:
        return asyncio.run(coro)
    except typer.Exit:
        raise
    except BrokenPipeError:
        reader_gone()
    except grpc.aio.AioRpcError as exc:
        # INVALID_ARGUMENT: the coordinators found the input bad (a blank reason, a group
        # name they refuse): bad input, as the checks made here.
        bad_input = exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        fail(f"{exc.code().name}: {exc.details()}", 2 if bad_input else 1)
    except AllCoordinatorsFailed as exc:
        fail(str(exc), 1)
    except Exception as exc:
        # Only a command that loaded the config layer can raise its error (importing it
        # here would cost every operator command ~100 ms of start-up).
        cfg = sys.modules.get("failover.config_source")
        if cfg is not None and isinstance(exc, cfg.ConfigError):
            fail(str(exc))
        if not isinstance(exc, OSError):
            logging.getLogger("failover").exception("unexpected error")
            fail(f"unexpected error: {exc!r} (details in the log)", 1)
        fail(str(exc), 1)
    raise AssertionError


def check_tls_files(sections: dict[str, Any]) -> None:
    """Every certificate file a server's config names can be read now: a bad config (exit 2)
    before anything starts. A missing etcd.tls file surfaced only after the replica was
    serving, as an ExceptionGroup of its tasks (exit 1); a missing tls file, as exit 1."""
    from failover.tls import TlsError

    for name, section in sections.items():
        if section.enabled:
            try:
                section.files().load()
            except TlsError as exc:
                fail(f"config: {name}.{str(exc).removeprefix('tls.')}")


def coordinator_targets(addresses: str) -> list[str]:
    """The replica addresses of ``--coordinators``; none at all is a usage error (exit 2)."""
    targets = [a.strip() for a in addresses.split(",") if a.strip()]
    if not targets:
        fail("--coordinators (or FAILOVER_COORDINATORS): give at least one host:port")
    from failover.wire.address import parse_host_port

    for t in targets:
        if t.lower().startswith(("http://", "https://")):
            fail(f"--coordinators (or FAILOVER_COORDINATORS): bad address {t!r}: a URL: write host:port")
        if "/" in t:
            continue  # a gRPC target with a scheme (dns:///, unix:/...): gRPC checks it
        try:
            if parse_host_port(t)[1] == 0:
                raise ValueError("port 0 cannot be dialled")
        except ValueError as exc:
            fail(f"--coordinators (or FAILOVER_COORDINATORS): bad address {t!r}: {exc}")
    return targets


def budget_share(deadline: float, addresses_left: int) -> float:
    """The RPC timeout of the next address tried: an equal share of what is left of the
    command's ``deadline`` (``time.monotonic()`` based) among the addresses not yet tried,
    so one that takes the call and never answers (a follower stuck forwarding to a leader
    it cannot reach) cannot spend the budget the next address needs; the last gets it all."""
    return max(0.05, (deadline - time.monotonic()) / max(1, addresses_left))


_MOVE_ON_NAMES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")


async def with_admin(
    addresses: str, call: Callable[[Any, float | None], Awaitable[T]], budget_s: float | None = None
) -> T:
    """Call the first replica that answers (UNAVAILABLE, DEADLINE_EXCEEDED and CANCELLED, a
    server that stopped under the call, move on to the next); when none answers, the
    error names every address tried and what it said.
    ``call`` gets the stub and, with ``budget_s``, the timeout this address may use
    (``budget_share``): ``budget_s`` then bounds the whole command, not each address."""
    import grpc

    from failover import rpc
    from failover.v1 import admin_pb2_grpc

    move_on = {grpc.StatusCode[n] for n in _MOVE_ON_NAMES}
    targets = coordinator_targets(addresses)
    tls = None
    if _client_tls is not None:
        from failover.tls import TlsSection

        ca, cert, key = _client_tls
        tls = TlsSection(mode="mtls", ca_file=ca, cert_file=cert, key_file=key)
    errors: list[tuple[str, grpc.aio.AioRpcError]] = []
    deadline = None if budget_s is None else time.monotonic() + budget_s
    for i, target in enumerate(targets):
        timeout = None if deadline is None else budget_share(deadline, len(targets) - i)
        async with rpc.channel(target, tls=tls) as ch:
            try:
                return await call(admin_pb2_grpc.AdminStub(ch), timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in move_on:
                    raise
                errors.append((target, exc))
    if len(errors) == 1:
        raise errors[0][1]
    raise AllCoordinatorsFailed(
        "no coordinator answered: " + "; ".join(f"{t}: {e.code().name}: {e.details()}" for t, e in errors)
    )


_trace: tuple[tuple[str, str], ...] | None = None


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """This command's W3C trace context as gRPC metadata, made once per invocation (every
    replica tried gets the same span): the decision it causes joins this trace. Two random
    ids, not the OpenTelemetry SDK (start-up time), unless FAILOVER_OTLP_ENDPOINT names a
    collector: then the command's span is real and exported when the command exits."""
    global _trace
    if _trace is None:
        endpoint = os.environ.get("FAILOVER_OTLP_ENDPOINT", "")
        if endpoint:
            import atexit

            from failover.telemetry import cli_span

            words = [a for a in sys.argv[1:] if not a.startswith("-")][:2]
            command = " ".join(["failover", *words[: 2 if words[:1] in (["era"], ["group"]) else 1]])
            _trace, finish = cli_span.start(endpoint, command, os.environ)
            atexit.register(finish)
        else:
            from failover.telemetry.w3c import operator_metadata

            _trace = operator_metadata()
    return _trace


_request_id: str | None = None


def command_metadata() -> tuple[tuple[str, str], ...]:
    """A write command's metadata: its trace context and one request id for every replica
    it tries, so a replica that committed it and then failed to answer (a timeout, then
    the next address) is not made to commit it a second time."""
    global _request_id
    if _request_id is None:
        import uuid

        _request_id = uuid.uuid4().hex
    return (*trace_metadata(), ("failover-request-id", _request_id))


def trace_id() -> str:
    """The trace id this command's decision is recorded under (to find it in a trace viewer)."""
    return trace_metadata()[0][1].split("-")[1]


def print_json(msg: Any) -> None:
    from google.protobuf import json_format

    print(
        json_format.MessageToJson(
            msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    )


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run a server coroutine until SIGINT/SIGTERM sets the stop event (logged).

    SIGHUP is logged and ignored: its default action would end a sidecar at once, with
    no log line and its socket left behind (a closed terminal, a log rotation hook).

    SIGUSR1 writes every thread's Python stack to stderr (``faulthandler``, from the
    signal handler itself, so it answers also when the event loop is stuck), then, from
    the loop if it runs, every task and the await it waits at (``failover.aio.task_stacks``)."""
    import faulthandler

    from failover.aio import task_stacks

    def stopping(sig: signal.Signals, stop: asyncio.Event) -> None:
        if not stop.is_set():
            logging.getLogger("failover").info("%s: stopping", sig.name)
        stop.set()

    def hangup() -> None:
        logging.getLogger("failover").warning(
            "SIGHUP: ignored (nothing is reloaded on SIGHUP: certificate files are re-read when "
            "they change, the config at start); stop with SIGTERM"
        )

    def dump_tasks() -> None:
        print(f"asyncio tasks (SIGUSR1):\n{task_stacks()}", file=sys.stderr, flush=True)

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping, sig, stop)
        loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        loop.add_signal_handler(signal.SIGHUP, hangup)
        # After the loop's handler: faulthandler dumps the threads, then chains to it.
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)
        await main(stop)

    run_async(runner())


# The coordinator's garbage-collector thresholds. A heartbeat tick over 1,000 streams
# allocates ~10k tracked objects that die within the tick; at Python's default (700) the
# young generation was collected mid-tick, promoted them while still alive, and so kept
# the full collections (which scan the whole heap) frequent.
GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """The coordinator's collector: the start-up heap frozen (failover.gc_policy), the young
    generation collected less often (GC_THRESHOLDS)."""
    gc_policy.freeze_startup_heap()
    gc.set_threshold(*GC_THRESHOLDS)


# A server's stop that takes longer than this logs every task and the await it waits at.
STOP_SLOW_S = 3.0


def serve(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a server until SIGINT/SIGTERM, then cancel it (its finally blocks clean up)."""

    async def main(stop: asyncio.Event) -> None:
        from failover.aio import cancel_until_done, task_stacks

        task = asyncio.create_task(make())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            # Cancelled again until it ends: a cancel lost on Python 3.11 must not leave a
            # SIGTERMed server running. One that takes long says where it waits.
            if not task.done() and not await cancel_until_done(task, limit_s=STOP_SLOW_S):
                logging.getLogger("failover").warning(
                    "still stopping after %.1f s; waiting at:\n%s", STOP_SLOW_S, task_stacks()
                )
                await cancel_until_done(task)
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
    log_level: LogLevelOpt = LogLevel.info,
    log_format: LogFormatOpt = LogFormat.auto,
) -> None:
    """Run one coordinator replica (elects a leader through etcd, serves sidecars)."""
    from coordinator.config import CoordinatorConfig
    from coordinator.replica import Replica
    from failover import logs
    from failover.config_source import ConfigError, load

    overrides: dict[str, Any] = {"replica_id": replica_id, "listen": listen, "advertise": advertise}
    try:
        if etcd is not None:  # "" is a mistake to report, not the default
            from failover.config_source import read_yaml

            section = dict(read_yaml(config).get("etcd") or {})
            section["endpoints"] = [e.strip() for e in etcd.split(",") if e.strip()]
            overrides["etcd"] = section
        cfg = load(CoordinatorConfig, config, overrides)
    except ConfigError as exc:
        fail(f"config: {exc}")
        return
    check_tls_files({"tls": cfg.tls, "etcd.tls": cfg.etcd.tls})
    logs.setup(log_level, log_format, cfg.replica_id)
    tune_gc()  # idle-stream CPU: docs/benchmarks.md

    serve(lambda: Replica(cfg).run())


@app.command()
def sidecar(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    host_id: Annotated[
        str | None, typer.Option("--host-id", help="This host's id (overrides the file).")
    ] = None,
    log_level: LogLevelOpt = LogLevel.info,
    log_format: LogFormatOpt = LogFormat.auto,
) -> None:
    """Run the sidecar of one trading host: warm paths, flips, the strategy API."""
    from failover_sidecar.app import SidecarApp
    from failover_sidecar.config import SidecarConfig
    from failover_sidecar.state_file import StateFileError

    from failover import logs
    from failover.config_source import ConfigError, load

    try:
        cfg = load(SidecarConfig, config, {"host_id": host_id})
        app_ = SidecarApp(cfg)
    except (ConfigError, StateFileError) as exc:
        fail(f"config: {exc}")
        return
    check_tls_files({"tls": cfg.tls})
    logs.setup(log_level, log_format, cfg.host_id)
    # Young-generation thresholds stay at Python's defaults: its collections are the
    # shortest pauses (0.3-0.5 ms), and the sidecar makes little cyclic garbage.
    gc_policy.freeze_startup_heap()
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
        render_sidecar(st, out.get())


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
    interval_ms: Annotated[
        float, typer.Option("--order-interval-ms", min=1.0, max=1000.0, callback=finite)
    ] = 10.0,
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
        code = asyncio.run(run_demo(opts, out.get()))
    except KeyboardInterrupt:
        err.print("interrupted: every process the demo started was stopped")
        raise typer.Exit(130) from None
    raise typer.Exit(code)


# --- operator commands ---------------------------------------------------------


@app.command()
def status(
    coordinators: Coordinators = DEFAULT_COORDINATORS,
    as_json: JsonFlag = False,
    hosts: Annotated[
        bool,
        typer.Option("--hosts", help="List every sidecar (a page per replica), not only deviating ones."),
    ] = False,
    group: Annotated[str, typer.Option("--group", help="Only this group.")] = "",
    after: Annotated[str, typer.Option("--after", help="With --hosts: start after this host id.")] = "",
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=5000, help="With --hosts: sidecars per replica and page.")
    ] = 1000,
) -> None:
    """Leader, replicas, groups, routes and epochs; sidecars counted per group, epoch and path."""
    from failover.v1 import admin_pb2 as apb

    coordinator_targets(coordinators)
    req = apb.GetStatusRequest(hosts=hosts, group=group, host_limit=limit, hosts_after=after)
    st = run_async(with_admin(coordinators, lambda s, _: s.GetStatus(req, timeout=10)))
    if as_json:
        print_json(st)
    else:
        from failover.status_view import render_status  # rich: loaded after the answer, not before

        render_status(st, out.get(), all_hosts=hosts)


@app.command()
def switch(
    group: Annotated[str, typer.Argument(help="Route group.")],
    path: Annotated[str, typer.Argument(help="Path to make active.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the decision).")],
    operator: Operator = "",
    force: Annotated[bool, typer.Option("--force", help="Skip guard rails.")] = False,
    coordinators: Coordinators = DEFAULT_COORDINATORS,
    as_json: JsonFlag = False,
    timeout: LeaderTimeout = LEADER_TIMEOUT_S,
) -> None:
    """Operator switch: commit a decision with PATH active (through the leader)."""
    from failover.v1 import admin_pb2 as apb

    coordinator_targets(coordinators)
    req = apb.SwitchRequest(
        group=group, path=path, reason=reason, operator=operator or login_name(), force=force
    )
    resp = call_leader(coordinators, "Switch", req, timeout)
    if as_json:
        print_json(resp)
    else:
        d = resp.decision
        epoch = f"{d.epoch.era}:{d.epoch.revision}"
        print(f"{group}: {' > '.join(d.paths)} at epoch {epoch} ({resp.message}) trace {trace_id()}")


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
        with_admin(
            coordinators, lambda s, _: s.History(apb.HistoryRequest(group=group, limit=limit), timeout=5)
        )
    )
    if as_json:
        print_json(resp)
    else:
        render_history(group, resp, out.get())


@era_app.command("bump")
def era_bump(
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. 'restored etcd from snapshot X').")],
    operator: Operator = "",
    expected: Annotated[
        int, typer.Option("--expected", min=0, max=2**62, help="Only bump if the era is this (0: any).")
    ] = 0,
    coordinators: Coordinators = DEFAULT_COORDINATORS,
) -> None:
    """Bump the era after an etcd restore, so new decisions order after every earlier one."""
    from failover.v1 import admin_pb2 as apb

    req = apb.BumpEraRequest(operator=operator or login_name(), reason=reason, expected_era=expected)
    resp = run_async(
        write_outcome(
            with_admin(coordinators, lambda s, _: s.BumpEra(req, timeout=5, metadata=trace_metadata())),
            "`failover status`",
        )
    )
    print(f"era is now {resp.era}")


@group_app.command("put")
def group_put(
    file: Annotated[Path, typer.Argument(help="YAML file with one group definition (name, paths, policy).")],
    create_only: Annotated[bool, typer.Option("--create-only", help="Fail if the group exists.")] = False,
    coordinators: Coordinators = DEFAULT_COORDINATORS,
) -> None:
    """Create or replace a group definition (validated; an invalid one changes nothing)."""
    from pydantic import ValidationError

    from failover.config_source import ConfigError, read_yaml
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
    resp = run_async(
        write_outcome(
            with_admin(coordinators, lambda s, _: s.PutGroup(req, timeout=5, metadata=trace_metadata())),
            f"`failover status` (group {spec.name})",
        )
    )
    print(f"group {spec.name} stored at revision {resp.definition.mod_revision}")


def call_leader(coordinators: str, method: str, req: Any, timeout: float) -> Any:
    """Send a write the leader answers (``Admin.<method>``): one request id for every address
    tried, and ``timeout`` bounds the whole command (each address an equal share of what is
    left). Every such command goes through here, so none waits per address again."""
    return run_async(
        write_outcome(
            with_admin(
                coordinators,
                lambda s, share: getattr(s, method)(req, timeout=share, metadata=command_metadata()),
                timeout,
            ),
            f"`failover history {req.group}`",
        )
    )


_UNKNOWN_OUTCOME = ("DEADLINE_EXCEEDED", "CANCELLED")


async def write_outcome(call: Awaitable[T], where: str) -> T:
    """A write whose wait ended without an answer may still be committed by the replica
    holding it; the error line says so, and where to look, before anyone acts on "failed"."""
    import grpc

    note = f"; outcome unknown: it may still be committed (see {where} before repeating it)"
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code().name not in _UNKNOWN_OUTCOME:
            raise
        raise AllCoordinatorsFailed(f"{exc.code().name}: {exc.details()}{note}") from None
    except AllCoordinatorsFailed as exc:
        if not any(f": {code}: " in str(exc) for code in _UNKNOWN_OUTCOME):
            raise
        raise AllCoordinatorsFailed(f"{exc}{note}") from None


def _control(
    action_name: str,
    group: str,
    path: str,
    reason: str,
    operator: str,
    force: bool,
    coordinators: str,
    timeout: float,
) -> None:
    from failover.v1 import admin_pb2 as apb

    coordinator_targets(coordinators)
    action = getattr(apb, f"CONTROL_ACTION_{action_name.upper()}")
    req = apb.SetControlRequest(
        action=action, group=group, path=path, reason=reason, operator=operator or login_name(), force=force
    )
    resp = call_leader(coordinators, "SetControl", req, timeout)
    print(f"{resp.message} trace {trace_id()}" if resp.HasField("decision") else resp.message)


def _make_control(action: str, with_path: bool, doc: str) -> None:
    if with_path:

        def cmd(
            group: Annotated[str, typer.Argument()],
            path: Annotated[str, typer.Argument()],
            reason: Annotated[str, typer.Option("--reason")] = "",
            operator: Operator = "",
            force: Annotated[bool, typer.Option("--force")] = False,
            coordinators: Coordinators = DEFAULT_COORDINATORS,
            timeout: LeaderTimeout = LEADER_TIMEOUT_S,
        ) -> None:
            _control(action, group, path, reason, operator, force, coordinators, timeout)
    else:

        def cmd(  # type: ignore[misc]
            group: Annotated[str, typer.Argument()],
            reason: Annotated[str, typer.Option("--reason")] = "",
            operator: Operator = "",
            force: Annotated[bool, typer.Option("--force")] = False,
            coordinators: Coordinators = DEFAULT_COORDINATORS,
            timeout: LeaderTimeout = LEADER_TIMEOUT_S,
        ) -> None:
            _control(action, group, "", reason, operator, force, coordinators, timeout)

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


_MOUNTED = False
# Commands defined in failover/commands/observe.py (registered when invoked, or for --help).
_OBSERVE = {"sync", "sidecars", "watch"}
_OBSERVED = False


def _mount_observe() -> None:
    global _OBSERVED
    if not _OBSERVED:
        _OBSERVED = True
        from failover.commands import observe

        observe.register(app, sys.modules[__name__])


# Long-running processes keep pydantic's defaults (a deployment may install a plugin).
_SERVERS = {"coordinator", "sidecar", "demo", "venue", "bench"}


def _mount_subapps() -> None:
    """Add the simulator and benchmark command groups (imported only when they may be used)."""
    global _MOUNTED
    if _MOUNTED:
        return
    _MOUNTED = True
    from failover.bench.cli import bench_app
    from failover.certs_cli import certs_app
    from failover.venue.cli import venue_app

    app.add_typer(venue_app, name="venue", help="The venue simulator and its fault controls.")
    app.add_typer(bench_app, name="bench", help="Measure failover stages, fan-out and the relay.")
    app.add_typer(certs_app, name="certs", help="Certificates for mTLS (a local CA for development).")


# TLS of the operator commands' channels (set by the root options below).
_client_tls: tuple[str, str, str] | None = None


@app.callback()
def _root(
    tls_ca: Annotated[str, typer.Option("--tls-ca", envvar="FAILOVER_TLS_CA", help="CA bundle (mTLS).")] = "",
    tls_cert: Annotated[
        str, typer.Option("--tls-cert", envvar="FAILOVER_TLS_CERT", help="Client certificate (mTLS).")
    ] = "",
    tls_key: Annotated[
        str, typer.Option("--tls-key", envvar="FAILOVER_TLS_KEY", help="Client key (mTLS).")
    ] = "",
    insecure: Annotated[
        bool, typer.Option("--insecure", envvar="FAILOVER_INSECURE", help="Plaintext to the coordinators.")
    ] = False,
) -> None:
    """Always a command group, also when only one command is registered (see ``_only``).

    The TLS options apply to every command that talks to the coordinators.
    """
    global _client_tls
    given = [n for n, v in (("--tls-ca", tls_ca), ("--tls-cert", tls_cert), ("--tls-key", tls_key)) if v]
    if given and insecure:
        fail("--insecure: cannot be combined with --tls-ca/--tls-cert/--tls-key")
    if given and len(given) < 3:
        missing = sorted({"--tls-ca", "--tls-cert", "--tls-key"} - set(given))
        fail(f"{missing[0]}: required with {given[0]} (or set FAILOVER_TLS_CA/CERT/KEY)")
    _client_tls = (tls_ca, tls_cert, tls_key) if given else None
    if _client_tls is not None:
        _check_client_tls(*_client_tls)


def _check_client_tls(ca: str, cert: str, key: str) -> None:
    """The --tls-* files are read and parsed now: one missing or not PEM is a usage error
    (exit 2), where it surfaced as a failed call (exit 1)."""
    from failover.tls import TlsError, TlsSection

    try:
        TlsSection(mode="mtls", ca_file=ca, cert_file=cert, key_file=key).files().load()
    except TlsError as exc:
        msg = str(exc)
        for field, option in (
            ("ca_file", "--tls-ca"),
            ("cert_file", "--tls-cert"),
            ("key_file", "--tls-key"),
        ):
            msg = msg.replace(f"tls.{field}", option)
        fail(msg)


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
        run_async(
            run_chaos(
                seconds, seed, hosts, lambda s: out.print(s, markup=False, highlight=False, soft_wrap=True)
            )
        )
    )


def _only(name: str) -> None:
    """Keep only the command or group NAME: typer builds every parameter of every command
    before running one, and start-up time is an operator's incident time."""
    commands = [c for c in app.registered_commands if (c.name or _cli_name(c.callback)) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if commands or groups:  # otherwise keep everything, so a typo gets "No such command"
        app.registered_commands = commands
        app.registered_groups = groups


def _cli_name(callback: Callable[..., Any] | None) -> str:
    return (getattr(callback, "__name__", "") or "").replace("_", "-")


def _needs_subapps(args: list[str]) -> bool:
    """Top-level help, or a venue/bench command: every other command runs without them."""
    return not args or args[0].startswith("-") or args[0] in {"venue", "bench", "certs"}


def main(args: list[str] | None = None) -> None:
    """Entry point: usage errors are one line (exit 2), Ctrl-C exits 130."""
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    argv = sys.argv[1:] if args is None else args
    if argv and argv[0] in ("coordinator", "sidecar"):
        # Ignored from the first instruction: its default action would end a server that
        # has not yet installed its own handler (imports, config; run_until_signal logs it).
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # gRPC's C core writes a raw glog line for every connection whose TLS handshake fails
    # (a scanner, a plaintext client): one unparseable line per connection among the JSON
    # ones. Errors only, unless the environment asks for more (docs/configuration.md).
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if argv and argv[0] not in _SERVERS:
        # typer validates parameters with pydantic, which otherwise scans every installed
        # package's entry points for plugins (tens of ms); no plugin serves the CLI itself.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if _needs_subapps(argv) or argv[0] in _OBSERVE:
        _mount_observe()
    if _needs_subapps(argv):
        _mount_subapps()
    elif argv:
        _only(argv[0])
    command = typer.main.get_command(app)
    require_text_everywhere(command)  # bytes that are not UTF-8: a usage error, not a traceback
    try:
        code = command.main(argv, prog_name="failover", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        sys.exit(2)
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "failover"
        message = " ".join(exc.format_message().split())
        _plain_error(f"{message} (see '{where} --help')")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        reader_gone()
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
