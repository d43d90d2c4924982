"""Is this replica's view fresh? A periodic linearizable read says.

The probe reads the current revision through the etcd leader (so it also
answers "do I reach an etcd leader", which the clients do not ask with
``hasleader`` on unary calls), asks the watch for progress, and compares.
A replica that cannot probe, or lags too far, is stale and says so to its
sidecars, which then move to another replica.

A probe that timed out while this replica's own event loop was late (a fan-out to
many streams on a starved core) proves nothing about etcd: the answer may be sitting
unread. It is not counted, and the probe is repeated at once; the benefit of the doubt
is bounded (``DOUBT_FACTOR`` x ``stale_after_ms`` since the last good read), because a
replica blocked that long is not fit to serve either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from coordinator.store.errors import StoreError, StoreTimeout
from coordinator.store.mirror import Mirror
from coordinator.store.port import Store
from failover.telemetry.loop_lag import LoopLag

log = logging.getLogger(__name__)

DOUBT_FACTOR = 3


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
        self,
        store: Store,
        mirror: Mirror,
        *,
        interval_ms: int,
        max_lag_revisions: int,
        stale_after_ms: int,
        loop_lag: LoopLag | None = None,
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
        self._lag = loop_lag
        self.uncounted = 0  # probes that timed out while our own loop lagged (not held against etcd)
        self._retry_now = False

    async def probe_once(self) -> None:
        st = self.state
        bound = max(self._interval, 0.5)
        started = time.monotonic()
        self._retry_now = False
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
            now = time.monotonic()
            if self._our_own_lag(exc, started, now, bound):
                self._retry_now = True
                return
            st.applied_revision = self._mirror.revision
            st.lag_revisions = -1
            self._set(*self.failure(exc, now, bound))

    def _our_own_lag(self, exc: BaseException, started: float, now: float, bound_s: float) -> bool:
        """True when a timed-out probe is explained by this process's own late event loop
        (and the doubt is still within its bound): not counted, asked again at once."""
        if self._lag is None or not isinstance(exc, (TimeoutError, StoreTimeout)):
            return False
        last_ok = self.state.last_ok_monotonic
        if last_ok == 0.0 or now - last_ok > DOUBT_FACTOR * self._stale_after:
            return False
        worst = self._lag.worst_since(started, now)
        if worst < bound_s / 4:
            return False
        self.uncounted += 1
        log.info(
            "freshness probe timed out while this replica's event loop was %.0f ms late: "
            "not held against etcd, probing again",
            worst * 1000,
        )
        return True

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
            await asyncio.sleep(0.0 if self._retry_now else self._interval)
