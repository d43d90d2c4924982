"""Regenerate the failover.v1 Python code from proto/ (or check it is current).

Usage: python scripts/gen_protos.py [--check]

The .proto paths mirror the import path (proto/failover/v1/x.proto ->
failover.v1.x_pb2), so generated imports need no patching. The output is
committed; ``--check`` regenerates into a temporary directory and fails on
any difference, which CI and tests/unit/test_proto_drift.py run.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = Path("failover") / "v1"
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Run protoc on every .proto under proto/failover/v1 into out_root."""
    sources = sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))
    if not sources:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / PACKAGE}")
    (out_root / PACKAGE).mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *[str(s.relative_to(PROTO_ROOT)) for s in sources],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted(p for p in (out_root / PACKAGE).iterdir() if p.name.endswith(SUFFIXES))


def drift() -> list[str]:
    """Names of generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        committed = {p.name for p in (ROOT / PACKAGE).iterdir() if p.name.endswith(SUFFIXES)}
        problems = [f"stale or extra: {name}" for name in sorted(committed - {p.name for p in fresh})]
        for path in fresh:
            target = ROOT / PACKAGE / path.name
            if not target.exists():
                problems.append(f"missing: {path.name}")
            elif not filecmp.cmp(path, target, shallow=False):
                problems.append(f"differs: {path.name}")
        return problems


def main() -> int:
    if "--check" in sys.argv[1:]:
        problems = drift()
        for line in problems:
            print(line)
        if problems:
            print("generated code is out of date: run python scripts/gen_protos.py")
            return 1
        print("generated code is current")
        return 0
    for path in generate(ROOT):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
