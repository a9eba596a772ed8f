"""trajectory_msgs/msg types as Cyclone DDS IDL structs (rmw_cyclonedds names)."""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from vidplan_ros.transport.dds_msgs.builtin_interfaces import Duration
from vidplan_ros.transport.dds_msgs.std_msgs import Header


@dataclass
class JointTrajectoryPoint(IdlStruct,
                           typename='trajectory_msgs::msg::dds_::JointTrajectoryPoint_'):
    positions: t.sequence[t.float64] = field(default_factory=list)
    velocities: t.sequence[t.float64] = field(default_factory=list)
    accelerations: t.sequence[t.float64] = field(default_factory=list)
    effort: t.sequence[t.float64] = field(default_factory=list)
    time_from_start: Duration = field(default_factory=Duration)


@dataclass
class JointTrajectory(IdlStruct, typename='trajectory_msgs::msg::dds_::JointTrajectory_'):
    header: Header = field(default_factory=Header)
    joint_names: t.sequence[str] = field(default_factory=list)
    points: t.sequence[JointTrajectoryPoint] = field(default_factory=list)
