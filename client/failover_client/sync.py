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
        return self._call(self._sc.send(group, payload, msg_id=msg_id, cancel_of=cancel_of))

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
