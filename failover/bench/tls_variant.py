"""``--tls off|on|both`` for the benchmarks: certificates in a temporary directory.

A benchmark run with ``--tls both`` measures the plaintext and the mTLS variant
of each row in the same run (plaintext first, then mTLS, row by row), so the
ratio between them is taken on the same machine under the same load. The
certificates come from failover/devcerts.py: one CA, a certificate per replica,
per sidecar host id and one operator (``bench``) for the bench's own Admin calls.
"""

from __future__ import annotations

import enum
import shutil
import tempfile
from pathlib import Path
from typing import Any

from failover import devcerts
from failover.tls import TlsSection


class TlsMode(enum.StrEnum):
    """``--tls``: plaintext, mTLS, or each row both ways."""

    off = "off"
    on = "on"
    both = "both"


OPERATOR = "bench"


def variants(choice: str) -> list[bool]:
    """Which variants a ``--tls`` value runs, in order (False = plaintext)."""
    return {"off": [False], "on": [True], "both": [False, True]}[choice]


def label(tls: bool) -> str:
    return "mtls" if tls else "insecure"


class BenchPki:
    """A dev CA and leaf certificates issued on demand; :meth:`remove` deletes the directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="failover-bench-pki-"))
        self._ca = devcerts.make_ca("failover bench CA")
        (self.root / "ca.pem").write_bytes(self._ca.cert_pem)
        self._issued: set[str] = set()

    def section(self, role: str, name: str) -> TlsSection:
        """An mtls section presenting ``role``/``name`` (issued the first time it is asked for)."""
        stem = f"{role}-{name}"
        if stem not in self._issued:
            devcerts.write_pair(self.root, stem, devcerts.issue(self._ca, role, name))
            self._issued.add(stem)
        return TlsSection(
            mode="mtls",
            ca_file=str(self.root / "ca.pem"),
            cert_file=str(self.root / f"{stem}.pem"),
            key_file=str(self.root / f"{stem}.key"),
        )

    def config(self, role: str, name: str) -> dict[str, Any]:
        """The ``tls:`` mapping of a YAML config for ``role``/``name``."""
        return self.section(role, name).model_dump(exclude_defaults=True)

    def operator(self) -> TlsSection:
        return self.section("operator", OPERATOR)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# --- the comparison table -------------------------------------------------------

_PCTS = (("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms"))


def ratio(secure: float | None, plain: float | None) -> float | None:
    """mTLS / plaintext, None when either is missing or the plaintext figure is 0."""
    if secure is None or not plain:
        return None
    return round(secure / plain, 2)


def _coordinator_cpu_us_per_stream(res: dict[str, Any]) -> float | None:
    """Mean coordinator CPU per run (push + ack) divided by the streams: us per stream per push."""
    cpu = res.get("mean_window", {}).get("cpu_ms", {})
    total = sum(v for k, v in cpu.items() if k.startswith("c"))
    return round(total * 1000 / res["streams"], 1) if res.get("streams") else None


def _bench_cpu_us_per_stream(res: dict[str, Any]) -> float | None:
    cpu = res.get("mean_window", {}).get("cpu_ms", {})
    return round(cpu.get("bench", 0.0) * 1000 / res["streams"], 1) if res.get("streams") else None


def _figures(res: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for stat in ("last_stream", "all_streams", "switch_reply"):
        for short, key in _PCTS:
            out[f"{stat}_{short}_ms"] = res.get(stat, {}).get(key)
    out["coordinator_cpu_us_per_stream_per_push"] = _coordinator_cpu_us_per_stream(res)
    out["client_cpu_us_per_stream_per_push"] = _bench_cpu_us_per_stream(res)
    return out


def tls_pairs(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fan-out rows paired by (streams, replicas): both variants' figures and mTLS/plaintext."""
    by_key: dict[tuple[int, int], dict[str, dict[str, Any]]] = {}
    for res in results:
        by_key.setdefault((res["streams"], res["replicas"]), {})[res.get("tls", "insecure")] = res
    pairs = []
    for (s, r), both in by_key.items():
        if "insecure" not in both or "mtls" not in both:
            continue
        plain, secure = _figures(both["insecure"]), _figures(both["mtls"])
        pairs.append(
            {
                "streams": s,
                "replicas": r,
                "insecure": plain,
                "mtls": secure,
                "ratio": {k: ratio(secure[k], plain[k]) for k in plain},
            }
        )
    return pairs


def _fmt(v: float | None, suffix: str = "") -> str:
    return "-" if v is None else f"{v:g}{suffix}"


def comparison_table(pairs: list[dict[str, Any]], *keys: str) -> Any:
    """A rich table of paired rows: per figure, plaintext / mTLS / ratio; ``keys`` name the row."""
    from rich.table import Table

    t = Table(title="TLS cost: plaintext | mTLS | mTLS/plaintext", title_justify="left")
    for col in (*keys, "figure", "insecure", "mtls", "ratio"):
        t.add_column(col, justify="right")
    for pair in pairs:
        for fig in pair["insecure"]:
            t.add_row(
                *(str(pair[k]) for k in keys),
                fig,
                _fmt(pair["insecure"][fig]),
                _fmt(pair["mtls"].get(fig)),
                _fmt(pair["ratio"].get(fig), "x"),
            )
    return t


def fanout_comparison(results: list[dict[str, Any]]) -> Any:
    """The comparison table of fan-out rows, per (S, R)."""
    return comparison_table(tls_pairs(results), "streams", "replicas")
