"""The sidecar that runs on every trading host, and the library strategies import.

from client import Sidecar, OutcomeKind
"""

from client.api import OutcomeKind, Sidecar

__all__ = ["OutcomeKind", "Sidecar"]
