"""The sidecar that runs on every trading host, and the library strategies import.

from client import Sidecar, OutcomeKind   # asyncio
from client import SyncSidecar            # plain synchronous code
"""

from client.api import OutcomeKind, Sidecar
from client.sync import SyncSidecar

__all__ = ["OutcomeKind", "Sidecar", "SyncSidecar"]
