"""Ledger: unit tests of each rule, clordid escaping, and a random state machine over every operation."""

from __future__ import annotations

import pytest
from failover_sidecar.ledger import Entry, Ledger, LedgerError, MsgKey, Outcome, clordid, parse_clordid
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

# ---------------------------------------------------------------- unit tests


def send_all(ledger: Ledger, group: str, path: str) -> list[Entry]:
    out = ledger.next_to_send(group, path)
    for e in out:
        ledger.mark_sent(e, path)
    return out


def test_ack_reject_and_late_replies_are_ignored() -> None:
    led = Ledger()
    e1 = led.submit(("s", "1"), "g", 0)
    e2 = led.submit(("s", "2"), "g", 0)
    assert led.on_reply(("s", "1"), True) is None  # not written yet: not ours to resolve
    assert send_all(led, "g", "A") == [e1, e2]
    assert led.on_reply(("s", "1"), True) is e1 and e1.outcome is Outcome.ACKED
    assert led.on_reply(("s", "2"), False, "dup") is e2 and e2.outcome is Outcome.REJECTED
    assert e2.reason == "dup"
    assert led.on_reply(("s", "1"), False) is None and e1.outcome is Outcome.ACKED  # never changes
    assert led.on_reply(("s", "nope"), True) is None
    assert led.unresolved() == 0 and led.get(("s", "1")) is e1


def test_written_messages_without_a_reply_expire_in_doubt_oldest_first() -> None:
    led = Ledger()
    assert led.next_reply_due_ms(300) is None
    e1, e2, e3 = (led.submit(("s", str(i)), "g", 0) for i in (1, 2, 3))
    led.mark_sent(e1, "A", 100)
    led.mark_sent(e2, "A", 200)
    f1 = led.submit(("s", "9"), "h", 0)
    led.mark_sent(f1, "B", 150)
    assert led.next_reply_due_ms(300) == 400  # the oldest written, over every group
    assert led.expire_replies(400, 300) == []  # due means over, not at
    assert led.expire_replies(460, 300) == [e1, f1]
    assert e1.outcome is Outcome.IN_DOUBT and "no reply on A within 300 ms" in e1.reason
    assert e2.outcome is None and e3.outcome is None  # younger, and never written
    assert led.on_reply(("s", "1"), True) is None  # a late ack changes nothing
    assert led.next_reply_due_ms(300) == 500


def test_duplicate_message_id_refused() -> None:
    led = Ledger()
    led.submit(("s", "1"), "g", 0)
    with pytest.raises(LedgerError):
        led.submit(("s", "1"), "other", 0)
    led.submit(("t", "1"), "g", 0)  # another strategy may use the same id


def test_make_before_break_on_a_flip() -> None:
    led = Ledger()
    e1 = led.submit(("s", "1"), "g", 0)
    send_all(led, "g", "A")
    e2 = led.submit(("s", "2"), "g", 1)
    assert led.next_to_send("g", "B") == []  # e1 still outstanding on A
    assert led.next_to_send("g", "A") == [e2]  # the old path may still take it
    with pytest.raises(LedgerError):
        led.mark_sent(e2, "B")
    led.on_reply(e1.key, True)
    assert led.outstanding_path("g") is None
    assert send_all(led, "g", "B") == [e2] and e2.path == "B"


def test_a_group_blocked_on_the_path_the_route_left_is_released_in_doubt() -> None:
    led = Ledger()
    e1 = led.submit(("s", "1"), "g", 0)
    send_all(led, "g", "A")
    assert not led.blocked("g", "B")  # nothing queued waits
    e2 = led.submit(("s", "2"), "g", 1)
    assert led.blocked("g", "B") and not led.blocked("g", "A")
    assert led.release("g", "route moved") == [e1]
    assert e1.outcome is Outcome.IN_DOUBT and e1.reason == "route moved"
    assert not led.blocked("g", "B")
    assert send_all(led, "g", "B") == [e2]
    assert led.on_reply(e1.key, True) is None  # a late reply on A changes nothing


def test_writes_keep_submit_order_and_are_never_repeated() -> None:
    led = Ledger()
    e1 = led.submit(("s", "1"), "g", 0)
    e2 = led.submit(("s", "2"), "g", 0)
    with pytest.raises(LedgerError):
        led.mark_sent(e2, "A")
    led.mark_sent(e1, "A")
    with pytest.raises(LedgerError):
        led.mark_sent(e1, "A")
    assert led.next_to_send("g", None) == []


def test_path_death_makes_outstanding_in_doubt_only() -> None:
    led = Ledger()
    a1 = led.submit(("s", "1"), "g", 0)
    send_all(led, "g", "A")
    a2 = led.submit(("s", "2"), "g", 0)  # queued, never written
    h1 = led.submit(("s", "3"), "h", 0)
    send_all(led, "h", "A")  # another group with a path of the same name
    assert led.on_path_dead("A", group="g") == [a1]
    assert a1.outcome is Outcome.IN_DOUBT and a2.outcome is None and h1.outcome is None
    assert send_all(led, "g", "B") == [a2]  # nothing earlier outstanding now: the backup may take it
    assert led.on_path_dead("A") == [h1]
    assert led.on_path_dead("B") == [a2]


def test_expire_and_halt_give_no_path_to_unwritten_only() -> None:
    led = Ledger()
    w = led.submit(("s", "1"), "g", 0)
    send_all(led, "g", "A")
    q1 = led.submit(("s", "2"), "g", 10)
    q2 = led.submit(("s", "3"), "g", 60)
    assert led.next_expiry_ms(100) == 110
    assert led.expire(110, 100) == []  # exactly the wait is not past it
    assert led.expire(111, 100) == [q1] and q1.outcome is Outcome.NO_PATH
    assert led.halt("g") == [q2] and q2.outcome is Outcome.NO_PATH and "halted" in q2.reason
    assert w.outcome is None and led.outstanding("g") == [w]
    assert led.halt("unknown") == [] and led.next_expiry_ms(100) is None


def test_groups_are_independent() -> None:
    led = Ledger()
    led.submit(("s", "1"), "g", 0)
    send_all(led, "g", "A")
    h = led.submit(("s", "2"), "h", 0)
    assert led.next_to_send("h", "B") == [h]


def test_resolved_retention_is_bounded() -> None:
    led = Ledger(keep_resolved=2)
    for i in range(3):
        led.submit(("s", str(i)), "g", 0)
    led.halt("g")
    assert led.get(("s", "0")) is None and led.get(("s", "2")) is not None


def test_clordid_escapes_separators() -> None:
    assert clordid("host-a", "s1", "42") == "host-a.s1.42"
    assert clordid("a.b", "c", "1") != clordid("a", "b.c", "1")
    assert clordid("a%2Eb", "c", "1") != clordid("a.b", "c", "1")
    assert parse_clordid(clordid("a.b", "%c", "1.2")) == ("a.b", "%c", "1.2")
    for bad in ("", "a.b", "a..c", "a.b.c.d", "a%41.b.c"):
        with pytest.raises(ValueError):
            parse_clordid(bad)
    with pytest.raises(ValueError):
        clordid("", "s", "1")


parts = st.text(alphabet=st.sampled_from("ab.%25E"), min_size=1, max_size=6)


@given(x=st.tuples(parts, parts, parts), y=st.tuples(parts, parts, parts))
def test_clordid_is_injective_and_invertible(x: tuple[str, str, str], y: tuple[str, str, str]) -> None:
    assert parse_clordid(clordid(*x)) == x
    assert (clordid(*x) == clordid(*y)) is (x == y)


@given(value=st.text(alphabet=st.sampled_from("ab.%25E"), max_size=14))
def test_parse_clordid_accepts_only_what_clordid_makes(value: str) -> None:
    # Both paths (nothing escaped, and the unescaping one) must refuse a stray '%'.
    try:
        parts = parse_clordid(value)
    except ValueError:
        return
    assert clordid(*parts) == value


# ---------------------------------------------------------------- state machine

GROUPS = ["g1", "g2"]
PATHS = ["A", "B"]


class LedgerMachine(RuleBasedStateMachine):
    """Random submits, flips, sends, replies, path deaths, expiry and halts; outcomes checked throughout."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.now = 0.0
        self.counter = 0
        self.effective: dict[str, str | None] = {g: "A" for g in GROUPS}
        self.entries: dict[MsgKey, Entry] = {}
        self.submitted: dict[str, list[MsgKey]] = {g: [] for g in GROUPS}
        self.writes: dict[str, list[MsgKey]] = {g: [] for g in GROUPS}
        self.outcomes: dict[MsgKey, Outcome] = {}

    def record(self, resolved: list[Entry], allowed: set[Outcome]) -> None:
        for e in resolved:
            assert e.key not in self.outcomes, f"{e.key} resolved twice"
            assert e.outcome in allowed
            if e.outcome is Outcome.NO_PATH:
                assert not e.written  # NO_PATH means never written
            else:
                assert e.written
            self.outcomes[e.key] = e.outcome

    # Submits and flips are followed by a send attempt (as the sidecar does), so the
    # interesting interleavings (a flip while messages are outstanding) come often.
    @rule(group=st.sampled_from(GROUPS), strategy=st.sampled_from(["s1", "s2"]), n=st.integers(0, 3))
    def submit(self, group: str, strategy: str, n: int) -> None:
        self.counter += 1
        key = (strategy, str(self.counter))
        self.entries[key] = self.ledger.submit(key, group, self.now)
        self.submitted[group].append(key)
        self.send(group, n)

    @rule(group=st.sampled_from(GROUPS), path=st.sampled_from([*PATHS, None]), n=st.integers(0, 3))
    def flip(self, group: str, path: str | None, n: int) -> None:
        self.effective[group] = path
        self.send(group, n)

    @precondition(lambda self: self.ledger.unresolved())
    @rule(group=st.sampled_from(GROUPS), n=st.integers(0, 4))
    def pump(self, group: str, n: int) -> None:
        self.send(group, n)

    def send(self, group: str, n: int) -> None:
        """Write up to ``n`` of what the ledger offers, checking the ordering rules first."""
        path = self.effective[group]
        for e in self.ledger.next_to_send(group, path)[:n]:
            assert path is not None
            earlier = self.submitted[group][: self.submitted[group].index(e.key)]
            for k in earlier:
                prior = self.entries[k]
                assert prior.resolved or prior.written, "written out of submit order"
                if prior.written and not prior.resolved:
                    assert prior.path == path, "new path while an earlier message is outstanding"
            self.ledger.mark_sent(e, path, self.now)
            self.writes[group].append(e.key)

    @precondition(lambda self: self.entries)
    @rule(data=st.data(), acked=st.booleans())
    def reply(self, data: st.DataObject, acked: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.entries)))
        was_open = self.entries[key].written and not self.entries[key].resolved
        got = self.ledger.on_reply(key, acked)
        if was_open:
            assert got is not None
            self.record([got], {Outcome.ACKED, Outcome.REJECTED})
        else:
            assert got is None  # queued, or resolved already: ignored

    @precondition(lambda self: any(e.written for e in self.entries.values()))
    @rule(data=st.data())
    def resend_is_refused(self, data: st.DataObject) -> None:
        written = sorted(k for k, e in self.entries.items() if e.written)
        with pytest.raises(LedgerError):
            self.ledger.mark_sent(self.entries[data.draw(st.sampled_from(written))], "A")

    @precondition(lambda self: self.ledger.unresolved())
    @rule(path=st.sampled_from(PATHS), group=st.sampled_from([*GROUPS, None]))
    def path_dead(self, path: str, group: str | None) -> None:
        self.record(self.ledger.on_path_dead(path, group), {Outcome.IN_DOUBT})

    @precondition(lambda self: self.ledger.unresolved())
    @rule(dt=st.integers(0, 200), wait=st.sampled_from([50, 100, 500]))
    def expire(self, dt: int, wait: int) -> None:
        self.now += dt
        self.record(self.ledger.expire(self.now, wait), {Outcome.NO_PATH})

    @precondition(lambda self: self.ledger.unresolved())
    @rule(group=st.sampled_from(GROUPS))
    def halt(self, group: str) -> None:
        self.record(self.ledger.halt(group), {Outcome.NO_PATH})

    @invariant()
    def outcomes_never_change(self) -> None:
        for key, outcome in self.outcomes.items():
            assert self.entries[key].outcome is outcome
        assert self.ledger.unresolved() == len(self.entries) - len(self.outcomes)

    @invariant()
    def writes_follow_submit_order(self) -> None:
        for group in GROUPS:
            orders = [self.entries[k].order for k in self.writes[group]]
            assert orders == sorted(orders)

    @invariant()
    def one_path_outstanding_per_group(self) -> None:
        for group in GROUPS:
            paths = {e.path for e in self.ledger.outstanding(group)}
            assert len(paths) <= 1
            assert self.ledger.outstanding_path(group) == (paths.pop() if paths else None)

    def teardown(self) -> None:
        # Drain: every path dies, every queued message runs out of time.
        for path in PATHS:
            self.record(self.ledger.on_path_dead(path), {Outcome.IN_DOUBT})
        self.record(self.ledger.expire(self.now + 1, 0), {Outcome.NO_PATH})
        assert set(self.outcomes) == set(self.entries)  # every submitted id has exactly one outcome
        assert self.ledger.unresolved() == 0


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
