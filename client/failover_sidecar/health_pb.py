"""A path's status as the protobuf ``PathHealth`` the health stream and status carry (one place)."""

from __future__ import annotations

from failover.model.convert import WARMTH_TO_PB
from failover.v1 import types_pb2 as pb
from failover_sidecar.status import Cause, PathState, PathStatus

STATE_PB = {
    PathState.UP: pb.PATH_STATE_UP,
    PathState.DOWN: pb.PATH_STATE_DOWN,
    PathState.CONNECTING: pb.PATH_STATE_CONNECTING,
}
CAUSE_PB = {
    Cause.RESET: pb.FAILURE_CAUSE_RESET,
    Cause.REFUSED: pb.FAILURE_CAUSE_REFUSED,
    Cause.LOGON_LOST: pb.FAILURE_CAUSE_LOGON_LOST,
    Cause.LOGON_REFUSED: pb.FAILURE_CAUSE_LOGON_REFUSED,
    Cause.SILENT: pb.FAILURE_CAUSE_SILENT,
}


def path_health(st: PathStatus) -> pb.PathHealth:
    """The cause is sent only while the path is not UP (it is the last failure)."""
    cause = CAUSE_PB.get(st.cause, 0) if st.cause is not None and st.state is not PathState.UP else 0
    return pb.PathHealth(
        group=st.group,
        path=st.path,
        state=STATE_PB.get(st.state, 0),  # type: ignore[arg-type]
        cause=cause,  # type: ignore[arg-type]
        rtt_p50_us=int(st.rtt_p50_us or 0),
        rtt_p99_us=int(st.rtt_p99_us or 0),
        warmth=WARMTH_TO_PB[st.warmth],
        detect_us=int(st.detect_us or 0),
        seq=st.seq,
    )
