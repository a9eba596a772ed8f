"""diagnostic_msgs/msg types as Cyclone DDS IDL structs (rmw_cyclonedds names)."""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from vidplan_ros.transport.dds_msgs.std_msgs import Header


@dataclass
class KeyValue(IdlStruct, typename='diagnostic_msgs::msg::dds_::KeyValue_'):
    key: str = ''
    value: str = ''


@dataclass
class DiagnosticStatus(IdlStruct, typename='diagnostic_msgs::msg::dds_::DiagnosticStatus_'):
    # Level constants. Deliberately unannotated: annotated class attributes would become
    # dataclass/IDL fields (cyclonedds rejects ClassVar annotations).
    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3

    level: t.byte = 0
    name: str = ''
    message: str = ''
    hardware_id: str = ''
    values: t.sequence[KeyValue] = field(default_factory=list)


@dataclass
class DiagnosticArray(IdlStruct, typename='diagnostic_msgs::msg::dds_::DiagnosticArray_'):
    header: Header = field(default_factory=Header)
    status: t.sequence[DiagnosticStatus] = field(default_factory=list)
