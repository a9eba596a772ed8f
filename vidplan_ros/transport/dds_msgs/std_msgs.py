"""std_msgs/msg types as Cyclone DDS IDL structs (rmw_cyclonedds names)."""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from vidplan_ros.transport.dds_msgs.builtin_interfaces import Time


@dataclass
class Header(IdlStruct, typename='std_msgs::msg::dds_::Header_'):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ''


@dataclass
class Bool(IdlStruct, typename='std_msgs::msg::dds_::Bool_'):
    data: bool = False


@dataclass
class MultiArrayDimension(IdlStruct, typename='std_msgs::msg::dds_::MultiArrayDimension_'):
    label: str = ''
    size: t.uint32 = 0
    stride: t.uint32 = 0


@dataclass
class MultiArrayLayout(IdlStruct, typename='std_msgs::msg::dds_::MultiArrayLayout_'):
    dim: t.sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: t.uint32 = 0


@dataclass
class Float64MultiArray(IdlStruct, typename='std_msgs::msg::dds_::Float64MultiArray_'):
    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: t.sequence[t.float64] = field(default_factory=list)
