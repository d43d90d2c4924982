"""Config files that crashed the loaders, found from outside: ``1: 2`` beside valid keys
(``TypeError: keywords must be strings`` from ``failover coordinator`` and ``failover
sidecar``), a document nested 5,000 deep (``RecursionError`` from every loader). A key
written twice (``listen:`` twice) was silently the last one. Each is now one line naming
the file, and exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from failover.config_source import ConfigError, read_yaml
from failover.procs import cli_argv

BAD = {
    "a key that is not a string": ("etcd:\n  endpoints: [127.0.0.1:2379]\n1: 2\n", "key 1 is not a string"),
    "a key written twice": ("replica_id: c1\nreplica_id: c2\n", "key 'replica_id' appears twice"),
    "a nested key written twice": ("etcd:\n  prefix: /a\n  prefix: /b\n", "key 'prefix' appears twice"),
    "nesting too deep": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_read_yaml_refuses(tmp_path: Path, case: str) -> None:
    text, why = BAD[case]
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=why):
        read_yaml(p)


def test_merge_keys_and_plain_documents_still_load(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n")
    assert read_yaml(p) == {"base": {"x": 1}, "use": {"x": 1, "y": 2}}


@pytest.mark.parametrize("command", ["coordinator", "sidecar", "venue run"])
@pytest.mark.parametrize("case", ["a key that is not a string", "nesting too deep"])
def test_the_servers_exit_2_with_one_line(tmp_path: Path, command: str, case: str) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(BAD[case][0])
    out = subprocess.run(
        cli_argv(*command.split(), "--config", str(p)), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr and BAD[case][1] in out.stderr, out.stderr[-2000:]
