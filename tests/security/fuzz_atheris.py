"""Coverage-guided fuzzing with atheris (optional: ``pip install atheris``).

    python -m tests.security.fuzz_atheris frames -max_total_time=60
    python -m tests.security.fuzz_atheris stream -max_total_time=60

``frames``: the venue frame decoder fed the input in two pieces; only ProtocolError
may escape, and the buffer never holds more than one frame. ``stream``: the
replica's reading of a sidecar stream (hello, then an ack or health report);
never raises. A crash is written by libFuzzer as ``crash-<sha>`` (the input).
test_fuzz_parsers.py runs both for a few seconds when atheris is installed.
"""

from __future__ import annotations

import sys

import atheris

import coordinator.replica  # noqa: F401  (the heavy dependencies, imported uninstrumented)

_MINE = ["failover.wire.protocol", "coordinator.request_checks", "coordinator.sync_service"]
for _name in _MINE:
    sys.modules.pop(_name, None)
with atheris.instrument_imports(include=_MINE):
    from coordinator.sync_service import _check_message, _parse_hello
    from failover.v1 import sync_pb2
    from failover.wire.protocol import HEADER_BYTES, MAX_FRAME_BYTES, FrameDecoder, ProtocolError


def frames(data: bytes) -> None:
    cut = data[0] % (len(data) + 1) if data else 0
    dec = FrameDecoder()
    try:
        dec.feed(data[:cut])
        dec.feed(data[cut:])
    except ProtocolError:
        return
    assert dec.buffered <= HEADER_BYTES + MAX_FRAME_BYTES


def stream(data: bytes) -> None:
    hello, problem = _parse_hello(data)
    assert (hello is None) == bool(problem)
    try:
        msg = sync_pb2.SidecarMessage.FromString(data)
    except Exception:  # DecodeError: the replica answers INVALID_ARGUMENT
        return
    _check_message(msg, ("g1", "g2"))


TARGETS = {"frames": frames, "stream": stream}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
