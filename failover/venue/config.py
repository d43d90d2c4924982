"""Venue configuration: a pydantic model loadable from YAML, with errors that name the field.

Example (``failover venue run --config venue.yaml``)::

    name: cme
    gateways:
      - {name: primary, listen: "127.0.0.1:9001"}
      - {name: backup, listen: "127.0.0.1:9002"}
    control_listen: "127.0.0.1:9100"
    cancel_on_disconnect: false
    single_session: false

Port 0 picks a free port (``run`` prints the real ones). Any address that parses is
accepted, loopback or not: the simulator also runs in network namespaces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from failover.config_source import parse_yaml
from failover.wire.address import parse_host_port


def _check_address(value: str) -> str:
    parse_host_port(value)
    return value.strip()


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="e.g. primary, backup")
    listen: str = Field(description="host:port; port 0 picks a free port")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        return _check_address(value)

    @property
    def host(self) -> str:
        return parse_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_host_port(self.listen)[1]


class VenueConfig(BaseModel):
    """One venue: its gateways (primary and backup lines), control address and options."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(default="venue", min_length=1)
    gateways: list[GatewayConfig] = Field(min_length=1)
    control_listen: str = "127.0.0.1:0"
    cancel_on_disconnect: bool = False
    single_session: bool = False

    @field_validator("control_listen")
    @classmethod
    def _check_control(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("gateways")
    @classmethod
    def _distinct(cls, gateways: list[GatewayConfig]) -> list[GatewayConfig]:
        names: set[str] = set()
        listens: dict[tuple[str, int], str] = {}
        for gw in gateways:
            if gw.name in names:
                raise ValueError(f"duplicate gateway name {gw.name!r}")
            names.add(gw.name)
            key = (gw.host, gw.port)
            if gw.port != 0 and key in listens:
                raise ValueError(f"gateways {listens[key]!r} and {gw.name!r} both listen on {gw.listen}")
            listens[key] = gw.name
        return gateways

    @classmethod
    def from_yaml(cls, path: str | Path) -> VenueConfig:
        """Load and validate; OSError, yaml.YAMLError or ValidationError on failure."""
        data: Any = parse_yaml(Path(path).read_text(encoding="utf-8"))
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
        return cls.model_validate(data)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per error, each naming the field by its path (``gateways.1.listen: ...``)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
