from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Warmth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WARMTH_UNSPECIFIED: _ClassVar[Warmth]
    WARMTH_LOGGED_ON: _ClassVar[Warmth]
    WARMTH_CONNECTED: _ClassVar[Warmth]
    WARMTH_COLD: _ClassVar[Warmth]

class PathState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PATH_STATE_UNSPECIFIED: _ClassVar[PathState]
    PATH_STATE_UP: _ClassVar[PathState]
    PATH_STATE_DOWN: _ClassVar[PathState]
    PATH_STATE_CONNECTING: _ClassVar[PathState]

class FailureCause(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_CAUSE_UNSPECIFIED: _ClassVar[FailureCause]
    FAILURE_CAUSE_RESET: _ClassVar[FailureCause]
    FAILURE_CAUSE_REFUSED: _ClassVar[FailureCause]
    FAILURE_CAUSE_LOGON_LOST: _ClassVar[FailureCause]
    FAILURE_CAUSE_SILENT: _ClassVar[FailureCause]
    FAILURE_CAUSE_LOGON_REFUSED: _ClassVar[FailureCause]
WARMTH_UNSPECIFIED: Warmth
WARMTH_LOGGED_ON: Warmth
WARMTH_CONNECTED: Warmth
WARMTH_COLD: Warmth
PATH_STATE_UNSPECIFIED: PathState
PATH_STATE_UP: PathState
PATH_STATE_DOWN: PathState
PATH_STATE_CONNECTING: PathState
FAILURE_CAUSE_UNSPECIFIED: FailureCause
FAILURE_CAUSE_RESET: FailureCause
FAILURE_CAUSE_REFUSED: FailureCause
FAILURE_CAUSE_LOGON_LOST: FailureCause
FAILURE_CAUSE_SILENT: FailureCause
FAILURE_CAUSE_LOGON_REFUSED: FailureCause

class Epoch(_message.Message):
    __slots__ = ("era", "revision", "proof")
    ERA_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    era: int
    revision: int
    proof: bytes
    def __init__(self, era: _Optional[int] = ..., revision: _Optional[int] = ..., proof: _Optional[bytes] = ...) -> None: ...

class Path(_message.Message):
    __slots__ = ("name", "transport", "endpoint", "warmth", "endpoints")
    class EndpointsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    WARMTH_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    transport: str
    endpoint: str
    warmth: Warmth
    endpoints: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., transport: _Optional[str] = ..., endpoint: _Optional[str] = ..., warmth: _Optional[_Union[Warmth, str]] = ..., endpoints: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GroupPolicy(_message.Message):
    __slots__ = ("local_failover", "failback_hold_down_ms", "min_dwell_ms", "fail_hosts", "fail_fraction", "auto_failback", "failback_hold_s", "min_hosts_up", "fraction_up", "slow_threshold_ms")
    LOCAL_FAILOVER_FIELD_NUMBER: _ClassVar[int]
    FAILBACK_HOLD_DOWN_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_DWELL_MS_FIELD_NUMBER: _ClassVar[int]
    FAIL_HOSTS_FIELD_NUMBER: _ClassVar[int]
    FAIL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    AUTO_FAILBACK_FIELD_NUMBER: _ClassVar[int]
    FAILBACK_HOLD_S_FIELD_NUMBER: _ClassVar[int]
    MIN_HOSTS_UP_FIELD_NUMBER: _ClassVar[int]
    FRACTION_UP_FIELD_NUMBER: _ClassVar[int]
    SLOW_THRESHOLD_MS_FIELD_NUMBER: _ClassVar[int]
    local_failover: bool
    failback_hold_down_ms: int
    min_dwell_ms: int
    fail_hosts: int
    fail_fraction: float
    auto_failback: bool
    failback_hold_s: int
    min_hosts_up: int
    fraction_up: float
    slow_threshold_ms: int
    def __init__(self, local_failover: _Optional[bool] = ..., failback_hold_down_ms: _Optional[int] = ..., min_dwell_ms: _Optional[int] = ..., fail_hosts: _Optional[int] = ..., fail_fraction: _Optional[float] = ..., auto_failback: _Optional[bool] = ..., failback_hold_s: _Optional[int] = ..., min_hosts_up: _Optional[int] = ..., fraction_up: _Optional[float] = ..., slow_threshold_ms: _Optional[int] = ...) -> None: ...

class GroupDefinition(_message.Message):
    __slots__ = ("name", "paths", "policy", "mod_revision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    MOD_REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    paths: _containers.RepeatedCompositeFieldContainer[Path]
    policy: GroupPolicy
    mod_revision: int
    def __init__(self, name: _Optional[str] = ..., paths: _Optional[_Iterable[_Union[Path, _Mapping]]] = ..., policy: _Optional[_Union[GroupPolicy, _Mapping]] = ..., mod_revision: _Optional[int] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "where", "duration_us")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    stage: str
    where: str
    duration_us: int
    def __init__(self, stage: _Optional[str] = ..., where: _Optional[str] = ..., duration_us: _Optional[int] = ...) -> None: ...

class Trigger(_message.Message):
    __slots__ = ("kind", "operator", "evidence")
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    operator: str
    evidence: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., operator: _Optional[str] = ..., evidence: _Optional[_Iterable[str]] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("group", "paths", "epoch", "leader_id", "reason", "trigger", "decided_at_unix_ms", "stages", "fencing_token", "traceparent", "tracestate")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    group: str
    paths: _containers.RepeatedScalarFieldContainer[str]
    epoch: Epoch
    leader_id: str
    reason: str
    trigger: Trigger
    decided_at_unix_ms: int
    stages: _containers.RepeatedCompositeFieldContainer[StageTiming]
    fencing_token: int
    traceparent: str
    tracestate: str
    def __init__(self, group: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ..., epoch: _Optional[_Union[Epoch, _Mapping]] = ..., leader_id: _Optional[str] = ..., reason: _Optional[str] = ..., trigger: _Optional[_Union[Trigger, _Mapping]] = ..., decided_at_unix_ms: _Optional[int] = ..., stages: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., fencing_token: _Optional[int] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class PathHealth(_message.Message):
    __slots__ = ("group", "path", "state", "cause", "rtt_p50_us", "rtt_p99_us", "warmth", "detect_us", "seq")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    RTT_P50_US_FIELD_NUMBER: _ClassVar[int]
    RTT_P99_US_FIELD_NUMBER: _ClassVar[int]
    WARMTH_FIELD_NUMBER: _ClassVar[int]
    DETECT_US_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    group: str
    path: str
    state: PathState
    cause: FailureCause
    rtt_p50_us: int
    rtt_p99_us: int
    warmth: Warmth
    detect_us: int
    seq: int
    def __init__(self, group: _Optional[str] = ..., path: _Optional[str] = ..., state: _Optional[_Union[PathState, str]] = ..., cause: _Optional[_Union[FailureCause, str]] = ..., rtt_p50_us: _Optional[int] = ..., rtt_p99_us: _Optional[int] = ..., warmth: _Optional[_Union[Warmth, str]] = ..., detect_us: _Optional[int] = ..., seq: _Optional[int] = ...) -> None: ...
