"""The rclpy backend on a ROS 2 host, and rclpy <-> Cyclone DDS backend interop.

Skipped where ROS 2 is not installed (these development machines cannot install it); run on a
ROS 2 Humble/Jazzy host with the workspace sourced.
"""

import os
import time

import pytest

rclpy = pytest.importorskip(
    'rclpy', reason='ROS 2 (rclpy) is not installed here; run this test on a ROS 2 host')

from vidplan_ros.transport import QoS, create_node  # noqa: E402


@pytest.fixture()
def ros_node():
    node = create_node('vidplan_rclpy_test', backend='rclpy')
    yield node
    node.shutdown()


def test_params_declared_from_the_config_dataclass(ros_node):
    cfg = ros_node.load_config(QoS)
    assert cfg == QoS()
    assert ros_node.ros_node.get_parameter('depth').value == 10


def test_messages_and_clock(ros_node):
    Msg = ros_node.msg_type('sensor_msgs/msg/JointState')
    assert Msg.__module__.startswith('sensor_msgs')
    assert abs(ros_node.now_s() - time.time()) < 1.0


@pytest.mark.skipif(os.environ.get('RMW_IMPLEMENTATION') != 'rmw_cyclonedds_cpp',
                    reason='interop check needs RMW_IMPLEMENTATION=rmw_cyclonedds_cpp')
def test_rclpy_publisher_reaches_dds_backend_subscriber(ros_node):
    dds = create_node('vidplan_dds_peer', backend='dds')
    got = []
    dds.create_subscription('sensor_msgs/msg/JointState', '/vidplan_interop', got.append)
    pub = ros_node.create_publisher('sensor_msgs/msg/JointState', '/vidplan_interop')
    msg = ros_node.msg_type('sensor_msgs/msg/JointState')(name=['a'], position=[1.5])
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        pub.publish(msg)
        ros_node.spin_once(0.05)
        dds.spin_once(0.05)
    assert got and got[0].name == ['a'] and got[0].position == [1.5]
