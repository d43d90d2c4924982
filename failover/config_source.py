"""Layered configuration: flags > FAILOVER_ environment > YAML file > defaults.

One loader for every process type, so each validates the same way and errors
name the bad field (``etcd.endpoints.1: bad address ...``).
"""

from __future__ import annotations

import contextvars
import os
import stat
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from failover.model.spec import describe_validation_error

_FILE_DATA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "failover_config_file", default=None
)


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the field."""


class _FileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_DATA.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get() or {})


class LayeredSettings(BaseSettings):
    """Base for process configs; subclasses set their own env prefix."""

    model_config = SettingsConfigDict(
        env_prefix="FAILOVER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))


S = TypeVar("S", bound=LayeredSettings)


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: what is wrong and where."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "syntax error"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{' '.join(str(problem).split())}{where}"


class _StrictLoader(yaml.SafeLoader):
    """safe_load's loader, but a mapping key that is not a string or appears twice is an
    error: a config with ``1: 2`` crashed the loaders (``keywords must be strings``), and a
    section written twice silently lost its first copy."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is not a string", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def parse_yaml(text: str) -> Any:
    """The YAML document in ``text`` (yaml.YAMLError on any problem, also nesting deeper
    than the parser can follow, which raised RecursionError)."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise yaml.MarkedYAMLError(problem="nested too deeply") from None


MAX_CONFIG_BYTES = 4 * 1024 * 1024


def read_yaml(path: Path | str | None) -> dict[str, Any]:
    """The mapping in a YAML file; ConfigError (one line naming the file) on any problem."""
    if path is None:
        return {}
    p = Path(path)
    try:
        with open(p, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            # A pipe (``<(...)``) is read, bounded; a device such as /dev/zero never ends.
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                raise ConfigError(f"config file {p}: not a regular file")
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {p}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {p}: larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {p}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from exc
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p}: not valid YAML: {yaml_error_line(exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: the top level must be a mapping")
    return data


def load(cls: type[S], path: Path | str | None, overrides: dict[str, Any] | None = None) -> S:
    """Build a config from file, environment and flag overrides (None values ignored)."""
    data = read_yaml(path)
    token = _FILE_DATA.set(data)
    try:
        flags = {k: v for k, v in (overrides or {}).items() if v is not None}
        return cls(**flags)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
    except SettingsError as exc:
        # e.g. an environment variable for a list or section that is not valid JSON
        raise ConfigError(f"environment: {exc} (lists and sections take JSON)") from exc
    finally:
        _FILE_DATA.reset(token)
