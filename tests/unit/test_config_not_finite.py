"""A number in a config must be a finite number. Found from outside: ``health.host_grace_s:
.inf`` was accepted (a host's health kept for ever), as was ``.nan`` where a field has no
upper bound; the YAML spellings ``.inf``/``.nan`` and the environment's ``inf``/``nan``
are now config errors naming the field."""

from __future__ import annotations

import pytest
from failover_sidecar.config import SidecarConfig
from pydantic import ValidationError

from coordinator.config import CoordinatorConfig
from failover.config_source import ConfigError, load
from failover.venue.config import VenueConfig


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_a_coordinator_float_that_is_not_finite_is_refused(tmp_path, value: str) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "c.yaml"
    f.write_text(f"health:\n  host_grace_s: {value}\n")
    with pytest.raises(ConfigError, match=r"health\.host_grace_s"):
        load(CoordinatorConfig, f, {})


def test_a_sidecar_float_that_is_not_finite_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "s.yaml"
    f.write_text(
        "host_id: h1\ngroups: [g1]\ncoordinators: ['127.0.0.1:1']\n"
        f"state_file: {tmp_path / 's.json'}\ndata_plane:\n  order_timeout_floor_ms: .inf\n"
    )
    with pytest.raises(ConfigError, match=r"data_plane\.order_timeout_floor_ms"):
        load(SidecarConfig, f, {})


def test_every_config_model_refuses_inf_and_nan() -> None:
    for model in (CoordinatorConfig, SidecarConfig, VenueConfig):
        assert model.model_config.get("allow_inf_nan") is False, model
    with pytest.raises(ValidationError):
        CoordinatorConfig.model_validate({"health": {"host_grace_s": float("inf")}})


def test_a_config_path_that_never_ends_is_refused_at_once(tmp_path) -> None:
    """Found from outside: ``failover group put /dev/zero`` never returned (the whole "file"
    was read into memory). A config is a file of at most 4 MiB."""
    import time

    import pytest

    from failover.config_source import ConfigError, read_yaml

    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="not a regular file"):
        read_yaml("/dev/zero")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: " + b"x" * (5 * 1024 * 1024))
    with pytest.raises(ConfigError, match="larger than"):
        read_yaml(big)
    assert time.monotonic() - t0 < 5
