from failover.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ControlAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTROL_ACTION_UNSPECIFIED: _ClassVar[ControlAction]
    CONTROL_ACTION_DRAIN: _ClassVar[ControlAction]
    CONTROL_ACTION_UNDRAIN: _ClassVar[ControlAction]
    CONTROL_ACTION_PIN: _ClassVar[ControlAction]
    CONTROL_ACTION_UNPIN: _ClassVar[ControlAction]
    CONTROL_ACTION_PAUSE: _ClassVar[ControlAction]
    CONTROL_ACTION_RESUME: _ClassVar[ControlAction]
    CONTROL_ACTION_HALT: _ClassVar[ControlAction]
CONTROL_ACTION_UNSPECIFIED: ControlAction
CONTROL_ACTION_DRAIN: ControlAction
CONTROL_ACTION_UNDRAIN: ControlAction
CONTROL_ACTION_PIN: ControlAction
CONTROL_ACTION_UNPIN: ControlAction
CONTROL_ACTION_PAUSE: ControlAction
CONTROL_ACTION_RESUME: ControlAction
CONTROL_ACTION_HALT: ControlAction

class GetStatusRequest(_message.Message):
    __slots__ = ("hosts", "group", "host_limit", "hosts_after")
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    HOST_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HOSTS_AFTER_FIELD_NUMBER: _ClassVar[int]
    hosts: bool
    group: str
    host_limit: int
    hosts_after: str
    def __init__(self, hosts: _Optional[bool] = ..., group: _Optional[str] = ..., host_limit: _Optional[int] = ..., hosts_after: _Optional[str] = ...) -> None: ...

class LeaderInfo(_message.Message):
    __slots__ = ("replica_id", "address", "fencing_token")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    address: str
    fencing_token: int
    def __init__(self, replica_id: _Optional[str] = ..., address: _Optional[str] = ..., fencing_token: _Optional[int] = ...) -> None: ...

class SidecarStatus(_message.Message):
    __slots__ = ("host_id", "site", "acked", "health", "connected_for_ms", "effective", "push_to_ack_us", "apply_us", "groups", "version", "instance", "heard_ms_ago")
    class AckedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _types_pb2.Epoch
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_types_pb2.Epoch, _Mapping]] = ...) -> None: ...
    class EffectiveEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class PushToAckUsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ApplyUsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    PUSH_TO_ACK_US_FIELD_NUMBER: _ClassVar[int]
    APPLY_US_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    HEARD_MS_AGO_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    site: str
    acked: _containers.MessageMap[str, _types_pb2.Epoch]
    health: _containers.RepeatedCompositeFieldContainer[_types_pb2.PathHealth]
    connected_for_ms: int
    effective: _containers.ScalarMap[str, str]
    push_to_ack_us: _containers.ScalarMap[str, int]
    apply_us: _containers.ScalarMap[str, int]
    groups: _containers.RepeatedScalarFieldContainer[str]
    version: str
    instance: str
    heard_ms_ago: int
    def __init__(self, host_id: _Optional[str] = ..., site: _Optional[str] = ..., acked: _Optional[_Mapping[str, _types_pb2.Epoch]] = ..., health: _Optional[_Iterable[_Union[_types_pb2.PathHealth, _Mapping]]] = ..., connected_for_ms: _Optional[int] = ..., effective: _Optional[_Mapping[str, str]] = ..., push_to_ack_us: _Optional[_Mapping[str, int]] = ..., apply_us: _Optional[_Mapping[str, int]] = ..., groups: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., instance: _Optional[str] = ..., heard_ms_ago: _Optional[int] = ...) -> None: ...

class CommitRecord(_message.Message):
    __slots__ = ("group", "epoch", "commit_us", "reason")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMMIT_US_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    group: str
    epoch: _types_pb2.Epoch
    commit_us: int
    reason: str
    def __init__(self, group: _Optional[str] = ..., epoch: _Optional[_Union[_types_pb2.Epoch, _Mapping]] = ..., commit_us: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ReplicaStatus(_message.Message):
    __slots__ = ("replica_id", "address", "is_leader", "applied_revision", "lag_revisions", "stale", "stale_reason", "sidecars", "reachable", "error", "recent_commits", "degraded_groups", "sidecar_count", "host_counts", "deviating_total", "next_host", "path_health", "streams_only")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    LAG_REVISIONS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    STALE_REASON_FIELD_NUMBER: _ClassVar[int]
    SIDECARS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RECENT_COMMITS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    SIDECAR_COUNT_FIELD_NUMBER: _ClassVar[int]
    HOST_COUNTS_FIELD_NUMBER: _ClassVar[int]
    DEVIATING_TOTAL_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOST_FIELD_NUMBER: _ClassVar[int]
    PATH_HEALTH_FIELD_NUMBER: _ClassVar[int]
    STREAMS_ONLY_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    address: str
    is_leader: bool
    applied_revision: int
    lag_revisions: int
    stale: bool
    stale_reason: str
    sidecars: _containers.RepeatedCompositeFieldContainer[SidecarStatus]
    reachable: bool
    error: str
    recent_commits: _containers.RepeatedCompositeFieldContainer[CommitRecord]
    degraded_groups: _containers.RepeatedScalarFieldContainer[str]
    sidecar_count: int
    host_counts: _containers.RepeatedCompositeFieldContainer[HostCount]
    deviating_total: int
    next_host: str
    path_health: _containers.RepeatedCompositeFieldContainer[PathJudgement]
    streams_only: bool
    def __init__(self, replica_id: _Optional[str] = ..., address: _Optional[str] = ..., is_leader: _Optional[bool] = ..., applied_revision: _Optional[int] = ..., lag_revisions: _Optional[int] = ..., stale: _Optional[bool] = ..., stale_reason: _Optional[str] = ..., sidecars: _Optional[_Iterable[_Union[SidecarStatus, _Mapping]]] = ..., reachable: _Optional[bool] = ..., error: _Optional[str] = ..., recent_commits: _Optional[_Iterable[_Union[CommitRecord, _Mapping]]] = ..., degraded_groups: _Optional[_Iterable[str]] = ..., sidecar_count: _Optional[int] = ..., host_counts: _Optional[_Iterable[_Union[HostCount, _Mapping]]] = ..., deviating_total: _Optional[int] = ..., next_host: _Optional[str] = ..., path_health: _Optional[_Iterable[_Union[PathJudgement, _Mapping]]] = ..., streams_only: _Optional[bool] = ...) -> None: ...

class PathJudgement(_message.Message):
    __slots__ = ("group", "path", "reporting", "up", "down", "slow", "failing", "healthy")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REPORTING_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    DOWN_FIELD_NUMBER: _ClassVar[int]
    SLOW_FIELD_NUMBER: _ClassVar[int]
    FAILING_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    group: str
    path: str
    reporting: int
    up: int
    down: int
    slow: int
    failing: bool
    healthy: bool
    def __init__(self, group: _Optional[str] = ..., path: _Optional[str] = ..., reporting: _Optional[int] = ..., up: _Optional[int] = ..., down: _Optional[int] = ..., slow: _Optional[int] = ..., failing: _Optional[bool] = ..., healthy: _Optional[bool] = ...) -> None: ...

class HostCount(_message.Message):
    __slots__ = ("group", "acked", "effective", "hosts")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    group: str
    acked: _types_pb2.Epoch
    effective: str
    hosts: int
    def __init__(self, group: _Optional[str] = ..., acked: _Optional[_Union[_types_pb2.Epoch, _Mapping]] = ..., effective: _Optional[str] = ..., hosts: _Optional[int] = ...) -> None: ...

class GroupStatus(_message.Message):
    __slots__ = ("definition", "decision", "degraded", "controls")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    CONTROLS_FIELD_NUMBER: _ClassVar[int]
    definition: _types_pb2.GroupDefinition
    decision: _types_pb2.Decision
    degraded: bool
    controls: str
    def __init__(self, definition: _Optional[_Union[_types_pb2.GroupDefinition, _Mapping]] = ..., decision: _Optional[_Union[_types_pb2.Decision, _Mapping]] = ..., degraded: _Optional[bool] = ..., controls: _Optional[str] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("leader", "era", "revision", "replicas", "groups", "alarms", "restore_detected")
    LEADER_FIELD_NUMBER: _ClassVar[int]
    ERA_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ALARMS_FIELD_NUMBER: _ClassVar[int]
    RESTORE_DETECTED_FIELD_NUMBER: _ClassVar[int]
    leader: LeaderInfo
    era: int
    revision: int
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaStatus]
    groups: _containers.RepeatedCompositeFieldContainer[GroupStatus]
    alarms: _containers.RepeatedScalarFieldContainer[str]
    restore_detected: bool
    def __init__(self, leader: _Optional[_Union[LeaderInfo, _Mapping]] = ..., era: _Optional[int] = ..., revision: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[ReplicaStatus, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[GroupStatus, _Mapping]]] = ..., alarms: _Optional[_Iterable[str]] = ..., restore_detected: _Optional[bool] = ...) -> None: ...

class SwitchRequest(_message.Message):
    __slots__ = ("group", "path", "reason", "operator", "force")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    group: str
    path: str
    reason: str
    operator: str
    force: bool
    def __init__(self, group: _Optional[str] = ..., path: _Optional[str] = ..., reason: _Optional[str] = ..., operator: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class SetControlRequest(_message.Message):
    __slots__ = ("action", "group", "path", "reason", "operator", "force")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    action: ControlAction
    group: str
    path: str
    reason: str
    operator: str
    force: bool
    def __init__(self, action: _Optional[_Union[ControlAction, str]] = ..., group: _Optional[str] = ..., path: _Optional[str] = ..., reason: _Optional[str] = ..., operator: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class ControlResponse(_message.Message):
    __slots__ = ("decision", "message")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    decision: _types_pb2.Decision
    message: str
    def __init__(self, decision: _Optional[_Union[_types_pb2.Decision, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class PutGroupRequest(_message.Message):
    __slots__ = ("definition", "expected_mod_revision", "create_only")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_MOD_REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    definition: _types_pb2.GroupDefinition
    expected_mod_revision: int
    create_only: bool
    def __init__(self, definition: _Optional[_Union[_types_pb2.GroupDefinition, _Mapping]] = ..., expected_mod_revision: _Optional[int] = ..., create_only: _Optional[bool] = ...) -> None: ...

class PutGroupResponse(_message.Message):
    __slots__ = ("definition",)
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    definition: _types_pb2.GroupDefinition
    def __init__(self, definition: _Optional[_Union[_types_pb2.GroupDefinition, _Mapping]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("group", "limit")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    group: str
    limit: int
    def __init__(self, group: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[_types_pb2.Decision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[_types_pb2.Decision, _Mapping]]] = ...) -> None: ...

class BumpEraRequest(_message.Message):
    __slots__ = ("operator", "reason", "expected_era")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ERA_FIELD_NUMBER: _ClassVar[int]
    operator: str
    reason: str
    expected_era: int
    def __init__(self, operator: _Optional[str] = ..., reason: _Optional[str] = ..., expected_era: _Optional[int] = ...) -> None: ...

class BumpEraResponse(_message.Message):
    __slots__ = ("era",)
    ERA_FIELD_NUMBER: _ClassVar[int]
    era: int
    def __init__(self, era: _Optional[int] = ...) -> None: ...

class HealthForward(_message.Message):
    __slots__ = ("replica_id", "hosts", "complete")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    hosts: _containers.RepeatedCompositeFieldContainer[HostHealth]
    complete: bool
    def __init__(self, replica_id: _Optional[str] = ..., hosts: _Optional[_Iterable[_Union[HostHealth, _Mapping]]] = ..., complete: _Optional[bool] = ...) -> None: ...

class HostHealth(_message.Message):
    __slots__ = ("host_id", "site", "full", "gone", "paths", "stages", "traceparent", "tracestate", "state_seq")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    GONE_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    STATE_SEQ_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    site: str
    full: bool
    gone: bool
    paths: _containers.RepeatedCompositeFieldContainer[_types_pb2.PathHealth]
    stages: _containers.RepeatedCompositeFieldContainer[_types_pb2.StageTiming]
    traceparent: str
    tracestate: str
    state_seq: int
    def __init__(self, host_id: _Optional[str] = ..., site: _Optional[str] = ..., full: _Optional[bool] = ..., gone: _Optional[bool] = ..., paths: _Optional[_Iterable[_Union[_types_pb2.PathHealth, _Mapping]]] = ..., stages: _Optional[_Iterable[_Union[_types_pb2.StageTiming, _Mapping]]] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ..., state_seq: _Optional[int] = ...) -> None: ...

class ForwardAck(_message.Message):
    __slots__ = ("is_leader",)
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    is_leader: bool
    def __init__(self, is_leader: _Optional[bool] = ...) -> None: ...

class CollectHealthRequest(_message.Message):
    __slots__ = ("leader_id",)
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    leader_id: str
    def __init__(self, leader_id: _Optional[str] = ...) -> None: ...

class PrepareToLeadRequest(_message.Message):
    __slots__ = ("leader_id",)
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    leader_id: str
    def __init__(self, leader_id: _Optional[str] = ...) -> None: ...

class PrepareToLeadResponse(_message.Message):
    __slots__ = ("serving", "replicas_answered")
    SERVING_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    serving: bool
    replicas_answered: int
    def __init__(self, serving: _Optional[bool] = ..., replicas_answered: _Optional[int] = ...) -> None: ...

class LocalStatusRequest(_message.Message):
    __slots__ = ("hosts", "group", "host_limit", "hosts_after")
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    HOST_LIMIT_FIELD_NUMBER: _ClassVar[int]
    HOSTS_AFTER_FIELD_NUMBER: _ClassVar[int]
    hosts: bool
    group: str
    host_limit: int
    hosts_after: str
    def __init__(self, hosts: _Optional[bool] = ..., group: _Optional[str] = ..., host_limit: _Optional[int] = ..., hosts_after: _Optional[str] = ...) -> None: ...
