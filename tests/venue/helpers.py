"""Shared helpers of the venue tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from failover.venue.config import VenueConfig
from failover.venue.server import Venue
from failover.venue.testclient import VenueClient

MakeVenue = Callable[..., Awaitable[Venue]]
Connect = Callable[..., Awaitable[VenueClient]]


def venue_config(**options: object) -> VenueConfig:
    """Two gateways, primary and backup, and the control server, all on 127.0.0.1 port 0."""
    return VenueConfig.model_validate(
        {
            "name": "test",
            "gateways": [
                {"name": "primary", "listen": "127.0.0.1:0"},
                {"name": "backup", "listen": "127.0.0.1:0"},
            ],
            "control_listen": "127.0.0.1:0",
            **options,
        }
    )
