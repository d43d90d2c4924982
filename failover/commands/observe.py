"""``failover sync``, ``failover sidecars`` and ``failover watch``: the fleet, read from ``GetStatus``.

Each asks ``GetStatus`` for every host (``hosts=True``, paged by ``hosts_after``
until no replica has more) and shapes the answer with :mod:`failover.commands.fleet`.
``register`` adds the commands to the CLI's app; ``failover/cli.py`` calls it only
when one of them (or the top-level help) is invoked, and passes itself so that the
commands share its coordinator list, TLS options and error printing.

No ``from __future__ import annotations`` here: the command signatures are built
inside ``register`` from the CLI module's option types, and typer must see them
as objects.
"""

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from failover.cli_values import finite_seconds

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from failover.commands.fleet import Listed, SyncReport
    from failover.v1 import admin_pb2 as apb

WATCH_INTERVAL_MS = 250
# Errors worth polling through (a replica restarting, an election): anything else is final.
_RETRY_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}


async def fetch_all(
    cli: ModuleType,
    coordinators: str,
    group: str,
    page: int,
    timeout: float = 10.0,
    shared: "dict[str, list[str]] | None" = None,
) -> "tuple[apb.ClusterStatus, Listed]":
    """Every sidecar of the fleet, following ``next_host`` page by page (pages may come from
    different replicas when one stops answering). The status returned is the last page's;
    ``shared``, when given, is filled with the host ids two sidecar processes use."""
    from failover.commands import fleet
    from failover.v1 import admin_pb2 as apb

    pages: list[apb.ClusterStatus] = []
    after = ""
    while True:
        req = apb.GetStatusRequest(hosts=True, group=group, host_limit=page, hosts_after=after)
        st: apb.ClusterStatus = await cli.with_admin(
            coordinators, lambda s, _, req=req: s.GetStatus(req, timeout=timeout)
        )
        pages.append(st)
        nxt = fleet.next_after(st)
        if not nxt or nxt <= after:  # done (a replica that does not advance must not loop us)
            if shared is not None:
                shared.update(fleet.shared_ids(pages))
            return st, fleet.merge_pages(pages)
        after = nxt


def _retryable(cli: ModuleType, exc: BaseException) -> bool:
    import grpc

    if isinstance(exc, cli.AllCoordinatorsFailed):
        return True
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code().name in _RETRY_CODES


# --- sync -------------------------------------------------------------------------


async def poll_sync(
    cli: ModuleType, coordinators: str, group: str, wait: bool, timeout_s: float, interval_s: float, page: int
) -> "tuple[SyncReport, bool]":
    """The group's sync report and whether ``--wait`` timed out. While waiting, a replica that
    does not answer is polled through until the deadline; the last answer is what is reported."""
    from failover.commands import fleet

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    report: SyncReport | None = None
    last_exc: BaseException | None = None
    while True:
        remaining = deadline - loop.time()
        try:
            st, hosts = await fetch_all(cli, coordinators, group, page, min(10.0, max(remaining, 0.5)))
            report = fleet.sync_report(st, hosts, group)
        except Exception as exc:
            if not (wait and _retryable(cli, exc)):
                raise
            last_exc = exc
        # Waiting for the fleet to converge needs a fleet: "0 of 0" (no sidecar reconnected
        # yet, e.g. just after a quorum loss healed) is not convergence.
        if report is not None and (not wait or (report.in_sync and report.counted > 0)):
            return report, False
        remaining = deadline - loop.time()
        if remaining <= 0:
            if report is None:
                assert last_exc is not None
                raise last_exc
            return report, True
        await asyncio.sleep(min(interval_s, remaining))


# Why "0 of 0" during an etcd outage is no success: sidecars leave stale replicas.
STALE_HINT = "every replica that answered is stale (cannot read etcd): sidecars leave them, none counted"

# Why a host can hold an epoch the cluster has not reached, and what ends it.
AHEAD_HINT = "an etcd restore? see 'failover era bump'"


def _sync_line(r: "SyncReport") -> str:
    head = f"{r.group}: latest epoch {r.latest}" if r.latest else f"{r.group}: no decision yet"
    line = f"{head}; {len(r.applied)} of {r.counted} sidecars applied it"
    if r.behind:
        line += "; behind: " + ", ".join(f"{h} (at {a or 'nothing'})" for h, a in r.behind)
    if r.ahead:
        held = ", ".join(f"{h} (holds {a})" for h, a in r.ahead)
        line += f"; ahead of the cluster: {held} ({AHEAD_HINT})"
    if r.unreachable:
        line += f"; replicas not answering (their sidecars not counted): {', '.join(r.unreachable)}"
    if r.all_stale:
        line += f"; {STALE_HINT}: {r.all_stale}"
    return line


# --- sidecars ------------------------------------------------------------------------


def _timed_out_line(r: "SyncReport", waited: float) -> str:
    """The ``--wait`` timeout's one error line: every host not in sync, by which side."""
    parts = [
        f"{len(hosts)} sidecar(s) {side} {r.group} epoch {r.latest}: {', '.join(h for h, _ in hosts)}"
        for side, hosts in (("behind", r.behind), ("ahead of", r.ahead))
        if hosts
    ]
    hint = f" ({AHEAD_HINT})" if r.ahead else ""
    if r.all_stale:
        parts.append(STALE_HINT)
    if not r.counted and not r.all_stale:
        parts.append(f"no sidecar of {r.group} is connected to a replica that answered")
    return f"timed out after {waited:g} s: {'; '.join(parts)}{hint}"


def _lag(entry: dict[str, Any]) -> str:
    """The mark of a host not in sync with the group's latest epoch: ahead of it or behind."""
    if entry["in_sync"]:
        return ""
    return " (ahead)" if entry.get("ahead") else " (behind)"


def _us(v: int | None) -> str:
    if v is None or v < 0:
        return "-"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v} µs"


def render_sidecars(
    rows: list[dict[str, Any]], st: "apb.ClusterStatus", out: "Console", shared: dict[str, list[str]]
) -> None:
    from rich.table import Table

    t = Table(title=f"sidecars ({len(rows)})")
    for col in (
        "host",
        "site",
        "version",
        "replica",
        "connected",
        "group",
        "applied",
        "effective",
        "push→ack",
        "paths (RTT p50/p99)",
    ):
        t.add_column(col)
    for row in rows:
        for g, v in row["groups"].items():
            acked = v["acked"]
            applied = f"{acked['era']}:{acked['revision']}" if acked else "-"
            if not v["in_sync"]:
                applied = f"[yellow]{applied}{_lag(v)}[/yellow]"
            eff = v["effective"] or "-"
            if v["deviates"]:
                eff = f"[yellow]{eff} (deviates)[/yellow]"
            paths = " ".join(
                f"{p['path']}={p['state']}"
                + (f" {_us(p['rtt_p50_us'])}/{_us(p['rtt_p99_us'])}" if p["rtt_p99_us"] else "")
                for p in v["paths"]
            )
            t.add_row(
                row["host_id"],
                row["site"],
                row["version"] or "-",
                row["replica"],
                f"{row['connected_for_ms'] / 1000:.0f} s",
                g,
                applied,
                eff,
                _us(v["push_to_ack_us"]),
                paths,
            )
    out.print(t)
    for r in st.replicas:
        if not r.reachable:
            out.print(
                f"[red]replica {r.replica_id} ({r.address}) did not answer: {r.error}; "
                "its sidecars are not listed[/red]"
            )
    for host, instances in shared.items():
        out.print(
            f"[red]host id {host} is used by {len(instances)} sidecar processes at once "
            f"(instances {', '.join(instances)}): each sidecar must have its own host_id[/red]"
        )


# --- watch ---------------------------------------------------------------------------


class WatchView:
    """The live screen: decisions per group with sync counts, recent decisions, host routes."""

    def __init__(self, max_hosts: int) -> None:
        self.max_hosts = max_hosts
        self.recent: list[tuple[str, str, dict[str, Any]]] = []  # (time seen, group, decision)

    def note(self, before: dict[str, Any] | None, after: dict[str, Any]) -> None:
        """Remember decisions that changed since the last state (the 10 newest are shown)."""
        if before is None:
            return
        seen = time.strftime("%H:%M:%S")
        for g, d in after.get("groups", {}).items():
            old = before.get("groups", {}).get(g)
            if old is None or old["epoch"] != d["epoch"]:
                self.recent.append((seen, g, d))
        del self.recent[:-10]

    def render(self, state: dict[str, Any], polled: str) -> "RenderableType":
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        head = Text(f"leader: {state.get('leader') or 'none'}   era: {state.get('era', '?')}   {polled}")
        parts: list[RenderableType] = [head]
        if state.get("error"):
            parts.append(Text(f"last poll failed: {state['error']}", style="red"))
        if state.get("unreachable_replicas"):
            parts.append(
                Text("replicas not answering: " + ", ".join(state["unreachable_replicas"]), style="red")
            )
        g = Table(title="decisions and sync")
        for col in ("group", "decided order", "epoch", "reason", "trigger", "controls", "applied"):
            g.add_column(col)
        for name, d in state.get("groups", {}).items():
            order = "[red]HALTED[/red]" if d["halted"] else (" > ".join(d["paths"]) or "(none yet)")
            epoch = f"{d['epoch']['era']}:{d['epoch']['revision']}" if d["epoch"] else ""
            ahead = d.get("ahead", [])
            total = d["applied"] + len(d["behind"]) + len(ahead)
            sync = f"{d['applied']}/{total}"
            lag = [
                f"{side}: {', '.join(hosts[:5])}{' ...' if len(hosts) > 5 else ''}"
                for side, hosts in (("behind", d["behind"]), ("ahead", ahead))
                if hosts
            ]
            if lag:
                sync = f"[yellow]{sync} {'; '.join(lag)}[/yellow]"
            g.add_row(name, order, epoch, d["reason"], d["trigger"], d["controls"], sync)
        parts.append(g)
        if self.recent:
            r = Table(title="decisions seen while watching")
            for col in ("seen", "group", "order", "epoch", "reason"):
                r.add_column(col)
            for seen, name, d in reversed(self.recent):
                epoch = f"{d['epoch']['era']}:{d['epoch']['revision']}" if d["epoch"] else ""
                r.add_row(seen, name, " > ".join(d["paths"]) or "HALT", epoch, d["reason"])
            parts.append(r)
        parts.append(self._hosts(state.get("hosts", {})))
        return Group(*parts)

    def _hosts(self, hosts: dict[str, Any]) -> "RenderableType":
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        rows = [(h, v["replica"], g, r) for h, v in hosts.items() for g, r in v["routes"].items()]
        # Hosts that need attention first, then by host.
        rows.sort(key=lambda x: (x[3]["in_sync"] and not x[3]["deviates"], x[0], x[2]))
        t = Table(title=f"effective routes ({len(hosts)} hosts)")
        for col in ("host", "replica", "group", "effective", "applied", "paths"):
            t.add_column(col)
        for h, rep, g, r in rows[: self.max_hosts]:
            eff = r["effective"] or "-"
            if r["deviates"]:
                eff = f"[yellow]{eff} (deviates)[/yellow]"
            acked = f"{r['acked']['era']}:{r['acked']['revision']}" if r["acked"] else "-"
            if not r["in_sync"]:
                acked = f"[yellow]{acked}{_lag(r)}[/yellow]"
            t.add_row(h, rep, g, eff, acked, " ".join(f"{p}={s}" for p, s in sorted(r["paths"].items())))
        if len(rows) > self.max_hosts:
            return Group(
                t, Text(f"... {len(rows) - self.max_hosts} more rows: `failover sidecars` lists them all")
            )
        return t


async def watch_loop(
    cli: ModuleType,
    coordinators: str,
    group: str,
    interval_s: float,
    count: int,
    page: int,
    on_poll: Callable[[dict[str, Any] | None, dict[str, Any], bool], None],
) -> None:
    """Poll every ``interval_s``; call ``on_poll(before, after, changed)`` after each poll.

    A poll that no replica answers becomes an ``error`` in the state (and clears with the
    next answer); other errors (unknown group, permission) end the watch. Returns after
    ``count`` changes (0: never); then, when no replica answered the last poll, fails
    with exit 1 (its state was printed with the ``error``)."""
    from failover.commands import fleet

    before: dict[str, Any] | None = None
    changes = 0
    while True:
        try:
            st, hosts = await fetch_all(cli, coordinators, group, page, timeout=max(2.0, 4 * interval_s))
            state = fleet.watch_state(st, hosts, group)
        except Exception as exc:
            if not _retryable(cli, exc):
                raise
            from failover.rpc import error_text  # grpc is loaded by now: a call just failed

            state = {**(before or {}), "error": error_text(exc)}
        changed = state != before
        on_poll(before, state, changed)
        if changed:
            before = state
            changes += 1
            if count and changes >= count:
                if "error" in state:
                    cli.fail(f"no coordinator answered: {state['error']}", 1)
                return
        await asyncio.sleep(interval_s)


# --- registration ------------------------------------------------------------------------

COMMANDS = ("sync", "sidecars", "watch")


def register(app: typer.Typer, cli: ModuleType) -> None:
    """Add ``sync``, ``sidecars`` and ``watch`` to ``app``; ``cli`` is the running CLI module
    (``failover.cli``, or ``__main__`` under ``python -m``: its TLS settings live there)."""
    PageSize = Annotated[
        int,
        typer.Option(
            "--page-size", min=1, max=5000, hidden=True, help="Hosts per replica and GetStatus page."
        ),
    ]

    @app.command()
    def sync(
        group: Annotated[str, typer.Argument(help="Route group.")],
        wait: Annotated[
            bool, typer.Option("--wait", help="Wait until every sidecar has applied the latest epoch.")
        ] = False,
        timeout: Annotated[
            float | None,
            typer.Option(
                "--timeout",
                min=0.0,
                callback=finite_seconds,
                help="With --wait: give up after this many seconds (default 30).",
            ),
        ] = None,
        coordinators: cli.Coordinators = cli.DEFAULT_COORDINATORS,  # type: ignore[name-defined]
        as_json: cli.JsonFlag = False,  # type: ignore[name-defined]
        page: PageSize = 1000,  # type: ignore[valid-type]
    ) -> None:
        """Which sidecars have applied GROUP's latest epoch (exit 1 while any has not).

        With --wait: exit 0 as soon as all have; exit 1 naming those behind on timeout."""
        if timeout is not None and not wait:
            cli.fail("--timeout: only with --wait")
        from failover.model.spec import NAME_RE  # pydantic: not on every command's start

        # An empty GROUP ("$UNSET_VAR") matched nothing and reported "0 of 0 applied": exit 0.
        if not NAME_RE.match(group):
            cli.fail(
                f"GROUP: a group name is required, got {group!r}"
                if not group
                else f"GROUP: bad group name {group!r}"
            )
        cli.coordinator_targets(coordinators)
        report, timed_out = cli.run_async(
            poll_sync(
                cli,
                coordinators,
                group,
                wait,
                30.0 if timeout is None else timeout,
                WATCH_INTERVAL_MS / 1000,
                page,
            )
        )
        if as_json:
            print(json.dumps({**report.to_json(), "timed_out": timed_out}))
        else:
            print(_sync_line(report))
        if timed_out:
            cli.fail(_timed_out_line(report, 30.0 if timeout is None else timeout), 1)
        if not report.in_sync:
            raise typer.Exit(1)

    @app.command()
    def sidecars(
        group: Annotated[str, typer.Option("--group", help="Only hosts of this group.")] = "",
        coordinators: cli.Coordinators = cli.DEFAULT_COORDINATORS,  # type: ignore[name-defined]
        as_json: cli.JsonFlag = False,  # type: ignore[name-defined]
        page: PageSize = 1000,  # type: ignore[valid-type]
    ) -> None:
        """Every sidecar: version, replica, applied epoch per group, effective path, path health, RTT."""
        from failover.commands import fleet

        cli.coordinator_targets(coordinators)
        shared: dict[str, list[str]] = {}
        st, hosts = cli.run_async(fetch_all(cli, coordinators, group, page, shared=shared))
        rows = fleet.host_rows(st, hosts, group)
        if as_json:
            unreachable = [
                {"replica": r.replica_id, "address": r.address, "error": r.error}
                for r in st.replicas
                if not r.reachable
            ]
            print(json.dumps({"hosts": rows, "unreachable_replicas": unreachable, "shared_host_ids": shared}))
        else:
            render_sidecars(rows, st, cli.out.get(), shared)

    @app.command()
    def watch(
        group: Annotated[str, typer.Argument(help="Only this group (default: all).")] = "",
        coordinators: cli.Coordinators = cli.DEFAULT_COORDINATORS,  # type: ignore[name-defined]
        as_json: Annotated[
            bool, typer.Option("--json", help="One JSON object per change, on its own line.")
        ] = False,
        interval_ms: Annotated[
            int, typer.Option("--interval-ms", min=50, max=60_000, help="Poll period.")
        ] = WATCH_INTERVAL_MS,
        count: Annotated[
            int, typer.Option("--count", min=0, help="Stop after this many changes (0: until Ctrl-C).")
        ] = 0,
        max_hosts: Annotated[int, typer.Option("--max-hosts", min=0, help="Host rows on screen.")] = 40,
        page: PageSize = 1000,  # type: ignore[valid-type]
    ) -> None:
        """Live decisions, per-host effective routes and sync status (Ctrl-C exits with 130)."""
        # A shell starts background jobs with SIGINT ignored; Ctrl-C (or a supervisor's
        # SIGINT) must still end a watch.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        cli.coordinator_targets(coordinators)
        interval_s = interval_ms / 1000
        if as_json:
            with_line_buffering()

            def emit(before: dict[str, Any] | None, after: dict[str, Any], changed: bool) -> None:
                if changed:
                    from failover.commands import fleet

                    parts = fleet.changed_parts(before, after)
                    print(json.dumps({"time_unix_ms": int(time.time() * 1000), "changed": parts, **after}))

            cli.run_async(watch_loop(cli, coordinators, group, interval_s, count, page, emit))
            return
        from rich.live import Live

        view = WatchView(max_hosts)
        console = cli.out.get()
        if not console.is_terminal:
            # Piped or redirected: rich's Live shows only its last screen, at exit, which a
            # watch stopped by a signal never reaches; each change is printed as it comes.
            def show_each(before: dict[str, Any] | None, after: dict[str, Any], changed: bool) -> None:
                if changed:
                    view.note(before, after)
                    console.print(view.render(after, f"at {time.strftime('%H:%M:%S')}"))
                    console.file.flush()

            cli.run_async(watch_loop(cli, coordinators, group, interval_s, count, page, show_each))
            return
        with Live(console=console, refresh_per_second=8, auto_refresh=False) as live:

            def show(before: dict[str, Any] | None, after: dict[str, Any], changed: bool) -> None:
                if changed:
                    view.note(before, after)
                polled = f"polled {time.strftime('%H:%M:%S')} every {interval_ms} ms (Ctrl-C to stop)"
                live.update(view.render(after, polled), refresh=True)

            cli.run_async(watch_loop(cli, coordinators, group, interval_s, count, page, show))


def with_line_buffering() -> None:
    """Each change must reach a pipe as it happens."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(line_buffering=True)
        except ValueError:
            pass
