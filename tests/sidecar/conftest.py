"""Fixtures: an in-process venue (two gateways on 127.0.0.1 port 0) and path sessions that stop themselves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from failover_sidecar.liveness import SilenceGuard
from failover_sidecar.path import PathSession
from failover_sidecar.status import Cause, PathState, PathStatus

from failover.venue.config import VenueConfig
from failover.venue.server import Venue
from failover.wire import protocol as p

WAIT_S = 3.0  # bound of every wait for something that should happen within milliseconds


class Recorder:
    """Collects a session's statuses and venue messages; tests await them instead of sleeping."""

    def __init__(self) -> None:
        self.statuses: list[PathStatus] = []
        self.messages: list[p.Message] = []
        self._status_q: asyncio.Queue[PathStatus] = asyncio.Queue()
        self._msg_q: asyncio.Queue[p.Message] = asyncio.Queue()

    def on_state(self, status: PathStatus) -> None:
        self.statuses.append(status)
        self._status_q.put_nowait(status)

    def on_message(self, path: str, msg: p.Message) -> None:
        self.messages.append(msg)
        self._msg_q.put_nowait(msg)

    async def next_status(
        self, state: PathState, cause: Cause | None = None, timeout: float = WAIT_S
    ) -> PathStatus:
        """The next status (from now on) in ``state`` (with ``cause`` if given)."""
        async with asyncio.timeout(timeout):
            while True:
                st = await self._status_q.get()
                if st.state is state and (cause is None or st.cause is cause):
                    return st

    async def next_message(self, t: str, timeout: float = WAIT_S) -> p.Message:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self._msg_q.get()
                if msg["t"] == t:
                    return msg

    def downs(self) -> list[PathStatus]:
        return [s for s in self.statuses if s.state is PathState.DOWN]


async def poll_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """For conditions no event announces (e.g. RTT samples): check every 10 ms, bounded."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - nothing announces these conditions
            await asyncio.sleep(0.01)


MakeSession = Callable[..., Awaitable[tuple[PathSession, Recorder]]]


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    cfg = VenueConfig.model_validate(
        {
            "name": "test",
            "gateways": [
                {"name": "primary", "listen": "127.0.0.1:0"},
                {"name": "backup", "listen": "127.0.0.1:0"},
            ],
        }
    )
    v = Venue(cfg)
    await v.start()
    yield v
    await v.stop()


@pytest.fixture
def guard() -> SilenceGuard:
    return SilenceGuard()


@pytest.fixture
async def make_session(venue: Venue, guard: SilenceGuard) -> AsyncIterator[MakeSession]:
    """make_session(gateway, host_id="host-a", **options): a started session and its recorder."""
    sessions: list[PathSession] = []

    async def make(gateway: str, host_id: str = "host-a", **options: Any) -> tuple[PathSession, Recorder]:
        rec = Recorder()
        options.setdefault("backoff_max_ms", 200)
        endpoint = options.pop("endpoint", venue.gateway_addresses[gateway])  # e.g. through a proxy
        session = PathSession(
            "cme-orders",
            gateway,
            endpoint,
            host_id,
            on_state=rec.on_state,
            on_message=rec.on_message,
            guard=guard,
            **options,
        )
        sessions.append(session)
        await session.start()
        return session, rec

    yield make
    for session in sessions:
        await session.stop()
