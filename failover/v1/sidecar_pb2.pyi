from failover.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_KIND_UNSPECIFIED: _ClassVar[MessageKind]
    MESSAGE_KIND_NEW_ORDER: _ClassVar[MessageKind]
    MESSAGE_KIND_CANCEL: _ClassVar[MessageKind]

class OutcomeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_KIND_UNSPECIFIED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_ACKED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_REJECTED: _ClassVar[OutcomeKind]
    OUTCOME_KIND_IN_DOUBT: _ClassVar[OutcomeKind]
    OUTCOME_KIND_NO_PATH: _ClassVar[OutcomeKind]

class ResolveState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLVE_STATE_UNSPECIFIED: _ClassVar[ResolveState]
    RESOLVE_STATE_ACKED: _ClassVar[ResolveState]
    RESOLVE_STATE_REJECTED: _ClassVar[ResolveState]
    RESOLVE_STATE_UNKNOWN_TO_VENUE: _ClassVar[ResolveState]
    RESOLVE_STATE_STILL_IN_DOUBT: _ClassVar[ResolveState]
MESSAGE_KIND_UNSPECIFIED: MessageKind
MESSAGE_KIND_NEW_ORDER: MessageKind
MESSAGE_KIND_CANCEL: MessageKind
OUTCOME_KIND_UNSPECIFIED: OutcomeKind
OUTCOME_KIND_ACKED: OutcomeKind
OUTCOME_KIND_REJECTED: OutcomeKind
OUTCOME_KIND_IN_DOUBT: OutcomeKind
OUTCOME_KIND_NO_PATH: OutcomeKind
RESOLVE_STATE_UNSPECIFIED: ResolveState
RESOLVE_STATE_ACKED: ResolveState
RESOLVE_STATE_REJECTED: ResolveState
RESOLVE_STATE_UNKNOWN_TO_VENUE: ResolveState
RESOLVE_STATE_STILL_IN_DOUBT: ResolveState

class GetRouteRequest(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: str
    def __init__(self, group: _Optional[str] = ...) -> None: ...

class WatchRouteRequest(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, groups: _Optional[_Iterable[str]] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("group", "effective_path", "decision_paths", "epoch", "reason", "deviates", "halted", "health")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_PATH_FIELD_NUMBER: _ClassVar[int]
    DECISION_PATHS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEVIATES_FIELD_NUMBER: _ClassVar[int]
    HALTED_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    group: str
    effective_path: str
    decision_paths: _containers.RepeatedScalarFieldContainer[str]
    epoch: _types_pb2.Epoch
    reason: str
    deviates: bool
    halted: bool
    health: _containers.RepeatedCompositeFieldContainer[_types_pb2.PathHealth]
    def __init__(self, group: _Optional[str] = ..., effective_path: _Optional[str] = ..., decision_paths: _Optional[_Iterable[str]] = ..., epoch: _Optional[_Union[_types_pb2.Epoch, _Mapping]] = ..., reason: _Optional[str] = ..., deviates: _Optional[bool] = ..., halted: _Optional[bool] = ..., health: _Optional[_Iterable[_Union[_types_pb2.PathHealth, _Mapping]]] = ...) -> None: ...

class RelayOpen(_message.Message):
    __slots__ = ("strategy_id",)
    STRATEGY_ID_FIELD_NUMBER: _ClassVar[int]
    strategy_id: str
    def __init__(self, strategy_id: _Optional[str] = ...) -> None: ...

class RelayMessage(_message.Message):
    __slots__ = ("group", "client_msg_id", "kind", "payload", "cancel_msg_id")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CANCEL_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    group: str
    client_msg_id: int
    kind: MessageKind
    payload: bytes
    cancel_msg_id: int
    def __init__(self, group: _Optional[str] = ..., client_msg_id: _Optional[int] = ..., kind: _Optional[_Union[MessageKind, str]] = ..., payload: _Optional[bytes] = ..., cancel_msg_id: _Optional[int] = ...) -> None: ...

class RelayPing(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class RelayPong(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class RelayRequest(_message.Message):
    __slots__ = ("open", "message", "ping")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    open: RelayOpen
    message: RelayMessage
    ping: RelayPing
    def __init__(self, open: _Optional[_Union[RelayOpen, _Mapping]] = ..., message: _Optional[_Union[RelayMessage, _Mapping]] = ..., ping: _Optional[_Union[RelayPing, _Mapping]] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("client_msg_id", "kind", "path", "reason", "venue_order_id", "client_order_id", "stages")
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VENUE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    client_msg_id: int
    kind: OutcomeKind
    path: str
    reason: str
    venue_order_id: str
    client_order_id: str
    stages: _containers.RepeatedCompositeFieldContainer[_types_pb2.StageTiming]
    def __init__(self, client_msg_id: _Optional[int] = ..., kind: _Optional[_Union[OutcomeKind, str]] = ..., path: _Optional[str] = ..., reason: _Optional[str] = ..., venue_order_id: _Optional[str] = ..., client_order_id: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[_types_pb2.StageTiming, _Mapping]]] = ...) -> None: ...

class VenueEvent(_message.Message):
    __slots__ = ("client_msg_id", "kind", "path", "client_order_id", "payload")
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    client_msg_id: int
    kind: str
    path: str
    client_order_id: str
    payload: bytes
    def __init__(self, client_msg_id: _Optional[int] = ..., kind: _Optional[str] = ..., path: _Optional[str] = ..., client_order_id: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class RelayClosed(_message.Message):
    __slots__ = ("reason", "nothing_relayed")
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTHING_RELAYED_FIELD_NUMBER: _ClassVar[int]
    reason: str
    nothing_relayed: bool
    def __init__(self, reason: _Optional[str] = ..., nothing_relayed: _Optional[bool] = ...) -> None: ...

class RelayEvent(_message.Message):
    __slots__ = ("outcome", "venue_event", "closed", "pong")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    VENUE_EVENT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    outcome: Outcome
    venue_event: VenueEvent
    closed: RelayClosed
    pong: RelayPong
    def __init__(self, outcome: _Optional[_Union[Outcome, _Mapping]] = ..., venue_event: _Optional[_Union[VenueEvent, _Mapping]] = ..., closed: _Optional[_Union[RelayClosed, _Mapping]] = ..., pong: _Optional[_Union[RelayPong, _Mapping]] = ...) -> None: ...

class ResolveInDoubtRequest(_message.Message):
    __slots__ = ("strategy_id", "group", "client_msg_ids")
    STRATEGY_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_IDS_FIELD_NUMBER: _ClassVar[int]
    strategy_id: str
    group: str
    client_msg_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, strategy_id: _Optional[str] = ..., group: _Optional[str] = ..., client_msg_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Resolution(_message.Message):
    __slots__ = ("client_msg_id", "state", "detail")
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    client_msg_id: int
    state: ResolveState
    detail: str
    def __init__(self, client_msg_id: _Optional[int] = ..., state: _Optional[_Union[ResolveState, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ResolveInDoubtResponse(_message.Message):
    __slots__ = ("resolutions",)
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    resolutions: _containers.RepeatedCompositeFieldContainer[Resolution]
    def __init__(self, resolutions: _Optional[_Iterable[_Union[Resolution, _Mapping]]] = ...) -> None: ...

class SidecarStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SidecarLocalStatus(_message.Message):
    __slots__ = ("host_id", "site", "replica", "control_plane_connected", "routes", "counters", "flips")
    class CountersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    CONTROL_PLANE_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    FLIPS_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    site: str
    replica: str
    control_plane_connected: bool
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    counters: _containers.ScalarMap[str, int]
    flips: _containers.RepeatedCompositeFieldContainer[Flip]
    def __init__(self, host_id: _Optional[str] = ..., site: _Optional[str] = ..., replica: _Optional[str] = ..., control_plane_connected: _Optional[bool] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., counters: _Optional[_Mapping[str, int]] = ..., flips: _Optional[_Iterable[_Union[Flip, _Mapping]]] = ...) -> None: ...

class Flip(_message.Message):
    __slots__ = ("group", "from_path", "to_path", "trigger", "cause", "detect_us", "flip_us", "first_ack_us", "epoch", "at_unix_ms", "in_doubt", "at_monotonic_ns")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    FROM_PATH_FIELD_NUMBER: _ClassVar[int]
    TO_PATH_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    DETECT_US_FIELD_NUMBER: _ClassVar[int]
    FLIP_US_FIELD_NUMBER: _ClassVar[int]
    FIRST_ACK_US_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    IN_DOUBT_FIELD_NUMBER: _ClassVar[int]
    AT_MONOTONIC_NS_FIELD_NUMBER: _ClassVar[int]
    group: str
    from_path: str
    to_path: str
    trigger: str
    cause: str
    detect_us: int
    flip_us: int
    first_ack_us: int
    epoch: _types_pb2.Epoch
    at_unix_ms: int
    in_doubt: int
    at_monotonic_ns: int
    def __init__(self, group: _Optional[str] = ..., from_path: _Optional[str] = ..., to_path: _Optional[str] = ..., trigger: _Optional[str] = ..., cause: _Optional[str] = ..., detect_us: _Optional[int] = ..., flip_us: _Optional[int] = ..., first_ack_us: _Optional[int] = ..., epoch: _Optional[_Union[_types_pb2.Epoch, _Mapping]] = ..., at_unix_ms: _Optional[int] = ..., in_doubt: _Optional[int] = ..., at_monotonic_ns: _Optional[int] = ...) -> None: ...
