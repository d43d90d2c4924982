"""Is this replica's view fresh? A periodic linearizable read says.

The probe reads the current revision through the etcd leader (so it also
answers "do I reach an etcd leader", which the clients do not ask with
``hasleader`` on unary calls), asks the watch for progress, and compares.
A replica that cannot probe, or lags too far, is stale and says so to its
sidecars, which then move to another replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from coordinator.store.errors import StoreError
from coordinator.store.mirror import Mirror
from coordinator.store.port import Store

log = logging.getLogger(__name__)


@dataclass
class FreshnessState:
    applied_revision: int = 0
    lag_revisions: int = -1
    stale: bool = True
    reason: str = "starting"
    last_ok_monotonic: float = 0.0
    # When this replica last became stale (0.0: never since it started): health
    # reports older than this do not pass a guard rail.
    stale_since_monotonic: float = 0.0


class FreshnessProbe:
    def __init__(
        self, store: Store, mirror: Mirror, *, interval_ms: int, max_lag_revisions: int, stale_after_ms: int
    ) -> None:
        self._store = store
        self._mirror = mirror
        self._interval = interval_ms / 1000.0
        self._max_lag = max_lag_revisions
        self._stale_after = stale_after_ms / 1000.0
        self.state = FreshnessState()
        self._started = time.monotonic()
        self._behind_since: float | None = None
        self.watch_resets = 0

    async def probe_once(self) -> None:
        st = self.state
        bound = max(self._interval, 0.5)
        try:
            applied_before = self._mirror.revision
            async with asyncio.timeout(bound):
                lin = await self._store.current_revision()
            self._mirror.check_revision(lin, applied_before)
            self._mirror.request_progress()
            await self._mirror.wait_revision(lin, self._interval / 2)
            st.applied_revision = self._mirror.progress
            st.lag_revisions = max(0, lin - self._mirror.progress)
            st.last_ok_monotonic = time.monotonic()
            self._check_progress(lin)
            if not self._mirror.ready.is_set():
                self._set(True, "initial list not done")
            elif st.lag_revisions > self._max_lag:
                self._set(True, f"watch lags {st.lag_revisions} revisions behind etcd")
            else:
                self._set(False, "")
        except (StoreError, TimeoutError) as exc:
            st.applied_revision = self._mirror.revision
            st.lag_revisions = -1
            self._set(*self.failure(exc, time.monotonic(), bound))

    def failure(self, exc: BaseException, now: float, bound_s: float) -> tuple[bool, str]:
        """Whether a failed probe makes the replica stale, and why in words (never an empty
        cause; the age counts from this replica's start, not the machine's boot)."""
        st = self.state
        cause = str(exc) or f"no answer within {bound_s:.1f}s"
        if st.last_ok_monotonic == 0.0:
            return True, f"no linearizable read since start ({now - self._started:.1f}s): {cause}"
        age = now - st.last_ok_monotonic
        if age > self._stale_after:
            return True, f"no linearizable read for {age:.1f}s: {cause}"
        return st.stale, st.reason

    def _check_progress(self, lin: int) -> None:
        """A watch that stays behind a fresh read, even after a progress request, is stuck:
        list again on a new watch rather than wait for the lag threshold."""
        if self._mirror.progress >= lin or not self._mirror.ready.is_set():
            self._behind_since = None
            return
        now = time.monotonic()
        if self._behind_since is None:
            self._behind_since = now
        elif now - self._behind_since > self._stale_after / 2:
            log.warning(
                "watch stuck at revision %d while etcd is at %d for %.1fs: listing again",
                self._mirror.revision,
                lin,
                now - self._behind_since,
            )
            self._behind_since = None
            self.watch_resets += 1
            self._mirror.force_relist()

    def _set(self, stale: bool, reason: str) -> None:
        if stale and not self.state.stale:
            self.state.stale_since_monotonic = time.monotonic()
        if stale != self.state.stale:
            log.log(
                logging.WARNING if stale else logging.INFO,
                "replica is now %s%s",
                "STALE" if stale else "fresh",
                f": {reason}" if reason else "",
            )
        self.state.stale = stale
        self.state.reason = reason

    async def run(self) -> None:
        while True:
            try:
                await self.probe_once()
            except Exception:
                log.exception("freshness probe failed unexpectedly")
            await asyncio.sleep(self._interval)
