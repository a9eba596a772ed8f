"""The Cyclone DDS backend behaves like an rclpy node: topics, QoS, timers, params, sim time."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vidplan_ros.core.errors import ConfigError
from vidplan_ros.transport import (QOS_DEFAULT, QOS_SENSOR_DATA, create_node, parse_ros_args,
                                   pick_backend)
from vidplan_ros.transport.names import dds_topic_name, dds_type_name, resolve_topic

REPO = Path(__file__).resolve().parents[2]


def spin_until(nodes, cond, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, 'timed out'
        for n in nodes:
            n.spin_once(0.01)


def test_names_follow_ros_rules():
    assert resolve_topic('joint_states', '/franka', 'sim') == '/franka/joint_states'
    assert resolve_topic('/clock', '/franka') == '/clock'
    assert resolve_topic('~/preview', '', 'planner') == '/planner/preview'
    assert dds_topic_name('/fr3_arm_controller/joint_trajectory') == \
        'rt/fr3_arm_controller/joint_trajectory'
    assert dds_type_name('unitree_hg/msg/LowCmd') == 'unitree_hg::msg::dds_::LowCmd_'
    with pytest.raises(ValueError, match='invalid ROS topic name'):
        resolve_topic('/bad topic')


def test_ros_args_parsing():
    args = parse_ros_args(['x', '--ros-args', '--params-file', 'a.yaml', '-p', 'rate_hz:=5.5',
                           '-p', 'names:=[a, b]', '-r', '__node:=exec2', '-r', '__ns:=/left',
                           '--', 'y'])
    assert args.params_files == ('a.yaml',)
    assert args.overrides == {'rate_hz': 5.5, 'names': ['a', 'b']}
    assert (args.node_name, args.namespace, args.rest) == ('exec2', '/left', ('x', 'y'))
    with pytest.raises(ValueError, match='name:=value'):
        parse_ros_args(['--ros-args', '-p', 'rate_hz'])
    with pytest.raises(ValueError, match='remapping'):
        parse_ros_args(['--ros-args', '-r', 'chatter:=talk'])


def test_backend_choice():
    import importlib.util
    assert pick_backend('dds') == 'dds'
    has_rclpy = importlib.util.find_spec('rclpy') is not None
    assert pick_backend('auto') == ('rclpy' if has_rclpy else 'dds')
    with pytest.raises(ValueError, match='VIDPLAN_TRANSPORT'):
        pick_backend('zenoh')


def test_backend_argument_is_taken_before_ros_args_only():
    from vidplan_ros.transport import split_backend_arg
    assert split_backend_arg(['prog', '--backend', 'dds', '--ros-args', '-p', 'a:=1']) == (
        'dds', ['prog', '--ros-args', '-p', 'a:=1'])
    assert split_backend_arg(['prog', '--backend=rclpy']) == ('rclpy', ['prog'])
    assert split_backend_arg(['prog', '--ros-args', '-p', 'backend:=x']) == (
        None, ['prog', '--ros-args', '-p', 'backend:=x'])
    with pytest.raises(ValueError, match='--backend needs a value'):
        split_backend_arg(['prog', '--backend'])


def test_the_start_up_log_names_the_backend(capfd):
    node = create_node('named_backend', argv=['prog', '--backend', 'dds'])
    node.shutdown()
    assert 'transport backend: dds' in capfd.readouterr().err


def test_pub_sub_in_process_and_type_checks():
    a, b = create_node('talker'), create_node('listener', argv=['--ros-args', '-r', '__ns:=/ns'])
    got = []
    sub = b.create_subscription('sensor_msgs/msg/JointState', 'joint_states', got.append)
    pub = a.create_publisher('sensor_msgs/msg/JointState', '/ns/joint_states')
    assert sub.topic == '/ns/joint_states'
    spin_until([a, b], lambda: pub.get_subscription_count() == 1)
    js = a.msg_type('sensor_msgs/msg/JointState')(name=['j1'], position=[0.5])
    js.header.stamp = a.stamp(1_500_000_000)
    pub.publish(js)
    spin_until([b], lambda: got)
    assert got[0].name == ['j1'] and got[0].position == [0.5]
    assert got[0].header.stamp.sec == 1 and got[0].header.stamp.nanosec == 500_000_000
    with pytest.raises(TypeError, match='expected JointState'):
        pub.publish(a.msg_type('std_msgs/msg/Bool')())
    a.shutdown(), b.shutdown()


def test_incompatible_qos_does_not_match_like_ros():
    a, b = create_node('be_talker'), create_node('rel_listener')
    b.create_subscription('std_msgs/msg/Bool', '/qos_check', lambda m: None, QOS_DEFAULT)
    pub = a.create_publisher('std_msgs/msg/Bool', '/qos_check', QOS_SENSOR_DATA)
    ok = a.create_publisher('std_msgs/msg/Bool', '/qos_check2', QOS_DEFAULT)
    b.create_subscription('std_msgs/msg/Bool', '/qos_check2', lambda m: None, QOS_SENSOR_DATA)
    spin_until([a, b], lambda: ok.get_subscription_count() == 1)
    time.sleep(0.3)
    assert pub.get_subscription_count() == 0  # best-effort writer never serves a reliable reader


def test_a_raising_callback_does_not_stop_the_node():
    a, b = create_node('t3'), create_node('l3')
    got = []

    def cb(msg):
        got.append(msg.data)
        if msg.data:
            raise RuntimeError('boom')

    b.create_subscription('std_msgs/msg/Bool', '/raise_check', cb)
    pub = a.create_publisher('std_msgs/msg/Bool', '/raise_check')
    spin_until([a, b], lambda: pub.get_subscription_count() == 1)
    Bool = a.msg_type('std_msgs/msg/Bool')
    pub.publish(Bool(data=True))
    pub.publish(Bool(data=False))
    spin_until([b], lambda: len(got) == 2)
    assert b.callback_errors == 1 and b.ok()


def test_sim_time_drives_clock_and_timers():
    clock_node = create_node('clock_src')
    node = create_node('sim_user', argv=['--ros-args', '-p', 'use_sim_time:=true'])
    assert node.use_sim_time and node.now_ns() == 0
    ticks = []
    node.create_timer(1.0, lambda: ticks.append(node.now_ns()))
    pub = clock_node.create_publisher('rosgraph_msgs/msg/Clock', '/clock')
    spin_until([node, clock_node], lambda: pub.get_subscription_count() == 1)
    Clock = node.msg_type('rosgraph_msgs/msg/Clock')
    for step in range(0, 51):  # 0 .. 5 s of sim time in 0.1 s steps, as fast as possible
        pub.publish(Clock(clock=clock_node.stamp(step * 100_000_000)))
        spin_until([node], lambda s=step: node.now_ns() == s * 100_000_000)
    assert node.now_ns() == 5_000_000_000
    assert ticks == [k * 1_000_000_000 for k in range(1, 6)]  # on sim time, not wall time


def test_spin_timer_wakes_early_and_ticks_at_its_deadline():
    """A control-loop timer (spin_s) sleeps to spin_s before its deadline and busy-waits the
    rest: one spin_once call fires it, never before the deadline."""
    node = create_node('spinner')
    ticks = []
    timer = node.create_timer(0.05, lambda: ticks.append(time.monotonic_ns()), spin_s=0.02)
    deadline = timer.next_ns
    node.spin_once(1.0)
    assert len(ticks) == 1 and ticks[0] >= deadline
    node.spin_once(1.0)
    assert len(ticks) == 2 and ticks[1] >= deadline + 50_000_000
    with pytest.raises(ValueError, match='spin_s 0.05 must be >= 0 and below the period'):
        node.create_timer(0.05, lambda: None, spin_s=0.05)
    node.shutdown()


def test_params_file_and_overrides_feed_the_config(tmp_path):
    from vidplan_ros.transport.qos import QoS  # a frozen, validated config dataclass
    params = tmp_path / 'qos.yaml'
    params.write_text('/**:\n  ros__parameters:\n    depth: 3\n    use_sim_time: false\n'
                      'other:\n  ros__parameters:\n    depth: 99\n')
    node = create_node('cfg', argv=['--ros-args', '--params-file', str(params),
                                    '-p', 'reliability:=best_effort'])
    assert node.load_config(QoS) == QoS(reliability='best_effort', depth=3)
    bad = create_node('cfg', argv=['--ros-args', '--params-file', str(params),
                                   '-p', 'depth:=0'])
    with pytest.raises(ConfigError, match="'depth' = 0 is not allowed"):
        bad.load_config(QoS)


def test_node_in_another_process_with_params_and_timer(tmp_path):
    """A talker process configured by a params file publishes at its configured rate."""
    params = tmp_path / 'talker.yaml'
    params.write_text('talker:\n  ros__parameters:\n    depth: 7\n')
    child = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from vidplan_ros.transport import create_node
        from vidplan_ros.transport.qos import QoS
        node = create_node('talker', argv=sys.argv)
        depth = node.load_config(QoS).depth
        pub = node.create_publisher('std_msgs/msg/Float64MultiArray', '/talk')
        Msg = node.msg_type('std_msgs/msg/Float64MultiArray')
        n = [0]
        def tick():
            n[0] += 1
            pub.publish(Msg(data=[float(depth), float(n[0])]))
        node.create_timer(0.02, tick)
        node.spin(timeout_s=15.0)
    """)
    proc = subprocess.Popen([sys.executable, '-c', child, '--ros-args', '--params-file',
                             str(params)], stderr=subprocess.PIPE, text=True)
    try:
        node = create_node('listener')
        got = []
        node.create_subscription('std_msgs/msg/Float64MultiArray', '/talk',
                                 lambda m: got.append((time.monotonic(), m.data)))
        node.spin(until=lambda: len(got) >= 30 or proc.poll() is not None, timeout_s=15.0)
        assert len(got) >= 30, proc.stderr.read() if proc.poll() is not None else 'too slow'
        assert all(d[0] == 7.0 for _, d in got)
        counters = [d[1] for _, d in got]
        assert counters == list(range(int(counters[0]), int(counters[0]) + len(got)))
    finally:
        proc.kill()
        proc.wait()
