"""The framed client takes every event frame the sidecar can send: a venue event carries a
venue message of up to the venue's own frame limit, plus its envelope."""

from __future__ import annotations

from failover_client.framed import FramedRelay

from failover.v1 import sidecar_pb2 as spb
from failover.wire.frames import MAX_FRAME_BYTES, frame


def test_the_largest_venue_event_fits_the_clients_frame_limit() -> None:
    event = spb.RelayEvent(
        venue_event=spb.VenueEvent(
            client_msg_id=2**64 - 1,
            kind="unsolicited_cancel",
            path="p" * 63,
            client_order_id="h" * 63 + "-" + "9" * 40,
            payload=b"x" * MAX_FRAME_BYTES,  # a venue message at the venue protocol's limit
        )
    )
    data = frame(event.SerializeToString())
    assert len(data) > MAX_FRAME_BYTES + 4
    fr = FramedRelay("s1", keepalive_s=None)  # not connected: only its frame reader is used
    assert [bytes(b) for b in fr._reader.feed(data)] == [data[4:]]
