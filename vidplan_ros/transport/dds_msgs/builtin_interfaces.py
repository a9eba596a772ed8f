"""builtin_interfaces/msg types as Cyclone DDS IDL structs (rmw_cyclonedds names)."""

from dataclasses import dataclass

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t


@dataclass
class Time(IdlStruct, typename='builtin_interfaces::msg::dds_::Time_'):
    sec: t.int32 = 0
    nanosec: t.uint32 = 0


@dataclass
class Duration(IdlStruct, typename='builtin_interfaces::msg::dds_::Duration_'):
    sec: t.int32 = 0
    nanosec: t.uint32 = 0
