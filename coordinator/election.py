"""Leader election on an etcd lease.

Leadership is the election key, owned by our lease and created only if
absent; its mod revision is the fencing token. A follower also registers as
a candidate (``election/candidates/<id>``, on its own lease), so a leader that
stops gracefully hands the key over in one transaction: it puts the key on
the successor's lease, which is leader from that revision on, with no
revoke, watch delivery and campaign in between (the new write gives the key a
new mod revision, so the old term's writes are fenced out). A term ends when the store
says our lease is gone, when the lease keeper's local deadline passes with no
renewal answered (before etcd could expire the lease and elect a successor),
or when the key no longer carries our token (as seen by the mirror once it has
caught up). An etcd outage alone does not end a term:
nothing can commit meanwhile, and every commit is fenced anyway. Whenever a
term ends, for whatever reason, its lease is revoked, so followers take over
in milliseconds rather than after the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from coordinator.commit import Leadership, NotLeader, fence
from coordinator.keys import Keys
from coordinator.store.errors import NoSpace, StoreError, StoreUnavailable
from coordinator.store.port import LeaseKeeper, Store
from coordinator.store.types import Compare, Get, Lease, Put
from coordinator.view import Candidate, ClusterView
from failover.aio import run_until_failure, shielded_wait, wait_any
from failover.log_limit import RETRYING

log = logging.getLogger(__name__)

LeaderWork = Callable[[Leadership], Coroutine[Any, Any, None]]
ANSWER_S = 0.05  # how long a stopping leader waits for a successor to say it serves
REPEAT_LOG_S = 30.0  # a lease grant or campaign failing for the same cause is logged again after this


def _holder(replica_id: str, address: str) -> bytes:
    """The value of the election key and of a candidate key: who, and where to reach it."""
    return json.dumps({"id": replica_id, "address": address}).encode()


class LeadershipLost(Exception):
    pass


class Election:
    def __init__(
        self,
        store: Store,
        keys: Keys,
        view: ClusterView,
        *,
        replica_id: str,
        address: str,
        ttl_s: int,
        retry_s: float = 0.2,
        successor_ok: Callable[[Candidate], bool] = lambda _c: True,
        answers: Callable[[Candidate], Coroutine[Any, Any, bool]] | None = None,
    ) -> None:
        self._store = store
        self._keys = keys
        self._view = view
        self._id = replica_id
        self._address = address
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self.leadership: Leadership | None = None
        self.terms = 0
        self._lease: Lease | None = None  # the lease we campaign (or lead) with now
        self._resigned = False
        self._given_up: int | None = None  # the lease resign revoked (not revoked a second time)
        self._successor_ok = successor_ok  # e.g. its peer channel is connected
        self._answers = answers  # asks a candidate whether it serves (None: not asked)
        self._registered: int | None = None  # the lease our candidate key is on
        self.handed_to = ""  # the successor the last resign handed the key to ("" if none)
        self._failing: dict[str, tuple[str, float]] = {}  # step -> its last logged failure, when

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None

    async def run(self, work: LeaderWork) -> None:
        """Campaign forever; run ``work`` during each term. Cancel to resign."""
        unrevoked: Lease | None = None
        while not self._resigned:
            if unrevoked is not None:
                # A lease given up while etcd did not answer (its local deadline passed):
                # revoke it as soon as etcd answers, so nobody waits for etcd to expire
                # a lease it may have refreshed, and only then campaign again.
                if not await self._revoke(unrevoked):
                    await asyncio.sleep(self._retry_s)
                    continue
                unrevoked = None
            try:
                lease = await self._store.grant(self._ttl_s)
            except StoreError as exc:
                self._failed("cannot grant a lease", exc)
                await asyncio.sleep(self._retry_s)
                continue
            self._failing.pop("cannot grant a lease", None)
            self._lease = lease
            try:
                async with self._store.keep_alive(lease) as keeper:
                    ended = await self._campaign(lease, keeper, work)
            finally:
                self._lease = None
                # Once is enough: a second revoke would be one more etcd write at the very
                # moment the followers campaign.
                if lease.id != self._given_up and not await self._revoke(lease):
                    unrevoked = lease
            if ended and not self._resigned:
                # Give a healthy follower the first chance after a failed term.
                await asyncio.sleep(self._retry_s)

    async def resign(self, stand_down: Callable[[], Awaitable[None]] | None = None) -> None:
        """Give the role up now, before anything else stops: pick the successor (its
        health check, at most ``ANSWER_S``) while still leading, so a request that reaches
        us meanwhile is decided here rather than held for the next term; then
        ``stand_down`` (the caller stops deciding and lets a commit in flight land, so no
        write of ours races the hand-over and the successor's view holds every decision
        of this term); then stop calling ourselves leader, hand the election key to the
        successor (one transaction: it leads from that revision) and revoke our lease
        (with no hand-over, the key goes with it and every follower's watch fires),
        without waiting for the term's work to unwind. Anything the term still tries to
        commit is refused by etcd (every write is fenced). Cancel ``run`` afterwards; it
        does not revoke the same lease again.
        """
        self._resigned = True  # no new campaign after this term, even if a cancel gets lost
        lease = self._lease
        leadership = self.leadership if lease is not None else None
        cand = await self._first_to_answer(self.successors()) if leadership is not None else None
        if stand_down is not None:
            await stand_down()
        if lease is None:
            return
        self.leadership = None
        if leadership is not None and cand is not None:
            await self._hand_over(leadership, cand)
        if await self._revoke(lease):
            self._given_up = lease.id

    def successors(self) -> list[Candidate]:
        """Registered candidates other than us that may take the key, longest registered first."""
        others = [c for rid, c in self._view.candidates.items() if rid != self._id]
        return sorted((c for c in others if self._successor_ok(c)), key=lambda c: c.mod_revision)

    async def _hand_over(self, leadership: Leadership, cand: Candidate) -> bool:
        """Put the election key on the successor's lease in one fenced transaction (bounded);
        False when it did not apply (the revoke that follows still frees the key for a
        campaign). The compare on its candidate key refuses a successor that re-registered
        or went away since it was chosen."""
        k = self._keys
        value = _holder(cand.replica_id, cand.address)
        compares = [fence(k, leadership), Compare.mod(k.candidate(cand.replica_id), cand.mod_revision)]
        task = asyncio.ensure_future(self._store.txn(compares, [Put(k.leader, value, cand.lease)]))
        try:
            result = await shielded_wait(task, 1.0)
        except Exception as exc:
            log.info("handing the leadership to %s failed: %s", cand.replica_id, exc)
            return False
        if result.succeeded:
            self.handed_to = cand.replica_id
            log.info("handed the leadership to %s (its token %d)", cand.replica_id, result.revision)
            return True
        log.info("handing the leadership to %s refused: it or we changed meanwhile", cand.replica_id)
        return False

    async def _first_to_answer(self, candidates: list[Candidate]) -> Candidate | None:
        """The candidate that first says it serves, asked all at once (bounded by
        ``ANSWER_S``): a follower that is paused or stopping keeps a connected channel but
        would leave the key on its lease until etcd expires it, while the fastest to answer
        is also the least busy."""
        if self._answers is None or not candidates:
            return candidates[0] if candidates else None
        answers = self._answers

        async def ask(c: Candidate) -> tuple[Candidate, bool]:
            try:
                return c, await answers(c)
            except Exception:
                return c, False

        asks = [asyncio.ensure_future(ask(c)) for c in candidates]
        try:
            async with asyncio.timeout(ANSWER_S):
                for next_answer in asyncio.as_completed(asks):
                    cand, serves = await next_answer
                    if serves:
                        return cand
        except TimeoutError:
            pass
        finally:
            for t in asks:
                t.cancel()
        log.info("no successor answered within %.0f ms: revoking instead", ANSWER_S * 1000)
        return None

    async def _revoke(self, lease: Lease) -> bool:
        """Revoke (shielded: resigning must finish even while we are being cancelled).

        False when etcd did not answer (worth trying again); True otherwise.
        """
        task = asyncio.ensure_future(self._store.revoke(lease.id))
        try:
            await shielded_wait(task, 2.0)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 2.0)
            raise
        except (StoreUnavailable, TimeoutError) as exc:
            log.info("revoking lease %x failed: %s (will retry)", lease.id, exc, extra=RETRYING)
            return False
        except Exception as exc:  # the TTL will expire it
            log.info("revoking lease %x failed: %s", lease.id, exc)
        return True

    async def _acquire(self, lease: Lease) -> tuple[int | None, int]:
        value = _holder(self._id, self._address)
        k = self._keys.leader
        result = await self._store.txn([Compare.absent(k)], [Put(k, value, lease.id)], [Get(k)])
        if result.succeeded:
            return result.revision, result.revision
        holder = result.gets[0] if result.gets else None
        if holder is not None and holder.lease == lease.id:
            return holder.mod_revision, result.revision
        return None, result.revision

    def _handed_to_us(self, lease: Lease) -> int | None:
        """The token of a term a stopping leader handed to us (the key is on our lease)."""
        lk = self._view.leader
        return lk.token if lk is not None and lk.lease == lease.id else None

    async def _register(self, lease: Lease) -> None:
        """Our candidate key on this lease (once per lease), so a stopping leader can hand
        over to us. Best effort: without it, we campaign as usual."""
        if self._registered == lease.id:
            return
        value = _holder(self._id, self._address)
        try:
            await self._store.put(self._keys.candidate(self._id), value, lease.id)
            self._registered = lease.id
        except StoreError as exc:
            log.info("cannot register as a candidate (%s): campaigning without it", exc)

    async def _campaign(self, lease: Lease, keeper: LeaseKeeper, work: LeaderWork) -> bool:
        """Returns True when a term ended (the lease must be replaced)."""
        while not keeper.lost:
            token = self._handed_to_us(lease)
            if token is None:
                try:
                    token, revision = await self._acquire(lease)
                except StoreError as exc:
                    self._failed("campaign failed", exc)
                    held = self._view.leader
                    if isinstance(exc, NoSpace) and held is not None and held.lease != lease.id:
                        # etcd checks its quota before it compares, so the refusal says
                        # nothing about the key: while a leader holds it, wait on the view
                        # as a "not vacant" answer would (re-checked every second).
                        await self._wait_vacancy(keeper, self._view.revision, lease)
                    else:
                        await asyncio.sleep(self._retry_s)
                    continue
                self._failing.pop("campaign failed", None)
            if token is None:
                await self._register(lease)
                await self._wait_vacancy(keeper, revision, lease)
                continue
            leadership = Leadership(self._id, self._address, token, lease)
            await self._term(leadership, keeper, work)
            return True
        return False

    def _failed(self, what: str, exc: StoreError) -> None:
        """Log a failed step once per cause, and again only every ``REPEAT_LOG_S`` while
        the same refusal repeats (a NOSPACE alarm or an etcd outage can last an incident)."""
        text, now = str(exc), time.monotonic()
        last_text, last_at = self._failing.get(what, ("", 0.0))
        if text != last_text or now - last_at >= REPEAT_LOG_S:
            log.info("%s (%s): retrying", what, exc)
            self._failing[what] = (text, now)

    async def _term(self, leadership: Leadership, keeper: LeaseKeeper, work: LeaderWork) -> None:
        self.leadership = leadership
        self.terms += 1
        log.info("elected leader: %s (fencing token %d)", self._id, leadership.token)
        try:
            # Not a TaskGroup: it cancels the work once, and work that lost that cancel
            # kept the term open after the watchdog ended it; the replica never stood again.
            await run_until_failure(
                {"leader-work": work(leadership), "leader-watchdog": self._watchdog(leadership, keeper)}
            )
        except (LeadershipLost, NotLeader) as exc:
            log.warning("leadership lost: %s", exc)
        except Exception as exc:
            log.error("leader work failed: %r; resigning", exc, exc_info=exc)
        finally:
            self.leadership = None

    async def _watchdog(self, leadership: Leadership, keeper: LeaseKeeper) -> None:
        """Raises LeadershipLost when the term is over; leadership is cleared at once.

        Clearing it here, not after the work has unwound, means the replica stops
        calling itself leader at the keeper's local deadline, before etcd can
        expire the lease and a successor can be elected.
        """
        while True:
            v = self._view
            why = ""
            if keeper.lost:
                why = "the lease is lost (etcd said so, or no renewal answered before its local deadline)"
            elif v.revision >= leadership.token and (v.leader is None or v.leader.token != leadership.token):
                why = "the election key is gone or belongs to a newer term"
            if why:
                self.leadership = None
                if self._resigned:
                    return  # our own resign: the work settles, then the stopper cancels it
                raise LeadershipLost(why)
            await wait_any(keeper.wait_lost(), v.changed.wait())

    async def _wait_vacancy(self, keeper: LeaseKeeper, seen_revision: int, lease: Lease) -> None:
        """Until the view (caught up to what we saw) shows no leader, or the key handed to
        us, or our lease is gone."""
        while not keeper.lost:
            v = self._view
            if (v.revision >= seen_revision and v.leader is None) or self._handed_to_us(lease) is not None:
                return
            if not await wait_any(keeper.wait_lost(), v.changed.wait(), timeout=1.0):
                return  # re-check with a fresh transaction now and then
