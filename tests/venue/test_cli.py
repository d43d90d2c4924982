"""The ``venue`` commands: argument errors in-process, and one real ``run`` process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from failover.venue.cli import venue_app
from failover.venue.testclient import VenueClient

runner = CliRunner()
PYTHON = sys.executable


def invoke_error(args: list[str], *words: str) -> str:
    result = runner.invoke(venue_app, args)
    assert result.exit_code == 2, result.output
    text = result.output
    assert "Traceback" not in text
    for word in words:
        assert word in text, text
    return text


def test_run_needs_gateways() -> None:
    text = invoke_error(["run"], "--config FILE or at least one --gateway")
    assert text.count("\n") == 1  # one line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "--gateway", "primary"], ["expected NAME=HOST:PORT"]),
        (["run", "--gateway", "p=127.0.0.1:99999"], ["gateways.0.listen", "65535"]),
        (["run", "--gateway", "p=127.0.0.1:0", "--gateway", "p=127.0.0.1:0"], ["duplicate gateway name"]),
        (["run", "--gateway", "p=127.0.0.1:0", "--control", "nowhere"], ["control_listen"]),
        (["run", "--config", "/nonexistent/venue.yaml"], ["/nonexistent/venue.yaml", "No such file"]),
        (["fault", "--control", "127.0.0.1:1", "--gateway", "p", "--kind", "explode"], ["explode"]),
        (["fault", "--control", "127.0.0.1:1", "--gateway", "p", "--kind", "slow"], ["--delay-ms"]),
        (["event", "--control", "127.0.0.1:1", "--kind", "fill"], ["--clordid"]),
        (["counters", "--control", "not an address"], ["--control: 'not an address' is not host:port"]),
    ],
)
def test_argument_errors(args: list[str], words: list[str]) -> None:
    invoke_error(args, *words)


def test_bad_config_files(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("gateways: [unclosed\n")
    invoke_error(["run", "--config", str(bad_yaml)], "invalid YAML")
    dup = tmp_path / "dup.yaml"
    dup.write_text("gateways:\n  - {name: a, listen: '127.0.0.1:0'}\n  - {name: a, listen: '127.0.0.1:0'}\n")
    invoke_error(["run", "--config", str(dup)], "gateways: duplicate gateway name 'a'")
    invoke_error(["run", "--config", str(dup), "--gateway", "x=127.0.0.1:0"], "not both")


def test_unreachable_control_is_one_line() -> None:
    text = invoke_error(["counters", "--control", "127.0.0.1:1", "--timeout", "0.5"], "error: ")
    assert text.count("\n") == 1 and ("UNAVAILABLE" in text or "DEADLINE_EXCEEDED" in text)


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "failover.venue.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(15):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_process_serves_reports_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "failover.venue.cli",
        "run",
        "--gateway",
        "primary=127.0.0.1:0",
        "--gateway",
        "backup=127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
        "--name",
        "demo",
        "--single-session",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        addresses: dict[str, str] = {}
        async with asyncio.timeout(15):
            while "control" not in addresses:
                line = (await proc.stdout.readline()).decode()
                assert line, (await proc.stderr.read()).decode()
                words = line.split()
                addresses[words[-2] if words[0] == "gateway" else "control"] = words[-1]
        assert set(addresses) == {"primary", "backup", "control"}
        client = await VenueClient.connect(addresses["primary"])
        try:
            assert (await client.logon("host-a"))["t"] == "logon_ack"
            code, out, err = await cli(
                "fault", "--control", addresses["control"], "--gateway", "backup", "--kind", "logon-refused"
            )
            assert code == 0 and "logon_refused" in out, err
            code, out, err = await cli("counters", "--control", addresses["control"], "--json")
            assert code == 0, err
            data = json.loads(out)
            primary, backup = data["gateways"]
            assert (
                primary["logons_by_session"] == {"host-a": 1} and primary["address"] == addresses["primary"]
            )
            assert backup["faults"] == ["logon_refused"]
            code, out, err = await cli("counters", "--control", addresses["control"])
            assert code == 0 and "primary" in out and "host-a=1" in out, err
            code, out, err = await cli(
                "event", "--control", addresses["control"], "--kind", "fill", "--clordid", "missing"
            )
            assert code == 2 and err.strip() == "error: NOT_FOUND: client_order_id 'missing' not found", err
        finally:
            await client.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
