"""The venue's one order book, shared by all its gateways (pure: no I/O).

Sharing it is the point: a client order id already seen is rejected whichever
gateway it arrives on, so a failover that resends an order cannot double it, and a
status query on the backup line answers for an order sent on the primary.

Orders and cancel requests share one clordid space (as in FIX). A cancel request is
recorded too: ``acked`` when it cancelled its order, ``rejected`` when it could not,
so every clordid a client ever sent has a state to ask for.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from failover.wire.protocol import DUPLICATE, OrderState


class EntryKind(StrEnum):
    ORDER = "order"
    CANCEL = "cancel"


@dataclass(slots=True)
class Entry:
    """One clordid the venue has accepted: an order or a cancel request."""

    clordid: str
    kind: EntryKind
    sender: str  # the owner: the host id that logged on
    session: str  # venue session id it arrived on (for cancel-on-disconnect)
    gateway: str
    state: OrderState
    order_id: str | None = None  # for a cancel request: the order it targets, when known
    orig: str | None = None  # cancel requests only
    payload: str = ""
    reason: str = ""  # why rejected or cancelled
    filled_qty: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """The venue's answer to a new order or cancel request."""

    clordid: str
    accepted: bool
    order_id: str = ""
    reason: str = ""
    duplicate: bool = False


class BookError(Exception):
    """A venue event cannot be applied."""


class UnknownOrder(BookError):
    """No order has this clordid."""


class OrderNotOpen(BookError):
    """The order exists but is no longer open (or the clordid is a cancel request)."""


@dataclass
class Book:
    """Orders and cancel requests keyed by clordid across every gateway of one venue."""

    order_id_prefix: str = "O"
    _entries: dict[str, Entry] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    orders: int = 0  # new orders accepted
    duplicates: int = 0  # orders or cancels refused because their clordid was already used
    cancels: int = 0  # orders cancelled, by request or on disconnect
    _open: int = 0

    @property
    def open_orders(self) -> int:
        return self._open

    def get(self, clordid: str) -> Entry | None:
        return self._entries.get(clordid)

    def owner(self, clordid: str) -> str | None:
        entry = self._entries.get(clordid)
        return entry.sender if entry else None

    def status(self, clordid: str) -> tuple[OrderState, str | None]:
        """State and venue order id of any clordid (``unknown`` if never accepted)."""
        entry = self._entries.get(clordid)
        if entry is None:
            return OrderState.UNKNOWN, None
        return entry.state, entry.order_id

    def _duplicate(self, clordid: str) -> Outcome | None:
        if clordid in self._entries:
            self.duplicates += 1
            return Outcome(clordid, False, reason=f"{DUPLICATE} {clordid!r}", duplicate=True)
        return None

    def new(
        self, clordid: str, sender: str, *, session: str = "", gateway: str = "", payload: str = ""
    ) -> Outcome:
        """Accept a new order unless its clordid was already used anywhere on the venue."""
        dup = self._duplicate(clordid)
        if dup is not None:
            return dup
        order_id = f"{self.order_id_prefix}{next(self._ids)}"
        self._entries[clordid] = Entry(
            clordid, EntryKind.ORDER, sender, session, gateway, OrderState.ACKED, order_id, payload=payload
        )
        self.orders += 1
        self._open += 1
        return Outcome(clordid, True, order_id)

    def cancel(
        self, clordid: str, orig: str, sender: str, *, session: str = "", gateway: str = ""
    ) -> Outcome:
        """Cancel ``orig`` on behalf of ``sender``; the request itself is recorded under ``clordid``."""
        dup = self._duplicate(clordid)
        if dup is not None:
            return dup
        target = self._entries.get(orig)
        reason = ""
        if target is None or target.kind is not EntryKind.ORDER:
            reason = f"unknown order {orig!r}"
        elif target.sender != sender:
            reason = f"order {orig!r} belongs to another sender"
        elif target.state is not OrderState.ACKED:
            reason = f"order {orig!r} is {target.state.value}"
        order_id = target.order_id if target is not None and target.kind is EntryKind.ORDER else None
        entry = Entry(
            clordid, EntryKind.CANCEL, sender, session, gateway, OrderState.REJECTED, order_id, orig
        )
        self._entries[clordid] = entry
        if reason:
            entry.reason = reason
            return Outcome(clordid, False, reason=reason)
        assert target is not None and order_id is not None
        entry.state = OrderState.ACKED
        self._close(target, OrderState.CANCELLED, f"cancelled by {clordid}")
        self.cancels += 1
        return Outcome(clordid, True, order_id)

    def _open_order(self, clordid: str) -> Entry:
        entry = self._entries.get(clordid)
        if entry is None:
            raise UnknownOrder(f"no order with clordid {clordid!r}")
        if entry.kind is not EntryKind.ORDER:
            raise OrderNotOpen(f"clordid {clordid!r} is a cancel request, not an order")
        if entry.state is not OrderState.ACKED:
            raise OrderNotOpen(f"order {clordid!r} is already {entry.state.value}")
        return entry

    def _close(self, entry: Entry, state: OrderState, reason: str) -> None:
        entry.state = state
        entry.reason = reason
        self._open -= 1

    def fill(self, clordid: str, qty: int) -> Entry:
        """Fill an open order completely (a fill closes it)."""
        entry = self._open_order(clordid)
        entry.filled_qty += qty
        self._close(entry, OrderState.FILLED, "filled")
        return entry

    def unsolicited_cancel(self, clordid: str, reason: str = "cancelled by venue") -> Entry:
        """The venue cancels an open order on its own."""
        entry = self._open_order(clordid)
        self._close(entry, OrderState.CANCELLED, reason)
        self.cancels += 1
        return entry

    def open_orders_of(self, sender: str, session: str | None = None) -> list[Entry]:
        """Open orders of a sender, optionally only those entered through one session."""
        return [
            e
            for e in self._entries.values()
            if e.kind is EntryKind.ORDER
            and e.state is OrderState.ACKED
            and e.sender == sender
            and (session is None or e.session == session)
        ]

    def cancel_open_orders(
        self, sender: str, session: str | None = None, reason: str = "cancel on disconnect"
    ) -> list[Entry]:
        """Cancel-on-disconnect: cancel (and return) the sender's open orders, or one session's."""
        cancelled = self.open_orders_of(sender, session)
        for entry in cancelled:
            self._close(entry, OrderState.CANCELLED, reason)
            self.cancels += 1
        return cancelled
