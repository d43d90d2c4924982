"""An in-memory copy of every key under a prefix: list, then a resumable watch.

The watch is re-established here, from the last applied revision + 1, when
its stream breaks (member killed, no leader); a compaction forces a new list.

A listing is made with a watch already open from etcd's revision at that moment,
not before the watch: etcd sends a watch opened from a revision it has passed
nothing until a loop of its own (every 100 ms) has caught it up, so a replica
that listed while others wrote saw their next writes up to 100 ms late (measured:
a hand-over seen 35-85 ms after every other replica saw it). Events the listing
already holds (at or below its revision) are skipped.

etcd restored from an older copy is detected two ways (the mirror then lists
again and tells its listener):

* a revision lower than one already applied (a read, a watch batch, a list);
* after a watch break, and on every re-list, a linearizable read of the prefix
  showing a key whose mod revision is lower than the one held (a key's mod
  revision only grows in one history). This catches a restore whose revision
  was already carried past the applied one (restored leases expiring, new
  campaigns) before the replica looked again, as long as a key it holds was
  written in the lost range (a lost decision always is: its route key).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from coordinator.store.errors import Compacted, StoreError
from coordinator.store.port import Store, WatchStream
from coordinator.store.types import KV, EventKind
from failover.aio import cancel_and_wait
from failover.log_limit import RETRYING

log = logging.getLogger(__name__)

# Called after each applied change: (changed keys, revision, whether it was a full re-list).
ChangeListener = Callable[[set[str], int, bool], None]
# Called when etcd was restored from an older copy, with the evidence (one line).
RestoreListener = Callable[[str], None]


class Mirror:
    def __init__(
        self,
        store: Store,
        prefix: str,
        on_change: ChangeListener,
        on_restore: RestoreListener | None = None,
        *,
        retry_s: float = 0.1,
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._on_change = on_change
        self._on_restore = on_restore
        self._retry_s = retry_s
        self.data: dict[str, KV] = {}
        # Last revision whose events (or list) are applied: watches resume after it.
        self.revision = 0
        # How far etcd said this watch is synced (progress notifications): for freshness only.
        self.progress = 0
        self.ready = asyncio.Event()
        self.connected = False
        self.watch_restarts = 0
        self._stream: WatchStream | None = None
        self._relist = asyncio.Event()
        self._advanced = asyncio.Event()
        self._need_list = True
        self._listed_at = 0  # the open watch started before a listing at this revision

    async def wait_revision(self, revision: int, timeout: float) -> bool:
        """Until the mirror has applied ``revision`` (True) or the timeout passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.progress < revision:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                # Not asyncio.wait_for: on 3.11 it drops a cancel that arrives in the step
                # the event is set, and the freshness probe's loop then never ends.
                async with asyncio.timeout(remaining):
                    await self._advanced.wait()
            except TimeoutError:
                return False
        return True

    def _notify(self, changed: set[str], full: bool) -> None:
        self._on_change(changed, self.revision, full)
        self._advanced.set()
        self._advanced = asyncio.Event()

    def request_progress(self) -> None:
        """Ask the watch for the current revision, so an idle prefix still advances."""
        if self._stream is not None:
            self._stream.request_progress()

    def force_relist(self) -> None:
        """Drop the current watch, list again, and watch anew (a watch that stopped progressing)."""
        self._relist.set()

    def check_revision(self, store_revision: int, applied_before: int) -> None:
        """Feed a linearizable revision read after ``applied_before`` was applied.

        A linearizable read issued after we applied revision R must return at
        least R; less means the store went back in time (a restore).
        """
        if self.ready.is_set() and store_revision < applied_before:
            self._restored(_went_back(applied_before, store_revision))
            self._relist.set()

    def _restored(self, detail: str) -> None:
        log.warning("etcd restored from an older copy: %s", detail)
        if self._on_restore is not None:
            self._on_restore(detail)

    def _evidence(self, kvs: list[KV], revision: int) -> str:
        """Why a linearizable listing at ``revision`` cannot follow the held state ("" if it can)."""
        if not self.ready.is_set():
            return ""
        if revision < self.revision:
            return _went_back(self.revision, revision)
        return rewound_keys(self.data, kvs, self._prefix)

    async def _list(self) -> None:
        kvs, revision = await self._store.get_prefix(self._prefix)
        if evidence := self._evidence(kvs, revision):
            self._restored(evidence)
        self._replace(kvs, revision)

    async def _check_after_break(self) -> None:
        """Before resuming a broken watch: a listing that shows a restore replaces the view.

        Resuming alone would accept a restored store silently once its revision
        is above the one applied (a watch from a future revision is valid).
        """
        kvs, revision = await self._store.get_prefix(self._prefix)
        if evidence := self._evidence(kvs, revision):
            self._restored(evidence)
            self._replace(kvs, revision)

    def _replace(self, kvs: list[KV], revision: int) -> None:
        changed = set(self.data) | {kv.key for kv in kvs}
        self.data = {kv.key: kv for kv in kvs}
        self.revision = revision
        self.progress = revision
        self._relist.clear()
        self.ready.set()
        self._notify(changed, True)

    async def _watch(self, fresh: bool) -> None:
        """Apply watch batches until the stream fails or a re-list is requested.

        ``fresh``: list first, under a watch opened from etcd's current revision.
        """
        async with self._store.watch(self._prefix, 0 if fresh else self.revision + 1) as stream:
            if fresh:
                await stream.started()
                await self._list()
                self._need_list = False
                self._listed_at = self.revision
            else:
                self._listed_at = 0
            self._stream = stream
            self.connected = True
            consumer = asyncio.ensure_future(self._consume(stream))
            relist = asyncio.ensure_future(self._relist.wait())
            try:
                await asyncio.wait({consumer, relist}, return_when=asyncio.FIRST_COMPLETED)
                if consumer.done():
                    consumer.result()  # re-raise the stream's StoreError
            finally:
                await cancel_and_wait((consumer, relist))
                self._stream = None
                self.connected = False

    async def _consume(self, stream: WatchStream) -> None:
        async for batch in stream:
            if self._relist.is_set():
                return
            if not batch.events:
                # A progress notification. etcd 3.4 can send one out of step with the
                # events (etcd-io/etcd#15220): it only tells freshness how far etcd is;
                # resuming always starts after the last *event* applied, so nothing is skipped.
                if batch.revision > self.progress:
                    self.progress = batch.revision
                    self._advanced.set()
                    self._advanced = asyncio.Event()
                continue
            events = batch.events
            if self._listed_at:
                if batch.revision <= self._listed_at:
                    continue  # written before the listing: it holds them
                events = tuple(ev for ev in events if ev.kv.mod_revision > self._listed_at)
                if not events:
                    self.revision = max(self.revision, batch.revision)
                    continue
                self._listed_at = 0  # events come in revision order: every later one is newer
            if batch.revision < self.revision:
                self._restored(_went_back(self.revision, batch.revision))
                self._relist.set()
                return
            changed: set[str] = set()
            for ev in events:
                if ev.kind is EventKind.PUT:
                    self.data[ev.kv.key] = ev.kv
                else:
                    self.data.pop(ev.kv.key, None)
                changed.add(ev.kv.key)
            self.revision = max(self.revision, batch.revision)
            self.progress = max(self.progress, self.revision)
            self._notify(changed, False)

    async def run(self) -> None:
        """Run until cancelled; never raises StoreError."""
        broke = False
        while True:
            try:
                fresh = self._need_list or self._relist.is_set()
                if broke and not fresh:
                    await self._check_after_break()
                broke = False
                await self._watch(fresh)
                # A clean return means a relist was requested.
                self._need_list = True
            except Compacted:
                log.info("watch on %s compacted: listing again", self._prefix)
                self._need_list = True
            except StoreError as exc:
                broke = True
                self.watch_restarts += 1
                log.info(
                    "watch on %s broke (%s): resuming from revision %d",
                    self._prefix,
                    exc,
                    self.revision + 1,
                    extra=RETRYING,
                )
                await asyncio.sleep(self._retry_s)


def _went_back(applied: int, now: int) -> str:
    return f"revision went from {applied} back to {now}"


def rewound_keys(held: dict[str, KV], listed: list[KV], prefix: str = "") -> str:
    """Keys of a later linearizable listing whose mod revision is below the one held.

    A key's mod revision only grows in one etcd history (a delete and re-create
    gets a new, higher one), and what is held was read earlier: a lower one
    means etcd was put back to an older copy. Keys only in one of the two are
    no evidence (written or deleted since). Returns "" or a one-line detail
    naming up to three keys (relative to ``prefix``).
    """
    bad: list[str] = []
    for kv in listed:
        mine = held.get(kv.key)
        if mine is None or kv.mod_revision >= mine.mod_revision:
            continue
        name = kv.key[len(prefix) :] if kv.key.startswith(prefix) else kv.key
        bad.append(f"{name} at mod revision {kv.mod_revision} in etcd, {mine.mod_revision} held")
    if not bad:
        return ""
    more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
    return "older keys in etcd than applied: " + "; ".join(bad[:3]) + more
