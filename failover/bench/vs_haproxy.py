"""``failover bench vs-haproxy``: our sidecar and a tuned HAProxy side by side, in one run.

One venue simulator (in this process, on 127.0.0.1, one shared order book) serves
both contenders, each through its own pair of gateways (``primary``/``backup`` for
ours, ``hap-primary``/``hap-backup`` for HAProxy), so a fault injected for one never
touches the other's lines:

- **ours**: the sidecar ``Agent`` + ``OrderPath`` of ``failover bench flip`` (in
  this process, default data-plane settings unless ``--heartbeat-ms`` says otherwise);
- **haproxy**: an ``haproxy`` process (Debian package) in TCP mode, primary server
  plus a ``backup`` server, at its fastest settings: ``check inter 20 fall 1 rise 1``,
  ``option redispatch 1``, ``timeout connect 20ms``, ``on-marked-down
  shutdown-sessions`` and a ``tcp-check`` that sends the venue protocol's heartbeat
  and expects its echo (so a stalled gateway fails the check). A strategy in this
  process logs on through it and, when its connection drops, reconnects at once.

The same strategy pacing (one order per ms) runs through each, alternately, for a
hard failure (``reset``: the gateway closes every connection and its listener) and
a silent one (``stall``: sockets open, nothing read or written) of ``primary``.
Per run: the longest gap between two consecutive acks the strategy receives from
the fault on (the interval that ends after the fault was injected: what the
failure cost), the longest gap anywhere in the run (the seconds before the fault
included: a loaded machine's pauses land there too), the strategy's own longest
pause between two orders from the fault on (the floor: no ack can come sooner
than the order it answers), and the orders left without a known outcome (ours:
IN_DOUBT, all resolvable by a status query; haproxy: written on a connection that
died before the reply: unknown).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from failover import gc_policy
from failover.bench import pacer
from failover.bench.report import (
    BenchFailure,
    command_line,
    fmt_ms,
    out,
    print_header,
    progress,
    write_results,
)
from failover.machine import MachineLoad, load_line
from failover.procs import Child, free_port
from failover.stats import Latency
from failover.wire import protocol as p

ORDER_INTERVAL_S = 0.001
RUN_TIMEOUT_S = 10.0
HAPROXY_SETTINGS = "check inter 20 fall 1 rise 1; option redispatch 1; retries 3; timeout connect 20ms"


def haproxy_binary() -> str | None:
    """The haproxy executable, or None (install: ``apt-get install -y haproxy``)."""
    return shutil.which("haproxy") or next(
        (c for c in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(c).exists()), None
    )


def haproxy_config(listen_port: int, primary: str, backup: str) -> str:
    """TCP mode, a primary and a backup server, the fastest checks; the check speaks the venue protocol."""
    hb = p.encode(p.hb(1)).hex()
    return f"""global
    maxconn 1000
defaults
    mode tcp
    timeout connect 20ms
    timeout client 60s
    timeout server 60s
    timeout check 20ms
    retries 3
    option redispatch 1
frontend venue
    bind 127.0.0.1:{listen_port}
    default_backend gateways
backend gateways
    option tcp-check
    tcp-check connect
    tcp-check send-binary {hb}
    tcp-check expect string "hb"
    default-server inter 20 fastinter 20 downinter 20 fall 1 rise 1 on-marked-down shutdown-sessions
    server primary {primary} check
    server backup {backup} check backup
"""


class HaproxyStrategy:
    """A strategy talking the venue protocol through HAProxy; reconnects at once when its line drops."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ack_times: list[int] = []
        self.gateway = ""
        self.unknown = 0  # written, then the connection died before the reply
        self.acked = 0
        self.sent_times: list[int] = []
        self.pre_fault_drops = 0  # sessions HAProxy dropped before the fault (a check timed out)
        self._owed: set[str] = set()
        self._ids = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._seq = p.SeqTracker()
        self._reader_task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()

    async def connect(self) -> None:
        """Connect and log on (bounded); retried until HAProxy gives a working server."""
        end = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < end:
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError, p.ProtocolError):
                async with asyncio.timeout(1.0):
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    self._seq = p.SeqTracker()
                    writer.write(p.encode(self._seq.stamp(p.logon("hap", 1000))))
                    dec = p.FrameDecoder()
                    while True:
                        data = await reader.read(65536)
                        if not data:
                            raise OSError("closed during logon")
                        msgs = dec.feed(data)
                        ack = next((m for m in msgs if m.get("t") == p.MsgType.LOGON_ACK), None)
                        if ack is not None:
                            break
                    self.gateway = str(ack.get("gateway", ""))
                    self._writer = writer
                    self._reader_task = asyncio.create_task(self._read(reader, dec))
                    return
            await asyncio.sleep(0.001)
        raise BenchFailure("haproxy: no logon through HAProxy within 10 s")

    async def _read(self, reader: asyncio.StreamReader, dec: p.FrameDecoder) -> None:
        try:
            while data := await reader.read(65536):
                now = time.monotonic_ns()
                for m in dec.feed(data):
                    if m.get("t") in (p.MsgType.ACK, p.MsgType.REJECT):
                        self._owed.discard(str(m.get("clordid")))
                        if m.get("t") == p.MsgType.ACK:
                            self.ack_times.append(now)
                            self.acked += 1
                self.changed.set()
        except (OSError, p.ProtocolError):
            pass
        self.unknown += len(self._owed)  # the line died: their fate is unknown to the strategy
        self._owed.clear()
        self._writer = None
        self.changed.set()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            await self._reader_task

    def submit(self) -> bool:
        w = self._writer
        if w is None or w.is_closing():
            return False
        cid = f"hap-{next(self._ids)}-{random.getrandbits(32):x}"
        self._owed.add(cid)
        self.sent_times.append(time.monotonic_ns())
        w.write(p.encode(self._seq.stamp(p.new_order(cid, "x"))))
        return True


@dataclass
class Row:
    who: str
    kind: str
    gap: Latency  # from the fault on
    run_gap: Latency  # anywhere in the run
    order_gap: Latency  # the strategy's own, from the fault on
    lost_or_unknown: list[int] = field(default_factory=list)
    in_doubt: list[int] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def _longest_gap_ns(times: list[int], since_ns: int = 0) -> int:
    """The longest interval between consecutive ``times`` that ends at or after ``since_ns``."""
    return max((b - a for a, b in itertools.pairwise(times) if b >= since_ns), default=0)


@dataclass
class Gaps:
    """One run's gaps (ns): see the module docstring."""

    fault: int
    run: int
    orders: int

    @classmethod
    def of(cls, acks: list[int], sends: list[int], fault_ns: int) -> Gaps:
        return cls(_longest_gap_ns(acks, fault_ns), _longest_gap_ns(acks), _longest_gap_ns(sends, fault_ns))

    def record(self, row: Row) -> None:
        row.gap.record_ns(self.fault)
        row.run_gap.record_ns(self.run)
        row.order_gap.record_ns(self.orders)

    def json(self) -> dict[str, int]:
        us = (self.fault // 1000, self.run // 1000, self.orders // 1000)
        return dict(zip(("gap_us", "run_gap_us", "order_gap_us"), us, strict=True))


async def _hap_run(hap: HaproxyStrategy, venue: Any, fault: str) -> tuple[Gaps, int]:
    from failover.venue.faults import FaultKind

    kind = FaultKind.RESET if fault == "reset" else FaultKind.STALL
    fault_ns = 0
    unknown_before = hap.unknown
    stage = "back on primary after recover"
    stop = asyncio.Event()
    sender: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while True:
                # Start on primary: reconnect until HAProxy (which may still hold primary down)
                # sends us there.
                stage = "back on primary after recover"
                while hap.gateway != "hap-primary" or hap._writer is None:
                    await hap.close()
                    await asyncio.sleep(0.05)
                    await hap.connect()
                hap.ack_times.clear()
                hap.sent_times.clear()
                if sender is None:
                    sender = asyncio.create_task(pacer.paced(stop, hap.submit, ORDER_INTERVAL_S))
                stage = "3 acks on primary before the fault"
                while hap._writer is not None and len(hap.ack_times) < 3:
                    hap.changed.clear()
                    await hap.changed.wait()
                if hap._writer is not None:
                    break
                # One check of HAProxy's timed out (a loaded box: `timeout check 20ms`, `fall 1`)
                # and it dropped our session before the fault: not the fault's doing, start over.
                hap.pre_fault_drops += 1
            await pacer.sleep(random.uniform(0, 0.02))  # a random phase of HAProxy's 20 ms check
            armed = len(hap.ack_times)
            unknown_before = hap.unknown
            fault_ns = time.monotonic_ns()
            await venue.inject_fault("hap-primary", None, kind)
            stage = "session dropped by HAProxy after the fault"
            while hap._writer is not None:  # HAProxy closes our session when it drops the server
                hap.changed.clear()
                await hap.changed.wait()
            stage = "reconnected through HAProxy"
            await hap.connect()  # at once, as a strategy would
            stage = "ack on backup"
            while len(hap.ack_times) <= armed or hap.gateway != "hap-backup":
                hap.changed.clear()
                await hap.changed.wait()
    except TimeoutError:
        raise BenchFailure(f"haproxy {fault}: no {stage} within {RUN_TIMEOUT_S}s") from None
    finally:
        stop.set()
        if sender is not None:
            await sender
    gaps = Gaps.of(hap.ack_times, hap.sent_times, fault_ns)
    await venue.inject_fault("hap-primary", None, FaultKind.RECOVER)
    return gaps, hap.unknown - unknown_before


async def _main(
    runs: int,
    heartbeat_ms: int,
    rows: dict[tuple[str, str], Row],
    workdir: Path,
    binary: str,
    probe_floor_ms: float | None = None,
    resend: bool = False,
) -> None:
    from failover.bench.flip.rig import FlipRig

    rig = await FlipRig.create(
        heartbeat_ms,
        workdir,
        extra_gateways=("hap-primary", "hap-backup"),
        probe_timeout_floor_ms=probe_floor_ms,
        resend_in_doubt=resend,
    )
    acks: list[int] = []
    inner = rig.orders.sinks["bench"]

    def sink(ev: Any) -> None:
        if ev.outcome.kind == rig._spb.OUTCOME_KIND_ACKED:
            acks.append(time.monotonic_ns())
        inner(ev)

    rig.orders.sinks["bench"] = sink
    sends: list[int] = []
    submit = rig.submit

    def timed_submit() -> None:
        sends.append(time.monotonic_ns())
        submit()

    rig.submit = timed_submit  # type: ignore[method-assign]
    gws = rig.venue.gateway_addresses
    port = free_port()
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(haproxy_config(port, gws["hap-primary"], gws["hap-backup"]))
    proc = Child("haproxy", [binary, "-db", "-f", str(cfg)], workdir / "haproxy.log").start()
    hap = HaproxyStrategy(port)
    with gc_policy.frozen_heap():  # as the sidecar process runs: its start-up heap frozen
        try:
            await hap.connect()
            for fault, kind in (("reset", "hard"), ("stall", "silent")):
                ours = rows[("ours", kind)] = _row("ours", kind)
                theirs = rows[("haproxy", kind)] = _row("haproxy", kind)
                for i in range(runs + 1):  # the first of each is a warm-up, not recorded
                    acks.clear()
                    sends.clear()
                    sess = rig.agent.sessions[("cme-orders", "primary")]
                    probes, lags = sess.replies.probes_sent, rig.agent.guard.lags
                    d = await rig.one_run(fault)
                    d["order_probes"] = sess.replies.probes_sent - probes
                    d["loop_lags"] = rig.agent.guard.lags - lags
                    d["order_timeout_ms"] = round(sess.replies.timeout_s() * 1000, 2)
                    gaps = Gaps.of(acks, sends, rig.armed_ns)
                    in_doubt = int(d["outcomes"].get("OUTCOME_KIND_IN_DOUBT", 0))
                    lost = int(d["outcomes"].get("OUTCOME_KIND_NO_PATH", 0))
                    drops = hap.pre_fault_drops
                    hgap, unknown = await _hap_run(hap, rig.venue, fault)
                    drops = hap.pre_fault_drops - drops
                    proc.check("haproxy")
                    if i == 0:
                        continue
                    gaps.record(ours)
                    ours.lost_or_unknown.append(lost)
                    ours.in_doubt.append(in_doubt)
                    ours.runs.append({"run": i, **gaps.json(), **d})
                    hgap.record(theirs)
                    theirs.lost_or_unknown.append(unknown)
                    theirs.runs.append(
                        {"run": i, **hgap.json(), "unknown": unknown, "pre_fault_drops": drops}
                    )
                progress(
                    f"{kind}: {runs} runs, longest gap p50 ours {fmt_ms(ours.gap.ms(50))} ms, "
                    f"haproxy {fmt_ms(theirs.gap.ms(50))} ms"
                )
        finally:
            await hap.close()
            proc.stop()
            await rig.stop()


def _row(who: str, kind: str) -> Row:
    tag = f"{who} {kind}"
    return Row(who, kind, Latency(f"{tag} gap"), Latency(f"{tag} run gap"), Latency(f"{tag} order gap"))


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.1f}x" if a and b else "-"


def vs_haproxy(
    runs: Annotated[int, typer.Option("--runs", min=1, max=2000, help="Runs per failure kind.")] = 30,
    heartbeat_ms: Annotated[
        int, typer.Option("--heartbeat-ms", min=1, max=10_000, help="Our heartbeat interval.")
    ] = 50,
    quick: Annotated[
        bool, typer.Option("--quick", help="Three runs per kind: checks the suite works.")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every sample to this file.")] = None,
    probe_floor_ms: Annotated[
        float | None,
        typer.Option(
            "--probe-timeout-floor-ms",
            min=0.5,
            help="Our data_plane.probe_timeout_floor_ms (default: the sidecar's default).",
        ),
    ] = None,
    resend: Annotated[
        bool,
        typer.Option(
            "--resend-in-doubt",
            help="Our orders.resend_in_doubt: what a dead path left without a reply is written "
            "again to the backup (the simulator refuses a reused client order id).",
        ),
    ] = False,
) -> None:
    """Ours vs a tuned HAProxy (TCP mode, primary + backup) in one run: longest gap between acks."""
    import logging

    logging.getLogger("failover_sidecar").setLevel(logging.ERROR)
    logging.getLogger("failover.venue").setLevel(logging.ERROR)
    binary = haproxy_binary()
    if binary is None:
        out.print("haproxy is not installed (Debian: apt-get install -y haproxy)")
        raise typer.Exit(2)
    if quick:
        runs = 3
    params = {
        "runs": runs,
        "heartbeat_ms": heartbeat_ms,
        "quick": quick,
        "probe_timeout_floor_ms": probe_floor_ms,
        "resend_in_doubt": resend,
    }
    cmd = command_line("vs-haproxy", params)
    notes = [
        "one venue simulator in this process (127.0.0.1, one order book); ours on gateways primary/backup, "
        "haproxy on hap-primary/hap-backup, so one side's faults never touch the other's lines",
        f"ours: sidecar Agent + OrderPath in this process, data_plane defaults, heartbeat {heartbeat_ms} ms"
        + (f", probe_timeout_floor_ms {probe_floor_ms}" if probe_floor_ms is not None else "")
        + (", orders.resend_in_doubt on" if resend else ""),
        f"haproxy: {binary}, TCP mode, {HAPROXY_SETTINGS}, on-marked-down shutdown-sessions, "
        "tcp-check send venue heartbeat / expect its echo; the strategy reconnects at once",
        "one order per ms through each, alternately; hard = gateway reset, silent = gateway stall",
        "gap = longest interval between two consecutive acks the strategy received that ends after the "
        "fault was injected (what the failure cost); run gap = the same anywhere in the run, the stretch "
        "before the fault included (machine pauses land there too); order gap = the strategy's own "
        "longest pause between two orders from the fault on (the floor of the gap)",
        "orders paced by a timerfd (failover.bench.pacer), the fault at a random phase of it",
    ]
    machine = print_header("failover bench vs-haproxy", cmd, params, notes=notes)
    doc: dict[str, Any] = {"benchmark": "vs-haproxy", "command": cmd, "machine": machine, "params": params}
    rows: dict[tuple[str, str], Row] = {}
    workdir = Path(tempfile.mkdtemp(prefix="failover-bench-haproxy-"))
    load = MachineLoad()
    code = 0
    try:
        asyncio.run(_main(runs, heartbeat_ms, rows, workdir, binary, probe_floor_ms, resend))
    except KeyboardInterrupt:
        code, doc["error"] = 130, "interrupted"
    except BenchFailure as exc:
        code, doc["error"] = 1, str(exc)
    except (OSError, RuntimeError) as exc:
        code, doc["error"] = 1, f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    doc["machine_load"] = ml = load.finish()
    t = Table(title="longest gap between acks (ms), one order per ms", title_justify="left")
    for col in (
        "failure",
        "who",
        "runs",
        "p50",
        "p99",
        "max",
        "run gap p50/p99",
        "order gap p50/p99",
        "lost/unknown",
        "in doubt",
        "haproxy/ours p50",
    ):
        t.add_column(col, justify="left" if col in ("failure", "who") else "right")
    for (who, kind), r in rows.items():
        other = rows.get(("haproxy", kind))
        t.add_row(
            kind,
            who,
            str(r.gap.count),
            fmt_ms(r.gap.ms(50)),
            fmt_ms(r.gap.ms(99)),
            fmt_ms(r.gap.ms(None)),
            f"{fmt_ms(r.run_gap.ms(50))} / {fmt_ms(r.run_gap.ms(99))}",
            f"{fmt_ms(r.order_gap.ms(50))} / {fmt_ms(r.order_gap.ms(99))}",
            str(sum(r.lost_or_unknown)),
            str(sum(r.in_doubt)) if who == "ours" else "-",
            _ratio(r.gap.ms(50), other.gap.ms(50)) if who == "ours" and other else "",
        )
    out.print(t)
    out.print(
        "lost/unknown: ours = NO_PATH outcomes (IN_DOUBT counted apart: the sidecar names them and a "
        "status query resolves them); haproxy = orders written on a connection that died before the reply"
    )
    out.print(load_line(ml))
    doc["results"] = {
        f"{who}/{kind}": {
            "gap": r.gap.to_json(),
            "run_gap": r.run_gap.to_json(),
            "order_gap": r.order_gap.to_json(),
            "lost_or_unknown": r.lost_or_unknown,
            "in_doubt": r.in_doubt,
            "runs": r.runs,
        }
        for (who, kind), r in rows.items()
    }
    doc["ok"] = code == 0
    write_results(json_out, doc)
    if code:
        out.print(f"[red]FAILED:[/red] {doc['error']}")
        raise typer.Exit(code)
