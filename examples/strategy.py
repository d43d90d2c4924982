"""An example strategy: watches its route, sends an order every few milliseconds
through the local sidecar, and handles every outcome.

    python examples/strategy.py --socket /tmp/failover-sidecar-h1.sock --strategy s1 --group cme-orders

An IN_DOUBT order is resolved with ResolveInDoubt before anything is resent:
UNKNOWN_TO_VENUE means it never reached the venue and never will, so a new
order (new id) is safe; STILL_IN_DOUBT is asked again later (the line that
carried it may still deliver it); anything else is left as the venue says.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter

from failover_client import OutcomeKind, Sidecar

from failover.gc_policy import freeze_startup_heap
from failover.v1 import sidecar_pb2 as spb

RESOLVE_ATTEMPTS = 5


async def watch(sc: Sidecar, group: str) -> None:
    async for r in sc.watch([group]):
        note = " (this host deviates from the decision)" if r.deviates else ""
        print(f"route {group}: {r.effective_path or 'none'}{note} - {r.reason}", flush=True)


async def main(socket: str, strategy: str, group: str, count: int, interval_ms: float) -> None:
    counts: Counter[str] = Counter()
    in_doubt: list[int] = []
    async with await Sidecar.connect(socket, strategy) as sc:
        watcher = asyncio.create_task(watch(sc, group))
        pending = []
        for n in range(count):
            pending.append(sc.submit(group, f'{{"sym":"ESZ6","side":"buy","qty":1,"n":{n}}}'))
            await asyncio.sleep(interval_ms / 1000)
        for msg_id, fut in pending:
            o = await fut
            counts[OutcomeKind.name(o.kind)] += 1
            if o.kind == OutcomeKind.IN_DOUBT:
                in_doubt.append(msg_id)
        for _ in range(RESOLVE_ATTEMPTS):  # bounded: what is still in doubt then is reported so
            if not in_doubt:
                break
            await asyncio.sleep(0.5)  # let a dead session be declared closed, its path come back
            still = []
            for r in await sc.resolve_in_doubt(group, in_doubt):
                if r.state == spb.RESOLVE_STATE_STILL_IN_DOUBT:
                    still.append(r.client_msg_id)
                else:
                    counts["resolved:" + spb.ResolveState.Name(r.state).removeprefix("RESOLVE_STATE_")] += 1
            in_doubt = still
        if in_doubt:
            counts["resolved:STILL_IN_DOUBT"] += len(in_doubt)
        while not sc.events.empty():
            ev = sc.events.get_nowait()
            counts["venue:" + ev.kind] += 1
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    print("outcomes:", dict(counts), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", required=True)
    p.add_argument("--strategy", required=True)
    p.add_argument("--group", default="cme-orders")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--interval-ms", type=float, default=2.0)
    a = p.parse_args()
    freeze_startup_heap()  # a full collection then skips what importing left (docs/api.md)
    asyncio.run(main(a.socket, a.strategy, a.group, a.count, a.interval_ms))
