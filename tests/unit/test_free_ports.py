"""The port picker hands out ports no outgoing connection can take in the meantime."""

from __future__ import annotations

import socket

from failover import procs


def test_ports_are_chosen_outside_the_kernels_ephemeral_range() -> None:
    # A port chosen by binding port 0 comes from the ephemeral range, which every
    # outgoing connection on the host also draws from: between the picker releasing
    # it and a child binding it, another process's connect could take it (seen in
    # CI as a venue that could not bind its gateway port, "address already in use").
    low, high = procs.ephemeral_range()
    ports = procs.free_ports(50)
    assert len(set(ports)) == 50
    assert all(not low <= p <= high for p in ports), ports
    assert all(1024 <= p <= 65535 for p in ports)


def test_a_port_in_use_is_never_handed_out() -> None:
    lo, hi = procs.picking_range()
    held = []
    try:
        # Hold a block of the range; the picker must step around every held port.
        for port in range(lo, min(lo + 200, hi)):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
        taken = {s.getsockname()[1] for s in held}
        for _ in range(20):
            assert not set(procs.free_ports(5)) & taken
    finally:
        for s in held:
            s.close()
