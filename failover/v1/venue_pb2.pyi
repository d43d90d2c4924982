from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_KIND_UNSPECIFIED: _ClassVar[FaultKind]
    FAULT_KIND_RESET: _ClassVar[FaultKind]
    FAULT_KIND_STALL: _ClassVar[FaultKind]
    FAULT_KIND_SLOW: _ClassVar[FaultKind]
    FAULT_KIND_LOGON_REFUSED: _ClassVar[FaultKind]
    FAULT_KIND_RECOVER: _ClassVar[FaultKind]
FAULT_KIND_UNSPECIFIED: FaultKind
FAULT_KIND_RESET: FaultKind
FAULT_KIND_STALL: FaultKind
FAULT_KIND_SLOW: FaultKind
FAULT_KIND_LOGON_REFUSED: FaultKind
FAULT_KIND_RECOVER: FaultKind

class FaultRequest(_message.Message):
    __slots__ = ("gateway", "session", "kind", "delay_ms")
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    gateway: str
    session: str
    kind: FaultKind
    delay_ms: int
    def __init__(self, gateway: _Optional[str] = ..., session: _Optional[str] = ..., kind: _Optional[_Union[FaultKind, str]] = ..., delay_ms: _Optional[int] = ...) -> None: ...

class FaultResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class VenueEventRequest(_message.Message):
    __slots__ = ("kind", "client_order_id", "quantity")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    kind: str
    client_order_id: str
    quantity: int
    def __init__(self, kind: _Optional[str] = ..., client_order_id: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class VenueEventResponse(_message.Message):
    __slots__ = ("gateway", "session")
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    gateway: str
    session: str
    def __init__(self, gateway: _Optional[str] = ..., session: _Optional[str] = ...) -> None: ...

class CountersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GatewayCounters(_message.Message):
    __slots__ = ("name", "address", "connections_opened", "logons", "logons_by_session", "orders", "duplicates", "cancels", "active_sessions", "faults")
    class LogonsBySessionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_OPENED_FIELD_NUMBER: _ClassVar[int]
    LOGONS_FIELD_NUMBER: _ClassVar[int]
    LOGONS_BY_SESSION_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    CANCELS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    connections_opened: int
    logons: int
    logons_by_session: _containers.ScalarMap[str, int]
    orders: int
    duplicates: int
    cancels: int
    active_sessions: int
    faults: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., connections_opened: _Optional[int] = ..., logons: _Optional[int] = ..., logons_by_session: _Optional[_Mapping[str, int]] = ..., orders: _Optional[int] = ..., duplicates: _Optional[int] = ..., cancels: _Optional[int] = ..., active_sessions: _Optional[int] = ..., faults: _Optional[_Iterable[str]] = ...) -> None: ...

class Counters(_message.Message):
    __slots__ = ("gateways", "orders", "duplicates", "open_orders")
    GATEWAYS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    gateways: _containers.RepeatedCompositeFieldContainer[GatewayCounters]
    orders: int
    duplicates: int
    open_orders: int
    def __init__(self, gateways: _Optional[_Iterable[_Union[GatewayCounters, _Mapping]]] = ..., orders: _Optional[int] = ..., duplicates: _Optional[int] = ..., open_orders: _Optional[int] = ...) -> None: ...
