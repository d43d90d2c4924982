"""Bad input to the CLI: one line naming the file or field, exit 2, never a traceback.

These start ``python -m failover.cli`` (no etcd, no coordinator needed).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import REPO, cli


def _one_line_error(r: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture
def not_utf8(tmp_path: Path) -> Path:
    p = tmp_path / "b.yaml"
    p.write_bytes(b"\xff\xfe\x00")
    return p


@pytest.mark.parametrize("command", [["coordinator", "--config"], ["sidecar", "--config"], ["group", "put"]])
def test_a_file_that_is_not_utf8_is_one_line_naming_the_file(command: list[str], not_utf8: Path) -> None:
    line = _one_line_error(
        cli(*command, str(not_utf8), "-c", "127.0.0.1:1")
        if command[0] == "group"
        else cli(*command, str(not_utf8))
    )
    assert str(not_utf8) in line and "UTF-8" in line


def test_a_yaml_syntax_error_is_one_line_with_its_position(tmp_path: Path) -> None:
    p = tmp_path / "y.yaml"
    p.write_text("a: [1,\n b: }\n")
    line = _one_line_error(cli("coordinator", "--config", str(p)))
    assert str(p) in line and "line 2" in line


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["status", "-c", ""], {}),
        (["status"], {"FAILOVER_COORDINATORS": ","}),
        (["switch", "g", "p", "--reason", "x", "-c", " , "], {}),
    ],
)
def test_no_coordinator_address_is_a_usage_error(args: list[str], env: dict[str, str]) -> None:
    line = _one_line_error(cli(*args, env=env))
    assert "--coordinators" in line


def test_usage_errors_are_one_line() -> None:
    line = _one_line_error(cli("switch", "cme-orders"))
    assert "path" in line.lower() and "failover switch --help" in line
    line = _one_line_error(cli("status", "--nope"))
    assert "--nope" in line


def test_every_failed_coordinator_is_named_with_its_error() -> None:
    r = cli("status", "-c", "127.0.0.1:1,127.0.0.1:2", timeout=60)
    line = _one_line_error(r, 1)
    assert "127.0.0.1:1" in line and "127.0.0.1:2" in line and "UNAVAILABLE" in line


def test_operator_commands_import_nothing_heavy() -> None:
    """Start-up cost: `status` must not load the config layer, the simulator or the benchmarks
    (pydantic itself is loaded by typer)."""
    code = (
        "import sys\n"
        "sys.argv = ['failover', 'status', '--help']\n"
        "from failover import cli\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pydantic_settings', 'grpc_health', 'grpc_reflection', 'yaml', 'coordinator', 'failover_sidecar'} "
        "or m.startswith(('failover.venue', 'failover.bench', 'failover.demo', 'failover.config_source')))\n"
        "print(heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout


_CONNECT_PROBE = """
import socket, sys, threading
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
addr = "127.0.0.1:%d" % srv.getsockname()[1]
seen = []
def accept():
    conn, _ = srv.accept()
    seen.extend(sorted(sys.modules))  # what the command loaded before it connected
    conn.close()
threading.Thread(target=accept, daemon=True).start()
sys.argv = ["failover", *sys.argv[1:], "-c", addr]
from failover import cli
try:
    cli.main()
except SystemExit:
    pass
heavy = {"pydantic", "pydantic_core", "rich", "yaml", "opentelemetry"}
print(sorted(m for m in seen if m.split(".")[0] in heavy or m.startswith("failover.status_view")))
"""


@pytest.mark.parametrize(
    "command",
    [["status"], ["switch", "g", "primary", "--reason", "r", "--timeout", "5"], ["drain", "g", "p"]],
    ids=lambda c: c[0],
)
def test_operator_commands_connect_before_loading_pydantic_or_rich(command: list[str]) -> None:
    """Start-up is the operator's incident time: nothing that only validates parameters or
    renders the answer may load before the command connects (typer 0.29 pulled in pydantic
    to coerce parameters, about 200 ms; the status table is rendered with rich; the trace
    context a decision command sends is made without the OpenTelemetry SDK)."""
    r = subprocess.run(
        [sys.executable, "-c", _CONNECT_PROBE, *command], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert r.stdout.strip().splitlines()[-1] == "[]", (r.stdout, r.stderr)


def test_venue_and_bench_are_still_mounted() -> None:
    r = cli("--help")
    assert r.returncode == 0 and "venue" in r.stdout and "bench" in r.stdout
    r = cli("bench", "--help")
    assert r.returncode == 0, r.stderr


def test_an_unknown_socket_group_stops_the_sidecar_cleanly(tmp_path: Path) -> None:
    sock = Path("/tmp") / f"fo-sg-{tmp_path.name[-12:]}.sock"
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "host_id: h1\ngroups: [g]\ncoordinators: ['127.0.0.1:1']\n"
        f"state_file: {tmp_path / 'state.json'}\nlisten: {{socket: {sock}, socket_group: no-such-group-x}}\n"
    )
    try:
        line = _one_line_error(cli("sidecar", "--config", str(cfg), timeout=60))
        assert "listen.socket_group" in line and "no-such-group-x" in line
        assert not sock.exists()
    finally:
        sock.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "command",
    [
        ["coordinator", "--id", "c1", "--etcd", "127.0.0.1:1", "--listen", "127.0.0.1:0"],
        ["sidecar", "--host-id", "h1"],
        ["venue", "run", "--gateway", "primary=127.0.0.1:0"],
    ],
)
@pytest.mark.parametrize(("option", "value"), [("--log-level", "bogus"), ("--log-format", "xml")])
def test_a_bad_log_option_is_one_line_before_anything_starts(
    command: list[str], option: str, value: str
) -> None:
    """Before: ``--log-level bogus`` ended the coordinator and the sidecar with a ValueError
    traceback (exit 1), and the venue had neither option."""
    line = _one_line_error(cli(*command, option, value))
    assert option in line and repr(value) in line, line


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("process", ["coordinator", "sidecar"])
def test_a_metrics_port_in_use_ends_the_process_in_one_line_naming_it(
    process: str, held_port: int, tmp_path: Path
) -> None:
    """Before: the process ended with ``error: [Errno 98] Address already in use`` (which
    address?), and the gRPC server it had started was left to the garbage collector:
    ``Exception ignored in: <function Server.__del__ ...> RuntimeError: Event loop is
    closed`` and a traceback after the error; the sidecar's socket file stayed behind."""
    sock = Path("/tmp") / f"fo-mp-{tmp_path.name[-12:]}.sock"
    cfg = tmp_path / "c.yaml"
    if process == "coordinator":
        cfg.write_text(
            "replica_id: c1\nlisten: 127.0.0.1:0\netcd: {endpoints: ['127.0.0.1:1']}\n"
            f"metrics_listen: 127.0.0.1:{held_port}\n"
        )
    else:
        cfg.write_text(
            "host_id: h1\ngroups: [g]\ncoordinators: ['127.0.0.1:1']\n"
            f"state_file: {tmp_path / 'state.json'}\nlisten: {{socket: {sock}}}\n"
            f"metrics_listen: 127.0.0.1:{held_port}\n"
        )
    try:
        r = cli(process, "--config", str(cfg), "--log-level", "error", timeout=60)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and f"metrics_listen 127.0.0.1:{held_port}" in last, r.stderr
        assert "in use" in last, r.stderr
        assert not sock.exists(), "the sidecar's socket file was left behind"
    finally:
        sock.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "args",
    [
        ["switch", "g", "p", "--reason", "r", "-c", "127.0.0.1:1", "--timeout", "nan"],
        ["switch", "g", "p", "--reason", "r", "-c", "127.0.0.1:1", "--timeout", "inf"],
        ["switch", "g", "p", "--reason", "r", "-c", "127.0.0.1:1", "--timeout", "1e308"],
        ["sync", "g", "--wait", "-c", "127.0.0.1:1", "--timeout", "nan"],
        ["sync", "g", "--wait", "-c", "127.0.0.1:1", "--timeout", "inf"],
        ["venue", "counters", "--control", "127.0.0.1:1", "--timeout", "nan"],
    ],
    ids=["switch-nan", "switch-inf", "switch-huge", "sync-nan", "sync-inf", "venue-nan"],
)
def test_a_timeout_that_is_not_a_finite_number_of_seconds_is_a_usage_error(args: list[str]) -> None:
    """``nan`` passed the range check and became a 50 ms wait; ``inf`` and ``1e308`` overflowed
    gRPC's deadline into an immediate DEADLINE_EXCEEDED: both read as a coordinator's fault."""
    line = _one_line_error(cli(*args, timeout=30))
    assert "--timeout" in line, line


@pytest.mark.parametrize(
    "duration", ["nan", "inf", "1e400", "2d", "25h"], ids=["nan", "inf", "huge", "unit", "over-a-day"]
)
def test_a_chaos_duration_that_is_not_a_bounded_number_is_a_usage_error(duration: str) -> None:
    """``nan`` ran no fault and reported every invariant held (exit 0); ``inf`` ran unbounded."""
    line = _one_line_error(cli("chaos", "--duration", duration, timeout=30))
    assert "--duration" in line, line
