"""The software version a process reports: in its metrics' resource and in a sidecar's hello."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version


@functools.cache
def software_version() -> str:
    """The installed ``failover`` distribution's version ("unknown" when run from an uninstalled tree)."""
    try:
        return version("failover")
    except PackageNotFoundError:
        return "unknown"
