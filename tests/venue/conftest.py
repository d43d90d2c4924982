"""Fixtures: an in-process venue with two gateways on 127.0.0.1 port 0, and clients that close themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from failover.venue.server import Venue
from failover.venue.testclient import VenueClient

from .helpers import Connect, MakeVenue, venue_config


@pytest.fixture
async def make_venue() -> AsyncIterator[MakeVenue]:
    venues: list[Venue] = []

    async def make(**options: object) -> Venue:
        venue = Venue(venue_config(**options))
        await venue.start()
        venues.append(venue)
        return venue

    yield make
    for venue in venues:
        await venue.stop()


@pytest.fixture
async def venue(make_venue: MakeVenue) -> Venue:
    return await make_venue()


@pytest.fixture
async def connect(venue: Venue) -> AsyncIterator[Connect]:
    """connect(gateway, sender=None): a client, logged on when a sender is given."""
    clients: list[VenueClient] = []

    async def _connect(
        gateway: str = "primary", sender: str | None = None, *, on: Venue | None = None
    ) -> VenueClient:
        target = on or venue
        client = await VenueClient.connect(target.gateway_addresses[gateway])
        clients.append(client)
        if sender is not None:
            reply = await client.logon(sender)
            assert reply["t"] == "logon_ack", reply
        return client

    yield _connect
    for client in clients:
        await client.close()
