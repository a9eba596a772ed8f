"""rclpy nodes (Fast DDS) and Cyclone-DDS-backend nodes exchange every message type the node
graph uses, on the wire, in both directions (DESIGN.md §3: ROS 2 topics are DDS topics).

A child process runs an rclpy node (rclpy_echo_child.py) that echoes what it receives; this
process is a dds-backend node that sends random messages (dds_msg_random, the same values the
CDR tests check against rosbags) and checks the echoes field by field. So each message goes
Cyclone -> Fast DDS -> an rclpy message -> Fast DDS -> Cyclone. Discovery between the two
vendors needs nothing but the same ROS_DOMAIN_ID (conftest): Cyclone's loopback-only config
(dds_config) sends SPDP by unicast to 127.0.0.1 on the standard RTPS ports, where Fast DDS's
default participants listen.

unitree_hg LowCmd/LowState are not checked here: unitree_hg is not on PyPI (no rclpy type).
"""

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip('rclpy', reason='rclpy does not import here (pip install -e .[ros])')

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dds_msg_random import first_difference, make_typestore, random_pair  # noqa: E402
from rclpy_echo_child import topic  # noqa: E402

from vidplan_ros.transport import create_node  # noqa: E402

CHILD = Path(__file__).resolve().parent / 'rclpy_echo_child.py'
# Every type a node of the graph publishes or subscribes (nodes/*.py, transport/convert.py).
GRAPH_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage',
               'sensor_msgs/msg/CameraInfo', 'sensor_msgs/msg/JointState',
               'trajectory_msgs/msg/JointTrajectory', 'std_msgs/msg/Float64MultiArray',
               'diagnostic_msgs/msg/DiagnosticArray', 'rosgraph_msgs/msg/Clock',
               'std_msgs/msg/Bool')
SAMPLES = 3
TIMEOUT_S = 60.0


@pytest.fixture(scope='module')
def echo_child():
    proc = subprocess.Popen([sys.executable, str(CHILD), *GRAPH_TYPES], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x.strip()) for x in proc.stdout],
                     daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + TIMEOUT_S
    while 'READY' not in seen:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f'rclpy echo child did not start ({proc.poll()}): {seen[-20:]}')
    yield proc, lines, seen
    proc.stdin.close()
    assert proc.wait(20) == 0, seen[-20:]


def test_every_graph_message_type_crosses_between_rclpy_and_cyclone(echo_child):
    proc, lines, seen = echo_child
    ts = make_typestore()
    node = create_node('vidplan_dds_interop', backend='dds')
    pubs, got = {}, {t: [] for t in GRAPH_TYPES}
    subs = {}
    for ros_type in GRAPH_TYPES:
        pubs[ros_type] = node.create_publisher(ros_type, topic(ros_type))
        subs[ros_type] = node.create_subscription(ros_type, topic(ros_type) + '_echo',
                                                  got[ros_type].append)
    deadline = time.monotonic() + TIMEOUT_S
    while not all(p.get_subscription_count() and subs[t].get_publisher_count()
                  for t, p in pubs.items()):
        if time.monotonic() > deadline or proc.poll() is not None:
            unmatched = [t for t, p in pubs.items()
                         if not (p.get_subscription_count() and subs[t].get_publisher_count())]
            pytest.fail(f'no discovery between Cyclone and Fast DDS for {unmatched}')
        node.spin_once(0.05)
    sent = {t: [random_pair(ts, t, seed)[0] for seed in range(SAMPLES)] for t in GRAPH_TYPES}
    for ros_type, samples in sent.items():
        for sample in samples:
            pubs[ros_type].publish(sample)
    while any(len(got[t]) < SAMPLES for t in GRAPH_TYPES):
        if time.monotonic() > deadline:
            pytest.fail(f'echoes missing: {[(t, len(g)) for t, g in got.items()]}; child '
                        f'said {seen[-10:]}')
        node.spin_once(0.05)
    node.shutdown()

    def echoed(ros_type: str) -> bool:
        # the child held real rclpy messages (e.g. module sensor_msgs.msg._image)
        return any(s.startswith(f'ECHO {ros_type} {ros_type.split("/")[0]}.msg.') for s in seen)

    # the child prints after it publishes, so its lines can trail the echoes: wait for them
    while not all(echoed(t) for t in GRAPH_TYPES) and time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            pass
    for ros_type in GRAPH_TYPES:
        for i, (a, b) in enumerate(zip(sent[ros_type], got[ros_type])):
            assert first_difference(a, b) is None, (ros_type, i, first_difference(a, b))
        assert echoed(ros_type), seen[-20:]


def test_an_rclpy_built_message_reaches_a_cyclone_node_and_back():
    ros = create_node('vidplan_rclpy_side', backend='rclpy')
    dds = create_node('vidplan_dds_side', backend='dds')
    try:
        to_dds, to_ros = [], []
        dds.create_subscription('trajectory_msgs/msg/JointTrajectory', '/vidplan_native_a',
                                to_dds.append)
        ros.create_subscription('sensor_msgs/msg/JointState', '/vidplan_native_b',
                                to_ros.append)
        pub_r = ros.create_publisher('trajectory_msgs/msg/JointTrajectory', '/vidplan_native_a')
        pub_d = dds.create_publisher('sensor_msgs/msg/JointState', '/vidplan_native_b')
        t = ros.msg_type
        traj = t('trajectory_msgs/msg/JointTrajectory')(
            joint_names=['j1', 'j2'],
            points=[t('trajectory_msgs/msg/JointTrajectoryPoint')(
                positions=[0.1, -0.2], velocities=[0.0, 0.5],
                time_from_start=t('builtin_interfaces/msg/Duration')(sec=1, nanosec=5))])
        traj.header.stamp = ros.stamp(1_700_000_000_123_456_789)
        js = dds.msg_type('sensor_msgs/msg/JointState')(name=['a'], position=[1.5])
        deadline = time.monotonic() + TIMEOUT_S
        while not (to_dds and to_ros):
            assert time.monotonic() < deadline, 'no rclpy <-> Cyclone exchange'
            pub_r.publish(traj)
            pub_d.publish(js)
            ros.spin_once(0.05)
            dds.spin_once(0.05)
        m = to_dds[0]
        assert m.joint_names == ['j1', 'j2'] and list(m.points[0].positions) == [0.1, -0.2]
        assert (m.points[0].time_from_start.sec, m.points[0].time_from_start.nanosec) == (1, 5)
        assert (m.header.stamp.sec, m.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
        assert list(to_ros[0].name) == ['a'] and list(to_ros[0].position) == [1.5]
    finally:
        dds.shutdown()
        ros.shutdown()
