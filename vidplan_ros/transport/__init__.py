"""How nodes reach the middleware: rclpy on a ROS 2 host, Cyclone DDS without one.

    node = create_node('executor', argv=sys.argv)        # picks the backend
    pub = node.create_publisher('trajectory_msgs/msg/JointTrajectory', '/arm/joint_trajectory')
    msg = node.msg_type('trajectory_msgs/msg/JointTrajectory')()

`VIDPLAN_TRANSPORT=dds|rclpy` (or `backend=`) forces a backend; `auto` uses rclpy when it
imports. Importing this package does not import rclpy or cyclonedds.
"""

from __future__ import annotations

import importlib.util
import os

from vidplan_ros.transport.base import Node, NodeArgs, parse_ros_args
from vidplan_ros.transport.qos import (QOS_CLOCK, QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA,
                                       QOS_SYSTEM_DEFAULT, QoS)

BACKENDS = ('auto', 'rclpy', 'dds')

__all__ = ['BACKENDS', 'Node', 'NodeArgs', 'QoS', 'QOS_CLOCK', 'QOS_DEFAULT', 'QOS_LATCHED',
           'QOS_SENSOR_DATA', 'QOS_SYSTEM_DEFAULT', 'create_node', 'pick_backend']


def pick_backend(backend: str | None = None) -> str:
    """Resolve `auto` (the default, or $VIDPLAN_TRANSPORT) to `rclpy` or `dds`."""
    choice = backend or os.environ.get('VIDPLAN_TRANSPORT', 'auto')
    if choice not in BACKENDS:
        raise ValueError(f'transport backend {choice!r} is not one of {list(BACKENDS)} '
                         '(check VIDPLAN_TRANSPORT)')
    if choice == 'auto':
        return 'rclpy' if importlib.util.find_spec('rclpy') is not None else 'dds'
    return choice


def create_node(name: str, argv: list[str] | None = None, backend: str | None = None,
                domain_id: int | None = None) -> Node:
    """A node on the chosen backend; `argv` may carry `--ros-args` (params files, -p, name)."""
    chosen = pick_backend(backend)
    if chosen == 'rclpy':  # rcl itself applies --ros-args (params files, remaps, name)
        from vidplan_ros.transport.rclpy_backend import RclpyNode
        return RclpyNode(name, argv=list(argv or []))
    from vidplan_ros.transport.dds_backend import DdsNode
    return DdsNode(name, parse_ros_args(list(argv or [])), domain_id=domain_id)
