"""Outcome ledger of the sidecar's order path (pure: no I/O, no clock of its own).

Every message a strategy hands the sidecar is identified by ``(strategy_id,
client_msg_id)`` and ends with exactly one ``Outcome``:

- ACKED / REJECTED: the venue answered on the path the message was written to.
- IN_DOUBT: it was written to a path that died before the reply (the venue may or
  may not have it; the strategy resolves it with a status query). The sidecar first
  asks the venue over a live path (``confirm``): what the venue says it has becomes
  ACKED or REJECTED before the outcome is delivered.

Resending (``requeue``, only where the venue refuses a reused client order id on
every line, so a copy can never double an order): what a dead path left without a
reply goes back to the head of its group's queue, ahead of every later message, and
is written once more, under the same client order id, to the next path. The venue
either takes it (ACKED, REJECTED as for any order) or refuses it as a duplicate: it
had the first copy, so the message is IN_DOUBT until the venue is asked
(``on_reply(..., duplicate=True)``). A message is resent at most once; a resent
message that finds no path is IN_DOUBT, never NO_PATH (it was written once).
- NO_PATH: it was never written: no usable path within the wait, or the group halted.

Ordering and make-before-break, per group: messages are written in submit order;
all messages outstanding (written, not answered) in a group are on one path; a
message goes to a different path only once every earlier message of its group has
an outcome. So a flip never lets a later order overtake an earlier one on another
line. The ledger enforces this: ``mark_sent`` raises ``LedgerError`` on a write that
breaks it, so a caller bug cannot slip through silently.

Typical use: ``submit``; then, whenever the route or the ledger changes,
``next_to_send(group, effective_path)`` and, for each message actually written,
``mark_sent``; feed venue replies to ``on_reply``, path deaths to ``on_path_dead``,
and call ``expire`` on a timer (``next_expiry_ms`` says when). Methods that resolve
messages return the entries they resolved, so the caller can deliver each outcome
exactly once. Times are milliseconds of an injected monotonic clock.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

MsgKey = tuple[str, str]
"""``(strategy_id, client_msg_id)``."""


class Outcome(StrEnum):
    ACKED = "acked"
    REJECTED = "rejected"
    IN_DOUBT = "in_doubt"
    NO_PATH = "no_path"


class LedgerError(ValueError):
    """A call that would break the ledger's rules (duplicate id, out-of-order or cross-path write)."""


@dataclass(eq=False)
class Entry:
    """One message and its fate. ``path`` is set once written; ``outcome`` once resolved (never changed)."""

    key: MsgKey
    group: str
    submitted_ms: float
    order: int  # global submit counter: submit order within a group
    path: str | None = None
    sent_ms: float | None = None
    outcome: Outcome | None = None
    reason: str = ""
    resent_from: str | None = None  # the path that died with it outstanding, once requeued
    duplicate: bool = False  # REJECTED because the venue already had its client order id

    @property
    def written(self) -> bool:
        return self.path is not None

    @property
    def resolved(self) -> bool:
        return self.outcome is not None


@dataclass
class _Group:
    queued: dict[int, Entry] = field(default_factory=dict)  # never written, submit order
    outstanding: dict[int, Entry] = field(default_factory=dict)  # written, unanswered, submit order
    path: str | None = None  # where the outstanding messages are (one path at a time)


class Ledger:
    """Per-group queues of messages and their outcomes.

    Resolved entries are kept (up to ``keep_resolved``, oldest dropped first) so a late
    reply is recognised and ignored and a reused message id is refused.
    """

    def __init__(self, *, keep_resolved: int = 100_000) -> None:
        self._groups: dict[str, _Group] = {}
        self._live: dict[MsgKey, Entry] = {}
        self._resolved: OrderedDict[MsgKey, Entry] = OrderedDict()
        self._keep_resolved = keep_resolved
        self._order = 0

    # ------------------------------------------------------------ queries

    def get(self, key: MsgKey) -> Entry | None:
        """The entry of a message (live or still retained after its outcome)."""
        return self._live.get(key) or self._resolved.get(key)

    def queued(self, group: str) -> list[Entry]:
        """Messages of the group not written yet, in submit order."""
        g = self._groups.get(group)
        return list(g.queued.values()) if g else []

    def outstanding(self, group: str) -> list[Entry]:
        """Messages of the group written and not answered yet, in submit order."""
        g = self._groups.get(group)
        return list(g.outstanding.values()) if g else []

    def outstanding_path(self, group: str) -> str | None:
        """The path the group's outstanding messages were written to; None when nothing is outstanding."""
        g = self._groups.get(group)
        return g.path if g else None

    def unresolved(self) -> int:
        """How many messages have no outcome yet (all groups)."""
        return len(self._live)

    def next_expiry_ms(self, no_path_wait_ms: float) -> float | None:
        """When the oldest queued message will be due for NO_PATH; None when nothing is queued."""
        firsts = [e.submitted_ms for g in self._groups.values() for e in g.queued.values()]
        return min(firsts) + no_path_wait_ms if firsts else None

    def next_reply_due_ms(self, reply_timeout_ms: float) -> float | None:
        """When the oldest written message's reply will be overdue; None when nothing is written.

        A group's outstanding messages were written in submit order, so its first is its oldest."""
        oldest = [next(iter(g.outstanding.values())).sent_ms for g in self._groups.values() if g.outstanding]
        firsts = [ms for ms in oldest if ms is not None]
        return min(firsts) + reply_timeout_ms if firsts else None

    # ------------------------------------------------------------ inputs

    def submit(self, key: MsgKey, group: str, now_ms: float) -> Entry:
        """Queue a message; LedgerError if its id is already known (live or retained)."""
        if key in self._live or key in self._resolved:
            raise LedgerError(f"message {key[1]!r} of strategy {key[0]!r} was already submitted")
        self._order += 1
        entry = Entry(key, group, now_ms, self._order)
        self._groups.setdefault(group, _Group()).queued[entry.order] = entry
        self._live[key] = entry
        return entry

    def next_to_send(self, group: str, effective_path: str | None) -> list[Entry]:
        """Queued messages that may be written to ``effective_path`` now, in order (write them in this order).

        Empty when there is no path, or when earlier messages of the group are still
        outstanding on another path (make-before-break: wait for their outcomes).
        """
        g = self._groups.get(group)
        if g is None or effective_path is None or not g.queued:
            return []
        if g.outstanding and g.path != effective_path:
            return []
        return list(g.queued.values())

    def blocked(self, group: str, effective_path: str) -> bool:
        """Do queued messages wait for earlier ones outstanding on another path than ``effective_path``?"""
        g = self._groups.get(group)
        return g is not None and bool(g.queued) and bool(g.outstanding) and g.path != effective_path

    def release(self, group: str, why: str) -> list[Entry]:
        """Every message outstanding in ``group`` becomes IN_DOUBT (``why``), so the queued ones
        may go to another path: the route left a line that still owes them replies."""
        g = self._groups.get(group)
        out = list(g.outstanding.values()) if g is not None else []
        for entry in out:
            self._resolve(entry, Outcome.IN_DOUBT, why)
        return out

    def mark_sent(self, entry: Entry, path: str, now_ms: float | None = None) -> None:
        """Record that ``entry`` was written to ``path``.

        LedgerError unless it is the group's oldest queued message and nothing earlier
        is outstanding on another path; a written message is never written again.
        """
        g = self._groups.get(entry.group)
        if g is None or entry.order not in g.queued:
            state = "resolved" if entry.resolved else "written" if entry.written else "unknown"
            raise LedgerError(f"message {entry.key} cannot be sent: it is {state}")
        if next(iter(g.queued)) != entry.order:
            raise LedgerError(f"message {entry.key} written out of submit order in group {entry.group}")
        if g.outstanding and g.path != path:
            raise LedgerError(
                f"message {entry.key} written to {path} while earlier ones are outstanding on {g.path}"
            )
        del g.queued[entry.order]
        entry.path = path
        entry.sent_ms = now_ms
        g.outstanding[entry.order] = entry
        g.path = path

    def on_reply(
        self, key: MsgKey, acked: bool, reason: str = "", *, duplicate: bool = False
    ) -> Entry | None:
        """Resolve a written message ACKED or REJECTED; None (ignored) if unknown, unwritten or resolved.

        ``duplicate``: the venue refused it because it already has that client order id. For
        a resent message that is the first copy, arrived after all: IN_DOUBT (the caller asks
        the venue what became of it), never REJECTED.
        """
        entry = self._live.get(key)
        if entry is None or not entry.written:
            return None
        if duplicate and entry.resent_from is not None:
            self._resolve(
                entry,
                Outcome.IN_DOUBT,
                f"resent on {entry.path} after {entry.resent_from} died: the venue already had it",
            )
        else:
            if entry.resent_from is not None:
                why = f"resent on {entry.path} after {entry.resent_from} died"
                reason = f"{why}: {reason}" if reason else why
            # This copy's outcome; the order with that id is the venue's earlier one.
            entry.duplicate = duplicate and not acked
            self._resolve(entry, Outcome.ACKED if acked else Outcome.REJECTED, reason)
        return entry

    def requeue(self, path: str, group: str) -> tuple[list[Entry], list[Entry]]:
        """``path`` died: its outstanding messages go back to the head of the group's queue,
        in order, to be written once more; returns ``(requeued, in_doubt)``. Messages already
        resent once become IN_DOUBT instead (as ``on_path_dead``)."""
        g = self._groups.get(group)
        if g is None or g.path != path:
            return [], []
        again = [e for e in g.outstanding.values() if e.resent_from is None]
        doubt = [e for e in g.outstanding.values() if e.resent_from is not None]
        for entry in doubt:
            self._resolve(entry, Outcome.IN_DOUBT, f"path {path} died before the reply")
        for entry in again:
            del g.outstanding[entry.order]
            entry.resent_from, entry.path, entry.sent_ms = path, None, None
        if again:
            g.path = None
            g.queued = {**{e.order: e for e in again}, **g.queued}
        return again, doubt

    def on_path_dead(self, path: str, group: str | None = None) -> list[Entry]:
        """Every message outstanding on ``path`` (in ``group``, or in all groups) becomes IN_DOUBT at once."""
        groups = [group] if group is not None else list(self._groups)
        out: list[Entry] = []
        for name in groups:
            g = self._groups.get(name)
            if g is None or g.path != path:
                continue
            for entry in list(g.outstanding.values()):
                self._resolve(entry, Outcome.IN_DOUBT, f"path {path} died before the reply")
                out.append(entry)
        return out

    def expire(self, now_ms: float, no_path_wait_ms: float) -> list[Entry]:
        """Queued (never written) messages older than the wait get NO_PATH."""
        out: list[Entry] = []
        for g in list(self._groups.values()):
            for entry in list(g.queued.values()):
                if now_ms - entry.submitted_ms > no_path_wait_ms:
                    self._resolve(entry, *_unwritten(entry, f"no usable path within {no_path_wait_ms:g} ms"))
                    out.append(entry)
        return out

    def expire_replies(self, now_ms: float, reply_timeout_ms: float) -> list[Entry]:
        """Written messages with no reply for longer than the timeout become IN_DOUBT (the line is up)."""
        out: list[Entry] = []
        for g in list(self._groups.values()):
            for entry in list(g.outstanding.values()):
                if entry.sent_ms is None or now_ms - entry.sent_ms <= reply_timeout_ms:
                    break  # written in order: the rest are younger
                why = f"no reply on {entry.path} within {reply_timeout_ms:g} ms, the line still up"
                self._resolve(entry, Outcome.IN_DOUBT, why)
                out.append(entry)
        return out

    def halt(self, group: str, why: str = "") -> list[Entry]:
        """Every queued, never-written message of the group gets NO_PATH (outstanding ones
        await replies): the group is halted, or (``why``) the sidecar stops."""
        g = self._groups.get(group)
        if g is None:
            return []
        out = list(g.queued.values())
        for entry in out:
            self._resolve(entry, *_unwritten(entry, why or f"group {group} halted"))
        return out

    def confirm(self, entry: Entry, outcome: Outcome, reason: str) -> None:
        """An IN_DOUBT message the venue, asked over another path, says it has: the outcome
        becomes what the venue said. The one change of a resolved outcome, and only before
        the caller has delivered it (the order path asks right after the path died)."""
        if entry.outcome is not Outcome.IN_DOUBT or outcome not in (Outcome.ACKED, Outcome.REJECTED):
            raise LedgerError(f"cannot confirm {entry.key} ({entry.outcome}) as {outcome}")
        entry.outcome = outcome
        entry.reason = reason

    # ------------------------------------------------------------ internals

    def _resolve(self, entry: Entry, outcome: Outcome, reason: str) -> None:
        g = self._groups[entry.group]
        g.queued.pop(entry.order, None)
        if g.outstanding.pop(entry.order, None) is not None and not g.outstanding:
            g.path = None
        if not g.queued and not g.outstanding:
            del self._groups[entry.group]
        entry.outcome = outcome
        entry.reason = reason
        del self._live[entry.key]
        self._resolved[entry.key] = entry
        while len(self._resolved) > self._keep_resolved:
            self._resolved.popitem(last=False)


def _unwritten(entry: Entry, why: str) -> tuple[Outcome, str]:
    """The outcome of a queued message that will not be written: NO_PATH, unless it was
    written once already (requeued for a resend): then the venue may have it."""
    if entry.resent_from is None:
        return Outcome.NO_PATH, why
    return Outcome.IN_DOUBT, f"path {entry.resent_from} died before the reply; not resent: {why}"


# ---------------------------------------------------------------- client order ids

_UNESCAPE = re.compile(r"%(25|2E)")


def _escape(name: str, value: str) -> str:
    if not value:
        raise ValueError(f"{name} must be non-empty")
    if "%" not in value and "." not in value:
        return value  # the common case, once per part of every message: no copies
    return value.replace("%", "%25").replace(".", "%2E")


def clordid(host_id: str, strategy_id: str, client_msg_id: str) -> str:
    """The venue client order id of a message: unique across hosts and strategies, deterministic.

    ``host.strategy.msgid`` with ``%`` and ``.`` escaped inside each part (``%25``,
    ``%2E``), so the mapping is injective: ``("a.b", "c", "1")`` and ``("a", "b.c", "1")``
    give different ids. ``parse_clordid`` inverts it (venue events name the order by
    clordid; the sidecar finds the owning strategy from it). ValueError on an empty part.
    """
    return ".".join(
        (
            _escape("host_id", host_id),
            _escape("strategy_id", strategy_id),
            _escape("client_msg_id", client_msg_id),
        )
    )


def parse_clordid(value: str) -> tuple[str, str, str]:
    """``(host_id, strategy_id, client_msg_id)`` of a clordid made by ``clordid``; ValueError otherwise."""
    parts = value.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{value!r} is not a sidecar client order id (host.strategy.msgid)")
    if "%" not in value:  # nothing escaped: the parts are the names (every venue reply pays this)
        return parts[0], parts[1], parts[2]
    host, strategy, msg = (_UNESCAPE.sub(lambda m: "%" if m[1] == "25" else ".", part) for part in parts)
    if clordid(host, strategy, msg) != value:  # a stray '%' that clordid would have escaped
        raise ValueError(f"{value!r} is not a sidecar client order id (bad escape)")
    return host, strategy, msg
