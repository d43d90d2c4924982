"""Hostile input (issue 15, item 4): the parsers facing the network or an operator's file.

Hypothesis drives the venue frame decoder, the replica's sidecar-stream parser
(hello, acks, health) and the config loaders with arbitrary and structured
input. Each must raise only its documented error type (ProtocolError,
INVALID_ARGUMENT text, ConfigError), finish each example quickly and hold a
bounded amount of memory. Under ``make test`` the ``ci`` profile
(tests/conftest.py) derandomizes them; ``make test-explore`` searches wider.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from failover_sidecar.config import SidecarConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.config import CoordinatorConfig
from coordinator.request_checks import MAX_PATHS
from coordinator.sync_service import Session, SyncHub, _check_message, _parse_hello
from failover.config_source import ConfigError, load, read_yaml
from failover.v1 import sync_pb2
from failover.v1 import types_pb2 as pb
from failover.wire.protocol import (
    HEADER,
    HEADER_BYTES,
    MAX_FRAME_BYTES,
    VENUE_FIELDS,
    VENUE_TYPES,
    FrameDecoder,
    MessageError,
    ProtocolError,
    check_from_venue,
    decode_body,
)

# Each example must finish well inside this (a hang shows as a failure, not a stuck run).
EXAMPLE_BOUND_S = 2.0
FUZZ = settings(
    max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


def _bounded(start: float) -> None:
    assert time.monotonic() - start < EXAMPLE_BOUND_S, "one example took too long (a hang?)"


# --- venue protocol ------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


_frames = st.one_of(
    st.binary(max_size=64).map(_frame),
    _json_values.map(lambda v: _frame(yaml.safe_dump(v).encode())),
    st.dictionaries(st.sampled_from(["t", "seq", "id", "clordid"]), _json_values, max_size=4).map(
        lambda d: _frame(__import__("json").dumps(d).encode())
    ),
    st.integers(0, 2**32 - 1).map(HEADER.pack),  # a bare header, any length
    st.binary(max_size=16),
)


@FUZZ
@given(st.lists(_frames, max_size=8), st.integers(1, 64))
def test_frame_decoder_raises_only_protocol_error(frames: list[bytes], chunk: int) -> None:
    start = time.monotonic()
    data = b"".join(frames)
    dec = FrameDecoder()
    try:
        for i in range(0, len(data), chunk):
            for msg in dec.feed(data[i : i + chunk]):
                assert isinstance(msg, dict) and isinstance(msg["t"], str)
            assert dec.buffered <= HEADER_BYTES + MAX_FRAME_BYTES
    except ProtocolError:
        with pytest.raises(ProtocolError):  # poisoned: the stream is out of step for good
            dec.feed(b"")
    _bounded(start)


_venue_messages = st.fixed_dictionaries(
    {"t": st.sampled_from(sorted(VENUE_TYPES)) | st.text(max_size=8)},
    optional={
        k: _json_values
        for k in (
            "seq",
            "id",
            "clordid",
            "order_id",
            "reason",
            "qty",
            "state",
            "session",
            "gateway",
            "ref_seq",
        )
    },
)


@FUZZ
@given(_venue_messages)
def test_venue_message_check_raises_only_message_error(msg: dict[str, Any]) -> None:
    """What the sidecar reads from a venue line: either checked whole or refused by name."""
    try:
        check_from_venue(msg)
    except MessageError as exc:
        assert exc.reason.strip()
        return
    assert msg["t"] in VENUE_TYPES
    for field, kind, required in VENUE_FIELDS[msg["t"]]:  # other fields are ignored, as documented
        value = msg.get(field)
        assert isinstance(value, kind) and not isinstance(value, bool) or (value is None and not required)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * MAX_FRAME_BYTES,  # nesting deeper than the JSON parser's recursion
        b'{"t":"x","a":' + b"[" * (MAX_FRAME_BYTES - 20),
        b'{"t":"x","n":' + b"9" * (MAX_FRAME_BYTES - 20) + b"}",  # an integer too long to convert
        b'{"t":"x","s":"\\ud800"}',  # a lone surrogate
        b"\xff" * 100,
    ],
    ids=["nested", "nested-in-object", "huge-int", "surrogate", "not-utf8"],
)
def test_nasty_bodies_are_protocol_errors_quickly_and_small(body: bytes) -> None:
    tracemalloc.start()
    start = time.monotonic()
    try:
        try:
            decode_body(body)
        except ProtocolError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _bounded(start)
    assert peak < 64 * MAX_FRAME_BYTES, f"{peak} bytes to parse one {len(body)}-byte frame"


# --- the sidecar stream, as a replica parses it --------------------------------------

_names = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,10}", fullmatch=True)
_anytext = st.text(max_size=70)
_epochs = st.builds(pb.Epoch, era=st.integers(0, 2**64 - 1), revision=st.integers(-(2**63), 2**63 - 1))
_enum_ints = st.integers(-5, 12)


def _path_health(group: str, path: str, state: int, cause: int, warmth: int, detect: int) -> pb.PathHealth:
    return pb.PathHealth(group=group, path=path, state=state, cause=cause, warmth=warmth, detect_us=detect)


_health = st.builds(
    sync_pb2.HealthReport,
    full=st.booleans(),
    paths=st.lists(
        st.builds(
            _path_health,
            _names | _anytext,
            _names | _anytext,
            _enum_ints,
            _enum_ints,
            _enum_ints,
            st.integers(-(2**63), 2**63 - 1),
        ),
        max_size=5,
    ),
    effective=st.dictionaries(_names | _anytext, _names | _anytext, max_size=3),
)
_ack = st.builds(
    sync_pb2.Ack,
    group=_names | _anytext,
    epoch=_epochs,
    stages=st.lists(
        st.builds(pb.StageTiming, stage=_names | _anytext, where=_names, duration_us=st.integers(-5, 5)),
        max_size=3,
    ),
)
_hello = st.builds(
    sync_pb2.Hello,
    host_id=_names | _anytext,
    site=_names | _anytext,
    groups=st.lists(_names | _anytext, max_size=4),
    held=st.dictionaries(_names, _epochs, max_size=3),
)
_sidecar_messages = st.one_of(
    _hello.map(lambda h: sync_pb2.SidecarMessage(hello=h)),
    _ack.map(lambda a: sync_pb2.SidecarMessage(ack=a)),
    _health.map(lambda r: sync_pb2.SidecarMessage(health=r)),
)
_raw_messages = st.one_of(st.binary(max_size=200), _sidecar_messages.map(lambda m: m.SerializeToString()))


@FUZZ
@given(_raw_messages)
def test_hello_parser_never_raises(raw: bytes) -> None:
    start = time.monotonic()
    hello, problem = _parse_hello(raw)
    assert (hello is None) == bool(problem)
    if hello is not None:
        assert hello.groups and len(hello.groups) <= 1000
    _bounded(start)


@FUZZ
@given(_sidecar_messages, st.lists(_names, min_size=1, max_size=3))
def test_stream_message_check_never_raises(msg: sync_pb2.SidecarMessage, groups: list[str]) -> None:
    problem = _check_message(msg, tuple(groups))
    assert problem is None or isinstance(problem, str)
    kind = msg.WhichOneof("kind")
    if problem is None and kind == "health":
        assert all(ph.group in groups for ph in msg.health.paths)
        assert set(msg.health.effective) <= set(groups)
    if problem is None and kind == "ack":
        assert msg.ack.group in groups


class _Forwarder:
    def report(self, sid: int, health: Any, trace: tuple[str, str] = ("", "")) -> None:
        pass


async def _feed(msgs: list[sync_pb2.SidecarMessage], groups: tuple[str, ...]) -> Session:
    hub = SyncHub.__new__(SyncHub)  # only the reader: no view, no etcd
    hub.forwarder = _Forwarder()  # type: ignore[assignment]
    s = Session(sid=1, host_id="h1", site="default", groups=groups, acked={})

    async def it() -> AsyncIterator[bytes]:
        for m in msgs:
            yield m.SerializeToString()

    await hub._read(s, it())
    return s


def test_health_for_foreign_groups_cannot_grow_a_session() -> None:
    """Regression: a sidecar sent 20000 health entries for groups it never named; the
    replica kept them all (memory grows with whatever one sidecar sends)."""
    flood = sync_pb2.HealthReport(
        paths=[pb.PathHealth(group=f"g{i}", path=f"p{i}", state=pb.PATH_STATE_DOWN) for i in range(20_000)]
    )
    s = asyncio.run(_feed([sync_pb2.SidecarMessage(health=flood)], ("g1",)))
    assert len(s.health) <= MAX_PATHS
    assert s.error is not None and "health.paths" in s.error[1]


def test_acks_for_foreign_groups_are_refused() -> None:
    """Regression: acks for groups outside the hello filled ``acked`` (shown in status) without bound."""
    acks = [
        sync_pb2.SidecarMessage(ack=sync_pb2.Ack(group=f"x{i}", epoch=pb.Epoch(era=1, revision=i)))
        for i in range(1000)
    ]
    s = asyncio.run(_feed(acks, ("g1",)))
    assert s.acked == {}
    assert s.error is not None and "ack.group" in s.error[1]


def test_undefined_enum_in_health_is_refused() -> None:
    bad = sync_pb2.HealthReport(paths=[pb.PathHealth(group="g1", path="p1", state=99)])  # type: ignore[arg-type]
    s = asyncio.run(_feed([sync_pb2.SidecarMessage(health=bad)], ("g1",)))
    assert s.error is not None and s.error[1] == "health.paths.0.state: undefined enum value 99"


# --- config loaders ----------------------------------------------------------------------

_yaml_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.floats(allow_nan=False)
_yaml_values = st.recursive(
    _yaml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=12,
)
_coord_keys = st.sampled_from(
    ["replica_id", "listen", "etcd", "election", "stream", "groups", "tls", "history_retention", "x"]
)
_sidecar_keys = st.sampled_from(
    ["host_id", "groups", "coordinators", "state_file", "listen", "tls", "bootstrap"]
)


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    return tmp_path / "c.yaml"


@FUZZ
@given(st.binary(max_size=300))
def test_read_yaml_raises_only_config_error(cfg_file: Path, raw: bytes) -> None:
    start = time.monotonic()
    cfg_file.write_bytes(raw)
    try:
        data = read_yaml(cfg_file)
        assert isinstance(data, dict)
    except ConfigError as exc:
        assert "\n" not in str(exc)
    _bounded(start)


@FUZZ
@given(
    st.sampled_from([CoordinatorConfig, SidecarConfig]),
    st.dictionaries(_coord_keys | _sidecar_keys, _yaml_values, max_size=5),
)
def test_config_loaders_raise_only_config_error(cfg_file: Path, cls: Any, data: dict[str, Any]) -> None:
    start = time.monotonic()
    cfg_file.write_text(yaml.safe_dump(data))
    try:
        load(cls, cfg_file)
    except ConfigError as exc:
        assert str(exc)
    _bounded(start)


def test_yaml_alias_bomb_is_refused_quickly(cfg_file: Path) -> None:
    """A billion-laughs file: aliases let a few hundred bytes name 10^9 list items."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    lines.append("groups: *a9")
    cfg_file.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    with pytest.raises(ConfigError):
        load(CoordinatorConfig, cfg_file)
    _bounded(start)


# --- atheris (coverage-guided), when installed -------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("target", ["frames", "stream"])
def test_atheris_finds_no_crash_in_a_few_seconds(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.security.fuzz_atheris",
            target,
            "-max_total_time=5",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not list(tmp_path.glob("crash-*"))
