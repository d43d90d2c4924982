"""The garbage collector of a long-running process: what start-up built is frozen.

A full collection scans every tracked object and stops the whole process meanwhile,
its event loop included. In a running sidecar about 64,000 tracked objects are what
importing and configuring left (modules, protobuf descriptors, config models), which
live as long as the process; a full collection over them stopped the data path for
60-75 ms, frozen 2-3 ms (docs/benchmarks.md, "The garbage collector of the sidecar").
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def freeze_startup_heap() -> None:
    """Collect once, then move every tracked object to the permanent generation, which no
    collection scans (objects made later are collected as usual)."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """The start-up heap frozen for a block (a benchmark hosting a sidecar in-process
    measures it as the sidecar process runs), unfrozen after it: a test process that runs
    the block goes on collecting as before."""
    freeze_startup_heap()
    try:
        yield
    finally:
        gc.unfreeze()
