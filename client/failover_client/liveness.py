"""When a strategy's connection to its sidecar pings, and when the sidecar's silence ends it.

Both relay clients keep this clock of their own, on the event loop's clock. A paused
or hung sidecar keeps its socket open and answers nothing; a transport's own liveness
check is not enough on its own: gRPC core starts the timeout of its HTTP/2 keepalive
ping only once the ping is written, and a paused peer whose receive buffer is full
never lets it be written. This clock's verdict depends on no write completing: a ping
is queued, and the connection is declared gone when nothing at all arrives within
``answer_within_s`` of queueing it.

Pure logic: the clients feed it what they heard and when, and do what it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["wait", "ping", "dead"]


@dataclass
class PingClock:
    every_s: float  # silence before a ping
    answer_within_s: float  # silence after a ping before the sidecar counts as gone
    heard: float = 0.0  # when anything last arrived from the sidecar
    ping_sent: float = 0.0  # when the outstanding ping was queued; 0: none outstanding
    seq: int = 0

    def check(self, now: float, owed: bool = True) -> tuple[Verdict, float]:
        """What to do now, and when to check again.

        ``owed``: whether anything is waiting for an answer. Nothing is pinged while
        nothing is owed (a transport that checks idle connections itself), but a ping
        already out still has to be answered.
        """
        if self.ping_sent and self.heard < self.ping_sent:
            if now - self.ping_sent < self.answer_within_s:
                return "wait", self.ping_sent + self.answer_within_s
            return "dead", now
        self.ping_sent = 0.0
        if not owed:
            return "wait", now + self.every_s
        quiet_until = self.heard + self.every_s
        if now < quiet_until:
            return "wait", quiet_until
        self.seq += 1
        self.ping_sent = now
        return "ping", now + self.answer_within_s

    def silence(self) -> str:
        return f"the sidecar did not answer a ping within {self.answer_within_s:g} s"
