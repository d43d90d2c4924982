"""How etcd is reached: which member a replica talks to, and why etcd does not answer.

A replica sends its calls to the member that leads etcd (``keep_near_etcd_leader``):
a write sent to another member is passed on to the leader inside etcd first.

"get: timed out" tells an operator nothing; "etcd has no quorum (0 of 3 members
answer)" tells them where to look. A member "answers" when it answers a status
request within the bound (``Store.members_answering``): a paused member, or one
behind a proxy, still accepts TCP connections (the kernel does), so a port check
counted members that could not answer anything. ``count_answering`` (a port check)
is only for waiting until a member is listening.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from coordinator.store.errors import StoreError
from coordinator.store.port import Store


def describe(answering: int, members: int) -> str:
    """One phrase for an etcd call that failed, given how many members answer (pure)."""
    if members <= 0:
        return "etcd did not answer"
    if not has_quorum(answering, members):
        return f"etcd has no quorum ({answering} of {members} configured members answer)"
    return f"etcd did not answer in time ({answering} of {members} configured members answer)"


async def _answers(endpoint: str, timeout_s: float) -> bool:
    host, _, port = endpoint.removeprefix("http://").rpartition(":")
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def has_quorum(answering: int, members: int) -> bool:
    return members > 0 and answering > members // 2


async def count_answering(endpoints: Sequence[str], timeout_s: float = 0.5) -> int:
    """How many members' client ports accept a TCP connection (in parallel, bounded by
    ``timeout_s``): whether a member listens yet, not whether it answers."""
    results = await asyncio.gather(*(_answers(e, timeout_s) for e in endpoints))
    return sum(results)


async def keep_near_etcd_leader(store: Store, interval_s: float) -> None:
    """Point the store at etcd's leader now and every ``interval_s`` (etcd's leader moves).

    Every replica does it, not only the coordinator leader: a successor's first commit
    (the one a hand-over waits for) then needs no lookup.
    """
    while True:
        with contextlib.suppress(StoreError):
            await store.prefer_etcd_leader()
        await asyncio.sleep(interval_s)
