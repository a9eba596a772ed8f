"""ROS 2 name rules and their DDS spelling (robots.md §4.1–4.2)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


def resolve_topic(name: str, namespace: str = '', node_name: str = '') -> str:
    """Fully qualified ROS topic name: `/abs` stays, `rel` gets the namespace, `~/x` the node."""
    if not name:
        raise ValueError('empty topic name')
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    if name.startswith('~'):
        if not node_name:
            raise ValueError(f'{name!r}: a private (~) name needs a node name')
        full = f'{ns}/{node_name}{name[1:]}'
    elif name.startswith('/'):
        full = name
    else:
        full = f'{ns}/{name}'
    parts = full.strip('/').split('/')
    bad = [p for p in parts if not _TOKEN.match(p)]
    if bad:
        raise ValueError(f'invalid ROS topic name {full!r}: tokens {bad} must be letters, digits '
                         'and underscores, not starting with a digit')
    return full


def dds_topic_name(ros_topic: str) -> str:
    """The DDS topic behind fully qualified ROS topic `/a/b`: `rt/a/b`."""
    if not ros_topic.startswith('/'):
        raise ValueError(f'{ros_topic!r} is not fully qualified (resolve it first)')
    return 'rt' + ros_topic


def dds_type_name(ros_type: str) -> str:
    """`sensor_msgs/msg/Image` -> `sensor_msgs::msg::dds_::Image_` (rmw_cyclonedds rule)."""
    *pkg, name = ros_type.split('/')
    if len(pkg) != 2 or not name:
        raise ValueError(f'{ros_type!r} is not a ROS type name like sensor_msgs/msg/Image')
    return '::'.join(pkg) + f'::dds_::{name}_'
