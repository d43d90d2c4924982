"""``failover coordinator --etcd`` is checked like ``etcd.endpoints`` in a file. Found from
outside: ``--etcd ""`` fell back to the default endpoint without a word, and ``--etcd
https://host:2379`` started a replica that retried gRPC's own "target uri is not valid"
for ever (exit 0 at SIGTERM, never a config error)."""

from __future__ import annotations

import subprocess

import pytest

from failover.model.spec import check_address
from failover.procs import cli_argv, free_port


@pytest.mark.parametrize(
    ("etcd", "says"),
    [
        ("", "etcd.endpoints: List should have at least 1 item"),
        ("https://127.0.0.1:2379", "a URL: write host:port (TLS is etcd.tls)"),
        ("127.0.0.1:2379,unix:///tmp/x", "a URL: write host:port"),
    ],
)
def test_a_bad_etcd_option_is_a_config_error(etcd: str, says: str) -> None:
    out = subprocess.run(
        cli_argv("coordinator", "--etcd", etcd, "--listen", f"127.0.0.1:{free_port()}"),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert says in out.stderr and "Traceback" not in out.stderr, out.stderr[-2000:]


@pytest.mark.parametrize("value", ["https://h:1", "grpc://h:1", "h/x:1", "dns:///h:1"])
def test_an_address_with_a_scheme_or_a_path_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="a URL: write host:port"):
        check_address(value)


@pytest.mark.parametrize("value", ["127.0.0.1:2379", "[::1]:2379", "etcd-0.etcd:2379", "localhost:0"])
def test_plain_addresses_still_pass(value: str) -> None:
    assert check_address(value) == value
