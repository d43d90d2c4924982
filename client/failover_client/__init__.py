"""The library strategies import to talk to the sidecar on their host.

from failover_client import Sidecar, OutcomeKind   # asyncio
from failover_client import SyncSidecar            # plain synchronous code
from failover_client import FramedRelay            # asyncio, the framed socket's relay
"""

from failover_client.api import OutcomeKind, Sidecar
from failover_client.framed import FramedRelay
from failover_client.sync import SyncSidecar

__all__ = ["FramedRelay", "OutcomeKind", "Sidecar", "SyncSidecar"]
