"""This replica's membership key: lease-owned, so it vanishes when we die."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

from coordinator.keys import Keys
from coordinator.store.errors import StoreError
from coordinator.store.port import Store
from failover.aio import shielded_wait

log = logging.getLogger(__name__)


async def register_forever(
    store: Store,
    keys: Keys,
    replica_id: str,
    address: str,
    ttl_s: int,
    again: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Keep members/<id> present while this process lives; revoke on cancel.

    ``again`` runs before each registration after the first (our lease was lost: a pause,
    an etcd outage) and raises to stop us: another replica may have taken our id meanwhile.
    """
    value = json.dumps({"id": replica_id, "address": address}).encode()
    first = True
    while True:
        if not first and again is not None:
            await again()
        first = False
        try:
            lease = await store.grant(ttl_s)
        except StoreError as exc:
            log.debug("member lease grant failed: %s", exc)
            await asyncio.sleep(0.2)
            continue
        try:
            async with store.keep_alive(lease) as keeper:
                while not keeper.lost:
                    try:
                        await store.put(keys.member(replica_id), value, lease=lease.id)
                        await keeper.wait_lost()
                    except StoreError as exc:
                        log.debug("member key put failed: %s", exc)
                        await asyncio.sleep(0.2)
        finally:
            # A cancel that arrives while revoking (etcd gone: the keeper gave the lease up
            # and the revoke waits its full bound) is passed on, never swallowed: a
            # TaskGroup cancels this task only once, and a swallowed cancel would campaign
            # for a member lease forever and keep the replica from stopping.
            with contextlib.suppress(StoreError, TimeoutError):
                await shielded_wait(asyncio.ensure_future(store.revoke(lease.id)), 1.0)
