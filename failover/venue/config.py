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

import ipaddress
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def parse_host_port(text: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6); ValueError says what is wrong."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{text!r} is not [ipv6]:port")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{text!r} is not host:port")
        if ":" in host:
            raise ValueError(f"{text!r}: write an IPv6 address as [addr]:port")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not _HOSTNAME.match(host) or host.replace(".", "").isdigit():
                raise ValueError(f"{host!r} is not a valid host name or IP address") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} is not a number from 0 to 65535")
    return host, int(port_text)


def _check_address(value: str) -> str:
    parse_host_port(value)
    return value.strip()


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

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

    model_config = ConfigDict(extra="forbid")

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
        data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
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
