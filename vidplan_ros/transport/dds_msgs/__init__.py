"""ROS 2 message types as Cyclone DDS IDL structs, wire-compatible with rmw_cyclonedds.

Each class serialises to the same XCDR1 bytes as the ROS 2 message (checked against the
rosbags Humble typestore in the tests) and uses the rmw_cyclonedds type name
``pkg::msg::dds_::Name_``. Look classes up by ROS type name with :func:`dds_type`.
"""

from vidplan_ros.transport.names import dds_type_name
from vidplan_ros.transport.dds_msgs import (builtin_interfaces, diagnostic_msgs, rosgraph_msgs,
                                            sensor_msgs, std_msgs, trajectory_msgs, unitree_hg)

_MODULES = {
    'builtin_interfaces': builtin_interfaces,
    'std_msgs': std_msgs,
    'sensor_msgs': sensor_msgs,
    'trajectory_msgs': trajectory_msgs,
    'diagnostic_msgs': diagnostic_msgs,
    'rosgraph_msgs': rosgraph_msgs,
    'unitree_hg': unitree_hg,
}

_NAMES = {
    'builtin_interfaces': ('Time', 'Duration'),
    'std_msgs': ('Header', 'Bool', 'MultiArrayDimension', 'MultiArrayLayout',
                 'Float64MultiArray'),
    'sensor_msgs': ('Image', 'CompressedImage', 'RegionOfInterest', 'CameraInfo', 'JointState'),
    'trajectory_msgs': ('JointTrajectoryPoint', 'JointTrajectory'),
    'diagnostic_msgs': ('KeyValue', 'DiagnosticStatus', 'DiagnosticArray'),
    'rosgraph_msgs': ('Clock',),
    'unitree_hg': ('MotorCmd', 'MotorState', 'IMUState', 'LowCmd', 'LowState'),
}

DDS_TYPES: dict[str, type] = {
    f'{pkg}/msg/{name}': getattr(_MODULES[pkg], name)
    for pkg, names in _NAMES.items() for name in names
}


class UnknownRosTypeError(KeyError):
    """Raised by :func:`dds_type` for a ROS type name that has no DDS struct here."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def dds_type(ros_type_name: str) -> type:
    """Return the IDL struct class for a ROS type name like ``'sensor_msgs/msg/Image'``."""
    try:
        return DDS_TYPES[ros_type_name]
    except KeyError:
        known = ', '.join(sorted(DDS_TYPES))
        raise UnknownRosTypeError(
            f'no DDS type registered for ROS type {ros_type_name!r}; known: {known}') from None


__all__ = ['DDS_TYPES', 'UnknownRosTypeError', 'dds_type', 'dds_type_name']
