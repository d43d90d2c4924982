"""A local flip's bookkeeping (spans, log line, health report) waits for the new path's first ack.

Run in the callback that flips, the two spans, the log line and the report held the
event loop for 0.2-0.5 ms right when the strategy's next message was due on the new
path (docs/benchmarks.md, "The flip's bookkeeping after the first ack"). A venue and
a sidecar agent with its order path in this process (``failover bench flip``'s rig),
real sockets: the gateway of the active path resets while one order per ms flows.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from failover_sidecar import agent as agent_module

from failover.bench import pacer
from failover.bench.flip.rig import GROUP, FlipRig
from failover.v1 import types_pb2 as pb
from failover.venue.faults import FaultKind

BOUND_S = 5.0


class _Events:
    """What happened, in order: acks by path, the flip's log line, health reports."""

    def __init__(self, rig: FlipRig) -> None:
        self.seen: list[tuple[str, str]] = []
        self.changed = asyncio.Event()
        sink = rig.orders.sinks["bench"]

        def on_outcome(ev):  # type: ignore[no-untyped-def]
            if ev.outcome.kind == rig._spb.OUTCOME_KIND_ACKED:
                self.add("ack", ev.outcome.path)
            sink(ev)

        rig.orders.sinks["bench"] = on_outcome
        report = rig.agent.link.report

        def on_report(rep):  # type: ignore[no-untyped-def]
            for h in rep.paths:
                state = pb.PathState.Name(h.state).removeprefix("PATH_STATE_").lower()
                self.add("report", f"{h.path}:{state}")
            report(rep)

        rig.agent.link.report = on_report  # type: ignore[method-assign]
        # The flip's log line and a decision's span, hooked where the agent makes them (not
        # through logging, whose configuration other tests in the same process change).
        flip_log = rig.agent.flip_log.log

        def on_flip_line(flip):  # type: ignore[no-untyped-def]
            cause = f", {flip.cause}" if flip.cause else ""
            self.add("log", f"{flip.group}: {flip.from_path} -> {flip.to_path} ({flip.trigger}{cause})")
            flip_log(flip)

        rig.agent.flip_log.log = on_flip_line  # type: ignore[method-assign]
        applying = rig.agent.traces.applying

        def on_applying(d, received_ns):  # type: ignore[no-untyped-def]
            self.add("decision", ",".join(d.paths))
            return applying(d, received_ns)

        rig.agent.traces.applying = on_applying  # type: ignore[method-assign]

    def add(self, kind: str, what: str) -> None:
        self.seen.append((kind, what))
        self.changed.set()

    def index(self, item: tuple[str, str], start: int = 0) -> int:
        return self.seen.index(item, start)

    async def until(self, item: tuple[str, str], start: int = 0) -> None:
        async with asyncio.timeout(BOUND_S):
            while item not in self.seen[start:]:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def first_ack_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the first ack releases the bookkeeping (a loaded machine could let the 2 ms bound
    pass before the ack comes, which would say nothing about the order)."""
    monkeypatch.setattr(agent_module, "AFTER_FLIP_S", BOUND_S * 10)


@pytest.fixture
async def rig(tmp_path: Path):  # type: ignore[no-untyped-def]
    r = await FlipRig.create(50, tmp_path)
    try:
        yield r
    finally:
        await r.stop()


async def test_the_first_ack_on_the_new_path_comes_before_the_flips_bookkeeping(
    rig: FlipRig, first_ack_only: None
) -> None:
    events = _Events(rig)
    await rig.one_run("reset")  # returns once the primary is back and the route on it again
    first_backup_ack = events.index(("ack", "backup"))
    log_line = events.index(("log", f"{GROUP}: primary -> backup (local, reset)"))
    report = events.index(("report", "primary:down"))
    assert first_backup_ack < log_line and first_backup_ack < report, events.seen
    # Each exactly once, and the report of the primary's death before the one of its return.
    assert sum(1 for e in events.seen if e == ("report", "primary:down")) == 1, events.seen
    assert ("report", "primary:up") in events.seen[report:], events.seen


async def test_with_no_order_flowing_the_report_still_goes_out_at_once(rig: FlipRig) -> None:
    await rig.until(lambda: rig.effective == "primary" and rig.both_up(), "both paths up")
    events = _Events(rig)
    await rig.venue.inject_fault("primary", None, FaultKind.RESET)
    # Bounded by the deferral's own limit (milliseconds), far below this test's bound.
    await events.until(("report", "primary:down"))
    assert rig.effective == "backup"
    down = events.index(("report", "primary:down"))
    await rig.venue.inject_fault("primary", None, FaultKind.RECOVER)
    await events.until(("report", "primary:up"), start=down)


async def test_a_decision_that_moves_the_route_logs_after_the_new_paths_first_ack(
    rig: FlipRig, first_ack_only: None
) -> None:
    await rig.until(lambda: rig.effective == "primary" and rig.both_up(), "both paths up")
    events = _Events(rig)
    stop = asyncio.Event()
    sender = asyncio.create_task(pacer.paced(stop, rig.submit, 0.001))
    try:
        await events.until(("ack", "primary"))
        rig.decide(["primary", "backup"])  # the same order: nothing moves, logged at once
        assert events.seen[-1][0] == "decision", events.seen
        rig.decide(["backup", "primary"])
        assert rig.effective == "backup"
        await events.until(("ack", "backup"))
        await events.until(("log", f"{GROUP}: primary -> backup (decision)"))
    finally:
        stop.set()
        await sender
    moved = [i for i, e in enumerate(events.seen) if e[0] == "decision"][-1]
    assert (
        events.index(("ack", "backup"))
        < moved
        < events.index(("log", f"{GROUP}: primary -> backup (decision)"))
    )


async def test_a_late_ack_on_the_old_path_does_not_release_the_bookkeeping(
    rig: FlipRig, first_ack_only: None
) -> None:
    """An order written on the old path just before the flip is acked after it: that ack is
    not the new path's first, and must not run the bookkeeping ahead of it (it did: the
    gate run where `test_a_decision_that_moves_the_route_logs_after_the_new_paths_first_ack`
    saw the decision's span before the first ack on the backup)."""
    await rig.until(lambda: rig.effective == "primary" and rig.both_up(), "both paths up")
    events = _Events(rig)
    rig.decide(["backup", "primary"])
    assert rig.effective == "backup"
    rig.agent.note_ack(GROUP, "primary")  # a straggler's ack on the path the route left
    for _ in range(3):  # the flush would run at the next loop iteration (call_soon)
        await asyncio.sleep(0)
    assert not any(e[0] in ("decision", "log") for e in events.seen), events.seen
    rig.agent.note_ack(GROUP, "backup")
    await events.until(("log", f"{GROUP}: primary -> backup (decision)"))
    assert [e[0] for e in events.seen].count("decision") == 1, events.seen
