"""Network faults between a sidecar and the coordinator replica it streams from.

The link goes through the tier's userspace proxy (loopback): 20 ms added each
way (slow is not dead: the sidecar stays), or one direction dropped with the
sockets left open (the stream goes silent one way). The sidecar must keep
routing, leave a replica whose stream is silent past ``stream.dead_after_ms``,
and never apply an older decision (the checker's rule 3, for the whole row).
"""

from __future__ import annotations

import time

import pytest

from failover.faults.proxy import Mode
from tests.fault.conftest import FaultSystem
from tests.fault.helpers import leader, pin_host_to, switch_applied

pytestmark = [pytest.mark.fault, pytest.mark.cluster, pytest.mark.slow]

LINK_DELAY_MS = 20.0
HOLD_S = 5.0
SWITCH_EVERY_S = 1.0
# Coordinator defaults the tier keeps: a replica heartbeats every 1 s (so a sidecar waits
# 3 intervals, not its 1 s dead-after, before calling the stream dead, and the replica ends
# a stream whose sidecar leaves its ping unanswered for 2 intervals) and pushes a sidecar
# the next decision only once it acked the last one, or after the ack timeout (5 s).
REPLICA_HEARTBEAT_S = 1.0
ACK_TIMEOUT_S = 5.0
DROP_UP_SWITCHES = 3
# The replica ends the stream of a sidecar it cannot hear within 3 heartbeat intervals (a ping
# after 1 interval of silence, unanswered for 2); a decision switched meanwhile reaches the host
# once it moved. Well under the ack timeout, which each decision after the first used to wait.
DROP_UP_DECISION_BOUND_S = 3.0


async def _on_a_follower(fs: FaultSystem) -> tuple[str, str, str]:
    """(host, its replica, the leader): the first host pinned to a follower."""
    lead = await leader(fs)
    rid = next(r for r in fs.cluster.topo.replicas if r != lead)
    host = fs.cluster.topo.hosts[0]
    await pin_host_to(fs, host, rid)
    return host, rid, lead


async def test_slow_link_sidecar_to_replica(fs: FaultSystem) -> None:
    """20 ms added each way between a sidecar and its replica for 5 s: it stays on that replica
    (40 ms is far inside its 1 s dead-after), routes on, and takes every decision."""
    host, rid, _ = await _on_a_follower(fs)
    link = fs.cluster.sc_link(host, rid)
    t0 = time.monotonic()
    fs.cluster.proxy.set(link, Mode.PASS, delay_ms=LINK_DELAY_MS)
    seen: set[str] = set()
    took: list[float] = []
    try:
        n = 0
        while time.monotonic() - t0 < HOLD_S:
            took.append(await switch_applied(fs, "backup" if n % 2 == 0 else "primary", 10))
            n += 1
            t_next = time.monotonic() + SWITCH_EVERY_S
            while time.monotonic() < t_next:  # noqa: ASYNC110 - switches are spaced out
                await fs.obs.poll_once()
                seen.add(fs.obs.replica_of(host))
    finally:
        fs.cluster.proxy.set(link, Mode.PASS, delay_ms=0)
    counts = fs.strategies[host].counts(t0)
    print(f"[fault] slow link {host}>{rid}: {len(took)} decisions, replicas seen {sorted(seen)}")
    assert seen == {rid}, f"{host} left {rid} over a slow link (not a dead one): {sorted(seen)}"
    assert counts.get("NO_PATH", 0) == 0, counts
    for t in took:
        fs.bound(
            f"slow link sidecar-replica (+{LINK_DELAY_MS:.0f} ms each way): a decision on every host",
            t,
            5 * 1.0,
        )
    await fs.finish_clean()


async def test_replica_to_sidecar_dropped(fs: FaultSystem) -> None:
    """The replica's bytes to one sidecar are dropped (the sidecar's still arrive): its stream
    goes silent, it moves to another replica once silent past its dead-after (1 s, raised to
    3 of the replica's 1 s heartbeats), routes on, and takes the next decision there."""
    host, rid, _ = await _on_a_follower(fs)
    link = fs.cluster.sc_link(host, rid)
    t0 = time.monotonic()
    fs.cluster.proxy.set(link, Mode.DROP_DOWN)
    try:
        moved = await fs.obs.until(
            lambda: fs.obs.replica_of(host) not in ("", rid), 15, f"{host} to leave {rid} (replies dropped)"
        )
        took = await switch_applied(fs, "backup", 10)
        applied = time.monotonic() - t0
    finally:
        fs.cluster.proxy.set(link, Mode.PASS)
    counts = fs.strategies[host].counts(t0)
    assert counts.get("NO_PATH", 0) == 0, counts
    silent = max(fs.cluster.topo.stream_dead_after_ms / 1000, 3 * REPLICA_HEARTBEAT_S)
    fs.bound("one-way drop replica->sidecar: the sidecar on another replica", moved, 5 * (silent + 0.5))
    fs.bound("one-way drop replica->sidecar: fault to a decision on every host", applied, 5 * (silent + 1.0))
    assert took > 0
    await fs.finish_clean()


async def test_sidecar_to_replica_dropped(fs: FaultSystem) -> None:
    """The sidecar's bytes to its replica are dropped (the replica's still arrive): the stream
    is not silent from the sidecar's side, but the replica no longer hears it (no ack, no
    health, no answer to its HTTP/2 pings), ends the stream after its ping timeout (2 of its
    1 s heartbeats, after a ping sent one interval into the silence), and the sidecar moves
    to another replica. Every decision reaches every host well inside the ack timeout (5 s:
    what each decision after the first waited while the sidecar stayed), the host routes on,
    and never applies an older decision."""
    host, rid, _ = await _on_a_follower(fs)
    link = fs.cluster.sc_link(host, rid)
    t0 = time.monotonic()
    fs.cluster.proxy.set(link, Mode.DROP_UP)
    seen: list[tuple[float, str]] = []
    took: list[float] = []

    def note() -> None:
        r = fs.obs.replica_of(host)
        if not seen or seen[-1][1] != r:
            seen.append((time.monotonic() - t0, r))

    try:
        for n in range(DROP_UP_SWITCHES):
            took.append(await switch_applied(fs, "backup" if n % 2 == 0 else "primary", 5 * ACK_TIMEOUT_S))
            t_next = time.monotonic() + SWITCH_EVERY_S
            while time.monotonic() < t_next:  # noqa: ASYNC110 - switches are spaced out
                await fs.obs.poll_once()
                note()
        await fs.obs.until(
            lambda: fs.obs.replica_of(host) not in ("", rid), 15, f"{host} to leave {rid} (its bytes dropped)"
        )
        note()
    finally:
        fs.cluster.proxy.set(link, Mode.PASS)
    counts = fs.strategies[host].counts(t0)
    print(
        f"[fault] one-way drop {host}->{rid}: decisions took "
        + ", ".join(f"{t:.2f}s" for t in took)
        + f"; {host}'s replica over time: "
        + ", ".join(f"{t:.2f}s {r or '-'}" for t, r in seen)
    )
    assert counts.get("NO_PATH", 0) == 0, counts
    left = next(t for t, r in seen if r not in ("", rid))
    fs.bound(
        "one-way drop sidecar->replica: the sidecar on another replica",
        left,
        5 * (3 * REPLICA_HEARTBEAT_S + 0.5),
    )
    for t in took:
        fs.bound("one-way drop sidecar->replica: a decision on every host", t, DROP_UP_DECISION_BOUND_S)
    await fs.finish_clean()
