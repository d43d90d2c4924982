"""Restore detection from the epochs sidecars hold (coordinator/core/restore_rule.py).

A replica started after etcd was put back to an older copy sees a consistent,
older state and nothing to compare it with. The first sidecar whose hello holds a
decision etcd no longer has tells it: the replica then blocks decisions until
``failover era bump``, as when its mirror detects the restore itself. Claims no
newer than the view are dropped without a read; the others are checked in one
batch against linearizable reads made after the hello arrived.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping

from coordinator.core.restore_rule import EtcdNow, held_epoch_evidence, worth_checking
from coordinator.keys import Keys
from coordinator.store.errors import StoreError
from coordinator.store.mirror import Mirror
from coordinator.store.port import Store
from coordinator.view import ClusterView
from failover.model.spec import Epoch

log = logging.getLogger(__name__)

# How long the view may take to reach the revision read, before the check is retried.
VIEW_CATCH_UP_S = 5.0


class HeldEpochCheck:
    def __init__(
        self,
        store: Store,
        keys: Keys,
        view: ClusterView,
        mirror: Mirror,
        on_restore: Callable[[str], None],
        *,
        retry_s: float = 0.5,
    ) -> None:
        self._store = store
        self._keys = keys
        self._view = view
        self._mirror = mirror
        self._on_restore = on_restore
        self._retry_s = retry_s
        self._pending: dict[str, tuple[Epoch, str]] = {}  # group -> (highest epoch claimed, host)
        self._wake = asyncio.Event()
        self.reads = 0  # checks that read etcd (claims ahead of the view)

    def claim(self, host: str, held: Mapping[str, Epoch]) -> None:
        """A hello's held epochs; those ahead of the view are checked in the background."""
        if self._view.restore.detected:
            return
        for group, epoch in held.items():
            if not worth_checking(epoch, self._view.epoch_of(group), self._view.era.value):
                continue
            had = self._pending.get(group)
            if had is None or epoch > had[0]:
                self._pending[group] = (epoch, host)
        if self._pending:
            self._wake.set()

    async def run(self) -> None:
        """Until cancelled; a store error retries the same claims later."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._mirror.ready.wait()
            claims, self._pending = self._pending, {}
            try:
                done = await self._check(claims)
            except StoreError as exc:
                log.info("checking the epochs sidecars hold failed (%s): retrying", exc)
                done = False
            if not done:
                for group, (epoch, host) in claims.items():
                    had = self._pending.get(group)
                    if had is None or epoch > had[0]:
                        self._pending[group] = (epoch, host)
                await asyncio.sleep(self._retry_s)
                self._wake.set()

    async def _check(self, claims: dict[str, tuple[Epoch, str]]) -> bool:
        """Mark the restore on the first evidence; False to retry (the view lags etcd)."""
        if self._view.restore.detected or not claims:
            return True
        self.reads += 1
        era_kv, revision = await self._store.get(self._keys.era)
        era = _era(era_kv.value if era_kv is not None else None)
        for group, (held, host) in sorted(claims.items()):
            if held.era < era:
                continue
            route, revision = await self._store.get(self._keys.route(group))
            now = EtcdNow(era, route.mod_revision if route is not None else None)
            detail = held_epoch_evidence(group, held, now)
            if not detail:
                continue
            # The block lasts until the view sees an era above the one it holds now:
            # that must be etcd's era as read, not an older one the view still shows.
            await self._mirror.wait_revision(revision, VIEW_CATCH_UP_S)
            if self._view.era.value < era:
                return False
            if self._view.era.value == era:
                self._on_restore(f"sidecar {host} holds {detail}")
            return True
        return True


def _era(value: bytes | None) -> int:
    if value is None:
        return 0
    try:
        return int(json.loads(value)["era"])
    except (ValueError, KeyError, TypeError):
        return 0
