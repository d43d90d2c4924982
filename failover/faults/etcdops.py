"""Operator actions on a fault cluster's etcd, through etcd's JSON gateway (no etcdctl here).

What an operator does around a NOSPACE alarm (fill, delete, compact, defragment,
disarm) and around a restore (cold copies of every member's data directory, put
back later). Synchronous and plain HTTP: call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from failover.etcdproc import EtcdCluster


class EtcdOpError(RuntimeError):
    """etcd refused an operation; the message is etcd's."""


def _b64(s: bytes | str) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def call(endpoint: str, path: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """POST one gateway call; EtcdOpError with etcd's message when it refuses."""
    req = urllib.request.Request(
        f"http://{endpoint}/v3/{path}", data=json.dumps(body).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            out: dict[str, Any] = json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise EtcdOpError(exc.read().decode(errors="replace")[:300]) from exc
    if "error" in out:
        raise EtcdOpError(str(out.get("error")))
    return out


def fill(endpoint: str, prefix: str, value_bytes: int, limit: int = 400) -> int:
    """Put ``value_bytes`` values under ``prefix`` until etcd refuses with NOSPACE; returns how many."""
    value = _b64(b"x" * value_bytes)
    for n in range(limit):
        try:
            call(endpoint, "kv/put", {"key": _b64(f"{prefix}{n:05d}"), "value": value})
        except EtcdOpError as exc:
            if "database space exceeded" in str(exc):
                return n
            raise
    raise EtcdOpError(f"no NOSPACE after {limit} puts of {value_bytes} bytes")


def alarms(endpoint: str) -> list[dict[str, Any]]:
    return list(call(endpoint, "maintenance/alarm", {"action": "GET"}).get("alarms", []))


def clear_space(cluster: EtcdCluster, prefix: str) -> None:
    """Delete the filler, compact to the current revision, defragment every member, disarm."""
    ep = cluster.endpoints[0]
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    out = call(ep, "kv/deleterange", {"key": _b64(prefix), "range_end": _b64(end)})
    rev = int(out["header"]["revision"])
    call(ep, "kv/compaction", {"revision": rev, "physical": True})
    for m in cluster.endpoints:
        call(m, "maintenance/defragment", {}, timeout=30)
    for a in alarms(ep):
        call(
            ep, "maintenance/alarm", {"action": "DEACTIVATE", "memberID": a["memberID"], "alarm": a["alarm"]}
        )


def cold_copy(cluster: EtcdCluster, dest: Path) -> None:
    """Stop every member, copy each data directory into ``dest``, leave them stopped."""
    for i in range(len(cluster.members)):
        cluster.stop_member(i)
    for m in cluster.members:
        shutil.copytree(m.data_dir, dest / m.name)


def put_back(cluster: EtcdCluster, src: Path) -> None:
    """Stop every member and put the copied data directories back (revisions go backwards)."""
    for i in range(len(cluster.members)):
        cluster.stop_member(i)
    for m in cluster.members:
        shutil.rmtree(m.data_dir)
        shutil.copytree(src / m.name, m.data_dir)
