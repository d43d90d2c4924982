from failover.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hello(_message.Message):
    __slots__ = ("host_id", "site", "groups", "held", "version", "instance")
    class HeldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _types_pb2.Epoch
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_types_pb2.Epoch, _Mapping]] = ...) -> None: ...
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    site: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    held: _containers.MessageMap[str, _types_pb2.Epoch]
    version: str
    instance: str
    def __init__(self, host_id: _Optional[str] = ..., site: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., held: _Optional[_Mapping[str, _types_pb2.Epoch]] = ..., version: _Optional[str] = ..., instance: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("group", "epoch", "stages")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    group: str
    epoch: _types_pb2.Epoch
    stages: _containers.RepeatedCompositeFieldContainer[_types_pb2.StageTiming]
    def __init__(self, group: _Optional[str] = ..., epoch: _Optional[_Union[_types_pb2.Epoch, _Mapping]] = ..., stages: _Optional[_Iterable[_Union[_types_pb2.StageTiming, _Mapping]]] = ...) -> None: ...

class HealthReport(_message.Message):
    __slots__ = ("full", "paths", "effective", "traceparent", "tracestate")
    class EffectiveEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FULL_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    full: bool
    paths: _containers.RepeatedCompositeFieldContainer[_types_pb2.PathHealth]
    effective: _containers.ScalarMap[str, str]
    traceparent: str
    tracestate: str
    def __init__(self, full: _Optional[bool] = ..., paths: _Optional[_Iterable[_Union[_types_pb2.PathHealth, _Mapping]]] = ..., effective: _Optional[_Mapping[str, str]] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class SidecarMessage(_message.Message):
    __slots__ = ("hello", "ack", "health")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    ack: Ack
    health: HealthReport
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., health: _Optional[_Union[HealthReport, _Mapping]] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("groups", "decisions", "freshness", "replace_held", "unknown_groups")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_HELD_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[_types_pb2.GroupDefinition]
    decisions: _containers.RepeatedCompositeFieldContainer[_types_pb2.Decision]
    freshness: Freshness
    replace_held: _containers.RepeatedScalarFieldContainer[str]
    unknown_groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, groups: _Optional[_Iterable[_Union[_types_pb2.GroupDefinition, _Mapping]]] = ..., decisions: _Optional[_Iterable[_Union[_types_pb2.Decision, _Mapping]]] = ..., freshness: _Optional[_Union[Freshness, _Mapping]] = ..., replace_held: _Optional[_Iterable[str]] = ..., unknown_groups: _Optional[_Iterable[str]] = ...) -> None: ...

class Freshness(_message.Message):
    __slots__ = ("replica_id", "applied_revision", "lag_revisions", "stale", "stale_reason", "era", "heartbeat_interval_ms")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    LAG_REVISIONS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    STALE_REASON_FIELD_NUMBER: _ClassVar[int]
    ERA_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    applied_revision: int
    lag_revisions: int
    stale: bool
    stale_reason: str
    era: int
    heartbeat_interval_ms: int
    def __init__(self, replica_id: _Optional[str] = ..., applied_revision: _Optional[int] = ..., lag_revisions: _Optional[int] = ..., stale: _Optional[bool] = ..., stale_reason: _Optional[str] = ..., era: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("freshness", "sent_unix_ms")
    FRESHNESS_FIELD_NUMBER: _ClassVar[int]
    SENT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    freshness: Freshness
    sent_unix_ms: int
    def __init__(self, freshness: _Optional[_Union[Freshness, _Mapping]] = ..., sent_unix_ms: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReplicaMessage(_message.Message):
    __slots__ = ("snapshot", "group", "decision", "heartbeat", "health_request")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    HEALTH_REQUEST_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    group: _types_pb2.GroupDefinition
    decision: _types_pb2.Decision
    heartbeat: Heartbeat
    health_request: HealthRequest
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., group: _Optional[_Union[_types_pb2.GroupDefinition, _Mapping]] = ..., decision: _Optional[_Union[_types_pb2.Decision, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., health_request: _Optional[_Union[HealthRequest, _Mapping]] = ...) -> None: ...
