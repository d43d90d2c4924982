"""The sidecar's last applied definitions and decisions, on disk.

Static stability: a sidecar restarted while every coordinator (or etcd) is
unreachable routes on what it last applied. Written atomically (temporary
file, fsync, rename) so a crash never leaves a torn file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format

from failover.model.spec import epoch_out_of_range
from failover.v1 import types_pb2 as pb
from failover_sidecar.route import repeated_path

VERSION = 1


class StateFileError(ValueError):
    pass


@dataclass
class SavedState:
    definitions: dict[str, pb.GroupDefinition] = field(default_factory=dict)
    decisions: dict[str, pb.Decision] = field(default_factory=dict)


def load(path: str | Path) -> SavedState:
    p = Path(path)
    if not p.exists():
        return SavedState()
    try:
        data = json.loads(p.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"the top level is {type(data).__name__}, not an object")
        if data.get("version") != VERSION:
            raise StateFileError(f"state file {p}: unsupported version {data.get('version')!r}")
        st = SavedState()
        for section in ("definitions", "decisions"):
            if not isinstance(data.get(section, {}), dict):
                raise ValueError(f"{section!r} is {type(data[section]).__name__}, not an object")
        for name, d in data.get("definitions", {}).items():
            gdef = st.definitions[name] = json_format.ParseDict(d, pb.GroupDefinition())
            _check(name, gdef.name, "definition", [path.name for path in gdef.paths])
        for name, d in data.get("decisions", {}).items():
            dec = st.decisions[name] = json_format.ParseDict(d, pb.Decision())
            _check(name, dec.group, "decision", list(dec.paths))
            # Held epochs go into every hello: one no replica accepts would cost every hello.
            if bad := epoch_out_of_range(
                dec.epoch.era, dec.epoch.revision, f"decision of group {name!r}: epoch"
            ):
                raise ValueError(bad)
        return st
    except RecursionError:
        raise StateFileError(f"unreadable state file {p}: nested too deeply") from None
    except (OSError, ValueError, TypeError, AttributeError, json_format.ParseError) as exc:
        # (TypeError, AttributeError: protobuf's JSON parser given a value of the wrong shape)
        raise StateFileError(f"unreadable state file {p}: {exc}") from exc


def _check(key: str, group: str, what: str, paths: list[str]) -> None:
    """Refuse what no coordinator writes: the sidecar would route on it after a restart."""
    if group != key:
        raise ValueError(f"{what} under {key!r} holds group {group!r}")
    path = repeated_path(paths)
    if path is not None:
        raise ValueError(f"{what} of group {key!r} lists path {path!r} twice")


def lock(path: str | Path) -> int:
    """Hold ``<state file>.lock`` (an exclusive flock) for the process's life; its fd.

    Two sidecars on one state file (a second copy started by hand, or another host's
    config pointing at it) would overwrite each other's routes: the second is refused.
    The kernel drops the lock when the holder exits, however it exits.
    """
    lock_path = f"{path}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateFileError(f"state file {path}: cannot open its lock {lock_path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateFileError(
            f"state file {path} is in use by another sidecar (it holds {lock_path}); refusing to start"
        ) from None
    return fd


def save(path: str | Path, host_id: str, state: SavedState) -> None:
    p = Path(path)
    data = {
        "version": VERSION,
        "host_id": host_id,
        "definitions": {n: json_format.MessageToDict(d) for n, d in sorted(state.definitions.items())},
        "decisions": {n: json_format.MessageToDict(d) for n, d in sorted(state.decisions.items())},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=str(p.parent))
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
