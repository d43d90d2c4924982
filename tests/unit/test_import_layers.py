"""Import layers: every arrow points down (docs/architecture.md, package map).

Read from the source with ``ast`` (nothing is imported), so a new module is
checked as soon as it exists. A failure names the module, the import and the
rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Import name -> folder, for every package we ship.
PACKAGES = {
    "coordinator": ROOT / "coordinator",
    "failover": ROOT / "failover",
    "failover_sidecar": ROOT / "client" / "failover_sidecar",
    "failover_client": ROOT / "client" / "failover_client",
}

# The shared layer: below both components. Plumbing may use it, nothing in it
# may use plumbing's neighbours above.
SHARED = ("failover.v1", "failover.model", "failover.wire")
PLUMBING = (
    "failover.aio",
    "failover.reading",
    "failover.config_source",
    "failover.logs",
    "failover.rpc",
    "failover.procs",
    "failover.etcdproc",
    "failover.stats",
    "failover.faults",
    "failover.machine",
    "failover.telemetry",
)
COMPONENTS = ("coordinator", "failover_sidecar", "failover_client", "failover.venue")
APPS = (
    "failover.cli",
    "failover.chaos",
    "failover.demo",
    "failover.bench",
    "failover.status_view",
    "failover.commands",
)
IO_LIBS = ("asyncio", "grpc", "grpc_health", "grpc_reflection", "etcd3aio", "socket", "subprocess")


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _modules() -> list[tuple[str, Path]]:
    out = []
    for top, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [top, *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            if not _under(name, ("failover.v1",)):
                out.append((name, path))
    return sorted(out)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{a.name}" for a in node.names)
    return names


def _forbidden(module: str) -> tuple[tuple[str, ...], str]:
    """What ``module`` may not import, and the rule's name."""
    if _under(module, ("coordinator.core",)):
        return (*IO_LIBS, "coordinator.store", *COMPONENTS[1:], *APPS, *PLUMBING), "pure core imports no I/O"
    if _under(module, SHARED):
        return (*COMPONENTS, *APPS, *PLUMBING, "grpc", "asyncio"), "shared model imports no component"
    if _under(module, PLUMBING):
        return (*COMPONENTS, *APPS), "plumbing imports no component"
    if _under(module, ("failover_client",)):
        return ("coordinator", "failover_sidecar", "failover.venue", *APPS), "strategy library stands alone"
    if _under(module, ("failover_sidecar",)):
        return ("coordinator", "failover.venue", *APPS), "sidecar imports no coordinator"
    if _under(module, ("coordinator",)):
        others = ("failover_sidecar", "failover_client", "failover.venue", *APPS)
        return others, "coordinator imports no sidecar"
    if _under(module, ("failover.venue",)):
        return ("coordinator", "failover_sidecar", "failover_client", *APPS), "simulator imports no component"
    return (), ""


MODULES = _modules()


def test_every_package_is_scanned() -> None:
    names = {m for m, _ in MODULES}
    expected = {
        "coordinator.core.policy",
        "failover_sidecar.agent",
        "failover_client.api",
        "failover.model.spec",
    }
    assert expected <= names


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_arrows_point_down(module: str, path: Path) -> None:
    forbidden, rule = _forbidden(module)
    bad = sorted({imp for imp in _imports(path) if _under(imp, forbidden)})
    assert not bad, f"{module} imports {bad}: {rule}"
