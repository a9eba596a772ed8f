"""rosgraph_msgs/msg types as Cyclone DDS IDL structs (rmw_cyclonedds names)."""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct

from vidplan_ros.transport.dds_msgs.builtin_interfaces import Time


@dataclass
class Clock(IdlStruct, typename='rosgraph_msgs::msg::dds_::Clock_'):
    clock: Time = field(default_factory=Time)
