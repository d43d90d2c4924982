"""Fault state of one gateway, for the whole gateway and per session (pure: no I/O).

Kept apart from the sockets so the rules (what a fault applies to, what ``recover``
clears, how faults are reported) are plain data that is easy to read and test.
A session here is a sender (host id); its faults apply to every connection of that
sender on the gateway, including connections that log on later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FaultKind(StrEnum):
    RESET = "reset"  # close at once; refuse new connections (gateway) or logons (session) until recover
    STALL = "stall"  # stop reading and writing, sockets stay open
    SLOW = "slow"  # delay every reply by delay_ms
    LOGON_REFUSED = "logon_refused"  # TCP accepted, logons rejected
    RECOVER = "recover"  # clear every fault of the target

    @classmethod
    def parse(cls, text: str) -> FaultKind:
        """Accept ``logon-refused`` as well as ``logon_refused`` (CLI spelling)."""
        try:
            return cls(text.strip().lower().replace("-", "_"))
        except ValueError:
            choices = ", ".join(k.value for k in cls)
            raise ValueError(f"unknown fault kind {text!r} (expected one of: {choices})") from None


@dataclass
class FaultSet:
    """Active faults: kind -> delay_ms (0 unless slow), gateway-wide and per sender."""

    gateway: dict[FaultKind, int] = field(default_factory=dict)
    sessions: dict[str, dict[FaultKind, int]] = field(default_factory=dict)

    def apply(self, kind: FaultKind, session: str | None = None, delay_ms: int = 0) -> None:
        """Add a fault (``recover`` clears instead). Re-applying replaces the delay."""
        if kind is FaultKind.RECOVER:
            self.recover(session)
            return
        if kind is FaultKind.SLOW and delay_ms <= 0:
            raise ValueError("delay_ms must be > 0 for a slow fault")
        target = self.gateway if session is None else self.sessions.setdefault(session, {})
        target[kind] = delay_ms if kind is FaultKind.SLOW else 0

    def recover(self, session: str | None = None) -> None:
        """Clear every fault of the target: the whole gateway (including its sessions) or one session."""
        if session is None:
            self.gateway.clear()
            self.sessions.clear()
        else:
            self.sessions.pop(session, None)

    def _has(self, kind: FaultKind, sender: str | None) -> bool:
        if kind in self.gateway:
            return True
        return sender is not None and kind in self.sessions.get(sender, {})

    def gateway_reset(self) -> bool:
        return FaultKind.RESET in self.gateway

    def reset(self, sender: str | None) -> bool:
        return self._has(FaultKind.RESET, sender)

    def stalled(self, sender: str | None) -> bool:
        return self._has(FaultKind.STALL, sender)

    def logon_refused(self, sender: str | None) -> bool:
        return self._has(FaultKind.LOGON_REFUSED, sender)

    def delay_ms(self, sender: str | None) -> int:
        """Added delay for a connection of this sender (the larger of gateway and session delays)."""
        delay = self.gateway.get(FaultKind.SLOW, 0)
        if sender is not None:
            delay = max(delay, self.sessions.get(sender, {}).get(FaultKind.SLOW, 0))
        return delay

    def describe(self) -> list[str]:
        """Readable active faults: ``stall``, ``slow(250ms)``, ``reset@host-a``..."""

        def one(kind: FaultKind, delay: int) -> str:
            return f"{kind.value}({delay}ms)" if kind is FaultKind.SLOW else kind.value

        out = [one(k, d) for k, d in sorted(self.gateway.items())]
        for sender in sorted(self.sessions):
            out.extend(f"{one(k, d)}@{sender}" for k, d in sorted(self.sessions[sender].items()))
        return out
