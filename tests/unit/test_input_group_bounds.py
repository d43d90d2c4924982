"""A group definition is bounded the same wherever it comes from.

Found from outside: the coordinator config's ``groups:`` seeded ``policy: {fail_hosts:
4294967296}`` (the proto field is uint32), after which every GetStatus and every Sync
stream failed with ``UNKNOWN: Unexpected ValueError: Value out of range``; it seeded a
70-path group that PutGroup refuses (at most 64), and every sidecar's stream was cut on
its health report; ``failover group put`` and the sidecar's ``bootstrap`` gave a raw
traceback for the same policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from client.failover_sidecar.config import SidecarConfig
from coordinator import request_checks
from coordinator.config import CoordinatorConfig
from failover.model import spec as spec_mod
from failover.model.convert import group_pb
from failover.model.spec import MAX_GROUP_PATHS, GroupSpec, describe_validation_error
from tests.procs import cli

UINT32_FIELDS = ["fail_hosts", "failback_hold_s", "min_hosts_up", "slow_threshold_ms"]


def _group(policy: dict[str, object] | None = None, paths: int = 1) -> dict[str, object]:
    return {
        "name": "g1",
        "paths": [{"name": f"p{i}", "endpoints": {"default": "127.0.0.1:9001"}} for i in range(paths)],
        "policy": policy or {},
    }


@pytest.mark.parametrize("field", UINT32_FIELDS)
def test_a_policy_integer_beyond_uint32_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError) as err:
        GroupSpec.model_validate(_group({field: 2**32}))
    assert describe_validation_error(err.value).startswith(f"policy.{field}:"), err.value


def test_every_accepted_policy_fits_the_wire() -> None:
    top = GroupSpec.model_validate(_group({f: spec_mod.MAX_UINT32 for f in UINT32_FIELDS}))
    group_pb(top, 0).SerializeToString()  # no ValueError: Value out of range


def test_paths_are_bounded_by_the_limit_put_group_uses() -> None:
    assert MAX_GROUP_PATHS == request_checks.MAX_PATHS
    GroupSpec.model_validate(_group(paths=MAX_GROUP_PATHS))
    with pytest.raises(ValidationError) as err:
        GroupSpec.model_validate(_group(paths=MAX_GROUP_PATHS + 1))
    assert "paths" in describe_validation_error(err.value), err.value
    assert str(MAX_GROUP_PATHS) in describe_validation_error(err.value), err.value


def test_the_coordinator_config_refuses_to_seed_such_a_group() -> None:
    for group in (_group({"fail_hosts": 2**32}), _group(paths=70)):
        with pytest.raises(ValidationError):
            CoordinatorConfig.model_validate({"groups": [group]})


def test_the_sidecar_bootstrap_refuses_such_a_policy(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        SidecarConfig.model_validate(
            {
                "host_id": "h1",
                "groups": ["g1"],
                "coordinators": ["127.0.0.1:7001"],
                "state_file": str(tmp_path / "s.json"),
                "bootstrap": [_group({"slow_threshold_ms": 2**32})],
            }
        )
    assert "bootstrap.0.policy.slow_threshold_ms" in describe_validation_error(err.value)


def test_group_put_refuses_it_with_one_line_and_exit_2(tmp_path: Path) -> None:
    f = tmp_path / "g.yaml"
    f.write_text(
        "name: gx\npaths:\n  - {name: p, endpoints: {default: 127.0.0.1:9001}}\n"
        "policy: {min_hosts_up: 4294967296}\n"
    )
    r = cli("group", "put", str(f), "-c", "127.0.0.1:1")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "policy.min_hosts_up" in r.stderr, r.stderr
