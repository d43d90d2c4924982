"""Restore detection from the epochs sidecars hold (coordinator/core/restore_rule.py).

A replica started after etcd was put back to an older copy sees a consistent,
older state and nothing to compare it with. The first sidecar whose hello holds a
decision etcd no longer has tells it: the replica then blocks decisions until
``failover era bump``, as when its mirror detects the restore itself. Claims no
newer than the view are dropped without a read; the others are checked in one
batch against linearizable reads made after the hello arrived. Only an epoch
pushed with a valid proof (coordinator/core/epoch_proof.py) is evidence: any client
can claim a number.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping

from coordinator.core.epoch_proof import verify
from coordinator.core.restore_rule import EtcdNow, held_epoch_evidence, worth_checking
from coordinator.keys import Keys
from coordinator.store.errors import StoreError
from coordinator.store.mirror import Mirror
from coordinator.store.port import Store
from coordinator.view import ClusterView
from failover.log_limit import OUTSIDE_INPUT, RETRYING
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
        # group -> (highest epoch claimed, host, its proof)
        self._pending: dict[str, tuple[Epoch, str, bytes]] = {}
        self._wake = asyncio.Event()
        self.reads = 0  # checks that read etcd (claims ahead of the view)
        self.unproven = 0  # claims ahead of the view without a valid proof: ignored

    def claim(self, host: str, held: Mapping[str, Epoch], proofs: Mapping[str, bytes]) -> None:
        """A hello's held epochs; those ahead of the view are checked in the background."""
        if self._view.restore.detected:
            return
        for group, epoch in held.items():
            if not worth_checking(epoch, self._view.epoch_of(group), self._view.era.value):
                continue
            self._keep(group, epoch, host, proofs.get(group, b""))
        if self._pending:
            self._wake.set()

    def _keep(self, group: str, epoch: Epoch, host: str, proof: bytes) -> None:
        had = self._pending.get(group)
        if had is None or epoch > had[0]:
            self._pending[group] = (epoch, host, proof)

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
                log.info("checking the epochs sidecars hold failed (%s): retrying", exc, extra=RETRYING)
                done = False
            if not done:
                for group, (epoch, host, proof) in claims.items():
                    self._keep(group, epoch, host, proof)
                await asyncio.sleep(self._retry_s)
                self._wake.set()

    async def _check(self, claims: dict[str, tuple[Epoch, str, bytes]]) -> bool:
        """Mark the restore on the first evidence; False to retry (the view lags etcd)."""
        claims = self._proven(claims)
        if self._view.restore.detected or not claims:
            return True
        self.reads += 1
        era_kv, revision = await self._store.get(self._keys.era)
        era = _era(era_kv.value if era_kv is not None else None)
        for group, (held, host, _) in sorted(claims.items()):
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

    def _proven(self, claims: dict[str, tuple[Epoch, str, bytes]]) -> dict[str, tuple[Epoch, str, bytes]]:
        """The claims a replica signed; the others are logged and dropped."""
        key = self._view.proof_key
        out = {}
        for group, (epoch, host, proof) in claims.items():
            if verify(key, group, epoch.era, epoch.revision, proof):
                out[group] = (epoch, host, proof)
                continue
            self.unproven += 1
            log.warning(
                "sidecar %s holds %s at epoch %s %s: not evidence of an etcd restore (ignored)",
                host,
                group,
                epoch,
                "without a proof" if not proof else "with a proof no replica made",
                extra=OUTSIDE_INPUT,
            )
        return out


def _era(value: bytes | None) -> int:
    if value is None:
        return 0
    try:
        return int(json.loads(value)["era"])
    except (ValueError, KeyError, TypeError):
        return 0
