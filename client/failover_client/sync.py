"""The same library for plain synchronous code: a private event loop in a thread.

with SyncSidecar("/tmp/failover-sidecar-h1.sock", "s1") as sc:
    outcome = sc.send("cme-orders", '{"sym":"ESZ6","qty":1}')
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from failover.v1 import sidecar_pb2 as spb
from failover_client.api import Sidecar

T = TypeVar("T")


class SyncSidecar:
    """Blocking wrapper around :class:`failover_client.api.Sidecar`; each call waits at most ``timeout_s``."""

    def __init__(self, address: str, strategy_id: str, *, timeout_s: float = 30.0) -> None:
        self._timeout = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="failover-client", daemon=True)
        self._thread.start()
        self._sc: Sidecar = self._call(Sidecar.connect(address, strategy_id))

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self._timeout)

    def send(
        self, group: str, payload: bytes | str, *, msg_id: int | None = None, cancel_of: int | None = None
    ) -> spb.Outcome:
        """The message's one outcome; IN_DOUBT, with its id, when none came within ``timeout_s``.

        Never an exception for a message that may have been sent: the caller must be able
        to ask ``resolve_in_doubt`` about it instead of retrying blindly (a retry of a
        message that did reach the venue is booked twice).
        """

        async def submit() -> tuple[int, asyncio.Future[spb.Outcome]]:
            return self._sc.submit(group, payload, msg_id=msg_id, cancel_of=cancel_of)

        mid, fut = self._call(submit())

        async def outcome() -> spb.Outcome:
            try:
                async with asyncio.timeout(self._timeout):
                    return await asyncio.shield(fut)
            except TimeoutError:
                return spb.Outcome(
                    client_msg_id=mid,
                    kind=spb.OUTCOME_KIND_IN_DOUBT,
                    reason=f"no outcome within {self._timeout:g} s (timeout_s): it may have been sent; "
                    "ask resolve_in_doubt",
                )

        # Bounded inside; the margin only guards against this client's own loop thread stalling.
        return asyncio.run_coroutine_threadsafe(outcome(), self._loop).result(self._timeout + 5)

    def route(self, group: str) -> spb.Route:
        return self._call(self._sc.route(group))

    def resolve_in_doubt(self, group: str, msg_ids: list[int]) -> list[spb.Resolution]:
        return self._call(self._sc.resolve_in_doubt(group, msg_ids))

    def next_event(self, timeout_s: float | None = None) -> spb.VenueEvent | None:
        """The next venue event (fill, unsolicited cancel) for this strategy, or None on timeout."""

        async def get() -> spb.VenueEvent | None:
            try:
                async with asyncio.timeout(timeout_s):
                    return await self._sc.events.get()
            except TimeoutError:
                return None

        return self._call(get())

    def close(self) -> None:
        try:
            self._call(self._sc.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> SyncSidecar:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
