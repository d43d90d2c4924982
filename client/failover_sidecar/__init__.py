"""The sidecar's data plane: effective route, outcome ledger and warm path sessions.

Import the submodules you need (``route`` and ``ledger`` are pure; ``path`` uses
asyncio); this package itself imports nothing.
"""
