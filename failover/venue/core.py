"""What the gateways of one venue share: the book, the logged-on sessions, the options.

Cross-gateway rules live here rather than in a gateway: one logged-on session per
sender (``single_session``), cancel-on-disconnect, and routing venue events (fills,
unsolicited cancels) to the owner's session whichever gateway it is on now.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from failover.venue.book import Book, Entry
from failover.wire import protocol as p


class SessionHandle(Protocol):
    """What the core needs of a logged-on connection."""

    @property
    def sender(self) -> str | None: ...

    @property
    def session_id(self) -> str: ...

    @property
    def gateway_name(self) -> str: ...

    @property
    def live(self) -> bool:
        """Logged on, open and not stalled: able to take a message now."""
        ...

    @property
    def slot(self) -> str: ...

    def send(self, msg: p.Message) -> None: ...

    def supersede(self) -> None:
        """A newer logon of the same sender and slot on the same gateway replaces this session."""
        ...


class EventKind(StrEnum):
    FILL = "fill"
    UNSOLICITED_CANCEL = "unsolicited_cancel"

    @classmethod
    def parse(cls, text: str) -> EventKind:
        """Accept ``unsolicited-cancel`` and ``ucancel`` as well."""
        norm = text.strip().lower().replace("-", "_")
        if norm == "ucancel":
            norm = cls.UNSOLICITED_CANCEL.value
        try:
            return cls(norm)
        except ValueError:
            raise ValueError(f"unknown event kind {text!r} (expected fill or unsolicited_cancel)") from None


class NotFound(LookupError):
    """A named gateway, session or order does not exist (the message names the field)."""


@dataclass(frozen=True)
class Delivery:
    """Where a venue event went; empty names mean the owner had no live session (state still changed)."""

    entry: Entry
    gateway: str = ""
    session: str = ""  # the sender (host id) it was delivered to

    @property
    def delivered(self) -> bool:
        return bool(self.gateway)


class VenueCore:
    def __init__(
        self, name: str = "venue", *, cancel_on_disconnect: bool = False, single_session: bool = False
    ):
        self.name = name
        self.cancel_on_disconnect = cancel_on_disconnect
        self.single_session = single_session
        self.book = Book()
        self.known_senders: set[str] = set()  # every sender that ever attempted a logon
        self._sessions: dict[str, list[SessionHandle]] = {}  # sender -> logged on, oldest first
        self._session_ids = itertools.count(1)
        self._waiters: list[asyncio.Future[None]] = []

    # ------------------------------------------------------------ sessions

    def new_session_id(self, gateway: str) -> str:
        return f"{gateway}-{next(self._session_ids)}"

    def register(self, session: SessionHandle) -> None:
        assert session.sender is not None
        self._sessions.setdefault(session.sender, []).append(session)
        self.changed()

    def unregister(self, session: SessionHandle) -> None:
        if session.sender is None:
            return
        lst = self._sessions.get(session.sender, [])
        if session in lst:
            lst.remove(session)
        if not lst:
            self._sessions.pop(session.sender, None)
        self.changed()

    def sessions_of(self, sender: str) -> list[SessionHandle]:
        """Logged-on sessions of a sender, oldest logon first."""
        return list(self._sessions.get(sender, []))

    def live_session(self, sender: str) -> SessionHandle | None:
        """The most recently logged-on session of the sender that can take a message now."""
        for session in reversed(self._sessions.get(sender, [])):
            if session.live:
                return session
        return None

    def deliver(self, sender: str, msg: p.Message) -> SessionHandle | None:
        """Send a venue-originated message to the owner's live session, if it has one."""
        session = self.live_session(sender)
        if session is not None:
            session.send(msg)
        return session

    def session_lost(self, session: SessionHandle) -> list[Entry]:
        """A logged-on session dropped without logout: apply cancel-on-disconnect.

        Only orders entered through that session are cancelled (the sender may have a
        healthy session on another gateway, whose orders must survive); the owner hears
        of each on a live session that remains.
        """
        self.unregister(session)
        if not self.cancel_on_disconnect or session.sender is None:
            return []
        cancelled = self.book.cancel_open_orders(session.sender, session.session_id)
        for entry in cancelled:
            self.deliver(entry.sender, p.ucancel(entry.clordid, "cancel on disconnect"))
        if cancelled:
            self.changed()
        return cancelled

    # ------------------------------------------------------------ events

    def send_event(self, kind: EventKind, clordid: str, qty: int = 0) -> Delivery:
        """Fill or cancel an open order and tell its owner. Raises NotFound / book.OrderNotOpen."""
        if self.book.get(clordid) is None:
            raise NotFound(f"client_order_id {clordid!r} not found")
        if kind is EventKind.FILL:
            entry = self.book.fill(clordid, qty)
            msg = p.fill(clordid, qty)
        else:
            entry = self.book.unsolicited_cancel(clordid)
            msg = p.ucancel(clordid, entry.reason)
        target = self.deliver(entry.sender, msg)
        self.changed()
        if target is None:
            return Delivery(entry)
        return Delivery(entry, target.gateway_name, entry.sender)

    # ------------------------------------------------------------ change notification

    def changed(self) -> None:
        """Wake everything waiting in ``wait_until`` (called on every state change)."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; re-checked on every change. Bound it with asyncio.timeout."""
        loop = asyncio.get_running_loop()
        while not predicate():
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            await fut
