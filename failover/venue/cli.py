"""``failover venue ...``: run a simulated venue, inject faults, send venue events, read counters.

Every expected failure (bad flags or config, unreachable control address, an RPC
error) is one line on stderr and exit code 2, never a traceback: these commands are
driven by scripts and by people in the middle of a demo.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from failover import gc_policy, rpc
from failover.cli_values import finite_seconds
from failover.log_options import LogFormat, LogFormatOpt, LogLevel, LogLevelOpt
from failover.v1 import venue_pb2, venue_pb2_grpc
from failover.venue.config import VenueConfig, describe_validation_error
from failover.venue.control import PROTO_FAULT_KINDS
from failover.venue.faults import FaultKind
from failover.venue.server import Venue, run_venue
from failover.wire.address import parse_host_port

venue_app = typer.Typer(
    name="venue",
    help="Venue simulator: gateways speaking the framed TCP protocol, with fault injection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_ERROR = 2
RPC_TIMEOUT_S = 5.0
MAX_UINT32 = 2**32 - 1
"""The control API's integers are uint32: a larger one failed to encode (a traceback)."""
MAX_DELAY_MS = 3_600_000
"""An hour per reply is already a stalled line; far below the wire's uint32."""
T = TypeVar("T")


class FaultChoice(StrEnum):
    reset = "reset"
    stall = "stall"
    slow = "slow"
    logon_refused = "logon-refused"
    recover = "recover"


class EventChoice(StrEnum):
    fill = "fill"
    unsolicited_cancel = "unsolicited-cancel"


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_ERROR)


def _rpc_error_line(exc: grpc.aio.AioRpcError) -> str:
    details = (exc.details() or "").strip().splitlines()
    return f"{exc.code().name}: {details[0] if details else 'no details'}"


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body, turning expected failures into one line and exit code 2."""

    async def main() -> T:
        return await coro_fn()

    try:
        return asyncio.run(main())
    except grpc.aio.AioRpcError as exc:
        fail(_rpc_error_line(exc))
    except ValidationError as exc:
        fail(describe_validation_error(exc))
    except (OSError, ValueError) as exc:
        fail(str(exc))


async def _call(control: str, method: str, request: Any, timeout: float) -> Any:
    try:
        parse_host_port(control)  # a clear error for a malformed address before gRPC sees it
    except ValueError as exc:
        raise ValueError(f"--control: {exc}") from None
    async with rpc.channel(control) as channel:
        stub = venue_pb2_grpc.VenueControlStub(channel)
        return await getattr(stub, method)(request, timeout=timeout)


ControlOpt = Annotated[str, typer.Option("--control", help="Control address HOST:PORT of the venue.")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0.01, callback=finite_seconds, help="RPC deadline in seconds.")
]


# ---------------------------------------------------------------- run


def _build_config(
    config: Path | None,
    gateways: list[str],
    control: str | None,
    name: str | None,
    cancel_on_disconnect: bool,
    single_session: bool,
) -> VenueConfig:
    if config is not None:
        if gateways:
            fail("give either --config or --gateway, not both")
        try:
            cfg = VenueConfig.from_yaml(config)
        except yaml.YAMLError as exc:
            fail(f"{config}: invalid YAML: {str(exc).splitlines()[0]}")
        except ValidationError as exc:
            fail(f"{config}: {describe_validation_error(exc)}")
        except OSError as exc:
            fail(f"{config}: {exc.strerror or exc}")
        except ValueError as exc:
            fail(str(exc))
        updates: dict[str, Any] = {}
        if control is not None:
            updates["control_listen"] = control
        if name is not None:
            updates["name"] = name
        if cancel_on_disconnect:
            updates["cancel_on_disconnect"] = True
        if single_session:
            updates["single_session"] = True
        data = {**cfg.model_dump(), **updates}
    else:
        if not gateways:
            fail("give --config FILE or at least one --gateway NAME=HOST:PORT")
        gws = []
        for spec in gateways:
            gw_name, sep, listen = spec.partition("=")
            if not sep or not gw_name or not listen:
                fail(f"--gateway {spec!r}: expected NAME=HOST:PORT")
            gws.append({"name": gw_name, "listen": listen})
        data = {
            "name": name or "venue",
            "gateways": gws,
            "control_listen": control or "127.0.0.1:0",
            "cancel_on_disconnect": cancel_on_disconnect,
            "single_session": single_session,
        }
    try:
        return VenueConfig.model_validate(data)
    except ValidationError as exc:
        fail(describe_validation_error(exc))


def _print_addresses(venue: Venue) -> None:
    for gw_name, address in venue.gateway_addresses.items():
        print(f"gateway {gw_name} {address}", flush=True)
    print(f"control {venue.control_address}", flush=True)


@venue_app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", help="YAML venue config.")] = None,
    gateway: Annotated[
        list[str] | None,
        typer.Option("--gateway", help="NAME=HOST:PORT (repeatable; port 0: any free port)."),
    ] = None,
    control: Annotated[str | None, typer.Option("--control", help="Control gRPC HOST:PORT.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Venue name.")] = None,
    cancel_on_disconnect: Annotated[
        bool, typer.Option("--cancel-on-disconnect", help="Cancel a session's open orders when it drops.")
    ] = False,
    single_session: Annotated[
        bool, typer.Option("--single-session", help="One logged-on session per sender across gateways.")
    ] = False,
    log_level: LogLevelOpt = LogLevel.warning,
    log_format: LogFormatOpt = LogFormat.auto,
) -> None:
    """Run a venue; prints one line per bound address, then serves until SIGINT/SIGTERM."""
    from failover import logs

    cfg = _build_config(config, gateway or [], control, name, cancel_on_disconnect, single_session)
    logs.setup(log_level, log_format, cfg.name)
    gc_policy.freeze_startup_heap()  # its own pauses would show up in what is measured through it
    _run(lambda: run_venue(cfg, ready=_print_addresses))


# ---------------------------------------------------------------- fault / event / counters


@venue_app.command()
def fault(
    control: ControlOpt,
    gateway: Annotated[str, typer.Option("--gateway", help="Gateway name, e.g. primary.")],
    kind: Annotated[FaultChoice, typer.Option("--kind", help="What to break (or recover).")],
    session: Annotated[str | None, typer.Option("--session", help="Only this sender (host id).")] = None,
    delay_ms: Annotated[
        int, typer.Option("--delay-ms", min=0, max=MAX_DELAY_MS, help="Added delay for --kind slow.")
    ] = 0,
    timeout: TimeoutOpt = RPC_TIMEOUT_S,
) -> None:
    """Inject a fault into a gateway, or into one sender's sessions on it."""
    if kind is FaultChoice.slow and delay_ms <= 0:
        fail("--delay-ms must be > 0 for --kind slow")
    request = venue_pb2.FaultRequest(
        gateway=gateway,
        session=session or "",
        kind=PROTO_FAULT_KINDS[FaultKind.parse(kind.value)],
        delay_ms=delay_ms,
    )
    reply = _run(lambda: _call(control, "InjectFault", request, timeout))
    typer.echo(reply.message)


@venue_app.command()
def event(
    control: ControlOpt,
    kind: Annotated[EventChoice, typer.Option("--kind", help="Venue event to send.")],
    clordid: Annotated[str, typer.Option("--clordid", help="Client order id of an open order.")],
    qty: Annotated[int, typer.Option("--qty", min=1, max=MAX_UINT32, help="Fill quantity.")] = 1,
    timeout: TimeoutOpt = RPC_TIMEOUT_S,
) -> None:
    """Fill or cancel an open order; the owner's live session is told."""
    request = venue_pb2.VenueEventRequest(
        kind=kind.value.replace("-", "_"), client_order_id=clordid, quantity=qty
    )
    reply = _run(lambda: _call(control, "SendEvent", request, timeout))
    if reply.gateway:
        typer.echo(f"{kind.value} {clordid}: delivered on gateway {reply.gateway} to {reply.session}")
    else:
        typer.echo(f"{kind.value} {clordid}: applied; the owner has no live session (not delivered)")


def counters_dict(reply: Any) -> dict[str, Any]:
    """Counters as plain JSON (integers stay integers, unlike protobuf's JSON mapping of uint64)."""
    return {
        "gateways": [
            {
                "name": g.name,
                "address": g.address,
                "connections_opened": g.connections_opened,
                "logons": g.logons,
                "logons_by_session": dict(sorted(g.logons_by_session.items())),
                "orders": g.orders,
                "duplicates": g.duplicates,
                "cancels": g.cancels,
                "active_sessions": g.active_sessions,
                "faults": list(g.faults),
            }
            for g in reply.gateways
        ],
        "orders": reply.orders,
        "duplicates": reply.duplicates,
        "open_orders": reply.open_orders,
    }


def _counters_table(data: dict[str, Any]) -> Table:
    table = Table(title="venue counters")
    numeric = {"conns", "logons", "orders", "dups", "cancels", "active"}
    for col in ("gateway", "address", "conns", "logons", "by session", "orders", "dups", "cancels", "active"):
        table.add_column(col, justify="right" if col in numeric else "left")
    table.add_column("faults")
    for g in data["gateways"]:
        by_session = ", ".join(f"{k}={v}" for k, v in g["logons_by_session"].items()) or "-"
        table.add_row(
            g["name"],
            g["address"],
            str(g["connections_opened"]),
            str(g["logons"]),
            by_session,
            str(g["orders"]),
            str(g["duplicates"]),
            str(g["cancels"]),
            str(g["active_sessions"]),
            ", ".join(g["faults"]) or "-",
        )
    table.caption = (
        f"venue: orders {data['orders']}, duplicates {data['duplicates']}, open {data['open_orders']}"
    )
    return table


@venue_app.command()
def counters(
    control: ControlOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    timeout: TimeoutOpt = RPC_TIMEOUT_S,
) -> None:
    """Show what happened: connections, logons per gateway and sender, orders, duplicates, faults."""
    reply = _run(lambda: _call(control, "GetCounters", venue_pb2.CountersRequest(), timeout))
    data = counters_dict(reply)
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        console = Console()
        if not console.is_terminal:
            console.width = 200  # piped: do not squeeze the table into 80 columns
        console.print(_counters_table(data))


if __name__ == "__main__":
    venue_app()
