"""The sim node over DDS in its own process, as a robot: JTC tracking, G1 CRC rejection."""

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.nodes.diagnostics import diagnostic_values
from vidplan_ros.transport import QOS_SENSOR_DATA, create_node
from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.unitree_crc import lowstate_crc_ok

REPO = Path(__file__).resolve().parents[2]


def start_sim(*params):
    args = [sys.executable, '-m', 'vidplan_ros.nodes.sim_node', '--ros-args',
            '-p', 'episode_time_s:=1000.0', '-p', 'image_width:=32', '-p', 'image_height:=32',
            '-p', 'camera_rate_hz:=2.0']
    for p in params:
        args += ['-p', p]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def spin_until(node, cond, timeout_s, proc):
    deadline = time.monotonic() + timeout_s
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f'sim node exited: {proc.stdout.read()[-3000:]}')
        assert time.monotonic() < deadline, 'timed out waiting for the sim node'
        node.spin_once(0.02)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_franka_joint_trajectory_tracked_within_1_mrad_rms():
    spec = load_robot_spec('franka_fr3')
    proc = start_sim('robot:=franka_fr3', 'task:=franka/reach', 'cameras:=[front]')
    node = create_node('jtc_client')
    try:
        states, clock = [], [None]
        node.create_subscription('sensor_msgs/msg/JointState', '/joint_states', states.append)
        node.create_subscription('rosgraph_msgs/msg/Clock', '/clock',
                                 lambda m: clock.__setitem__(0, cv.time_to_ns(m.clock)))
        images = []
        node.create_subscription('sensor_msgs/msg/Image', '/cameras/front/image_raw',
                                 images.append, QOS_SENSOR_DATA)
        pub = node.create_publisher('trajectory_msgs/msg/JointTrajectory',
                                    spec.interfaces.joint_trajectory_topic)
        spin_until(node, lambda: states and clock[0] and pub.get_subscription_count(), 60, proc)
        q0 = np.asarray(spec.ready_pose_rad)
        amp = np.array([0.3, 0.2, 0.3, 0.25, 0.4, 0.3, 0.5])
        period_s, duration_s = 2.0, 3.0

        def ref(t):  # starts at rest at q0, smooth
            return q0 + amp * (1 - np.cos(2 * math.pi * np.clip(t, 0, None) / period_s)) / 2

        def dref(t):
            return amp * math.pi / period_s * np.sin(2 * math.pi * np.clip(t, 0, None) / period_s)

        times = np.linspace(0.02, duration_s, 150)
        start_ns = clock[0] + 300_000_000  # 0.3 s ahead: the trajectory waits for its start
        msg = cv.joint_trajectory_msg(node.msg_type, start_ns, spec.joint_names, times,
                                      np.array([ref(t) for t in times]),
                                      velocities=np.array([dref(t) for t in times]))
        pub.publish(msg)
        states.clear()
        spin_until(node, lambda: clock[0] > start_ns + int(duration_s * 1e9), 60, proc)
        errs = []
        for s in states:
            t = (cv.time_to_ns(s.header.stamp) - start_ns) * 1e-9
            if 0.0 <= t <= duration_s:
                q, _ = cv.joint_state_arrays(s, spec.joint_names)
                errs.append(q - ref(t))
        errs = np.array(errs)
        rms_mrad = 1e3 * math.sqrt(float(np.mean(errs ** 2)))
        print(f'JTC tracking over DDS: {len(errs)} samples, RMS {rms_mrad:.3f} mrad, '
              f'max {1e3 * np.abs(errs).max():.3f} mrad')
        assert len(errs) > 100
        assert rms_mrad < 1.0
        assert images and cv.image_array(images[-1]).shape == (32, 32, 3)
    finally:
        stop(proc)
        node.shutdown()


def test_g1_lowcmd_with_bad_crc_is_dropped_and_counted():
    spec = load_robot_spec('unitree_g1')
    slots = np.asarray(spec.unitree.motor_indices)
    proc = start_sim('robot:=unitree_g1', 'task:=g1/reach', 'cameras:=[head]')
    node = create_node('g1_client')
    try:
        states, diags = [], {}
        node.create_subscription('unitree_hg/msg/LowState', '/lowstate', states.append)
        node.create_subscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics',
                                 lambda m: diags.update(diagnostic_values(m)))
        pub = node.create_publisher('unitree_hg/msg/LowCmd', '/lowcmd')
        spin_until(node, lambda: states and pub.get_subscription_count(), 60, proc)
        assert states[-1].mode_machine == 5
        assert lowstate_crc_ok(states[-1])
        elbow = slots[spec.joint_names.index('left_elbow_joint')]
        z = np.zeros(35)
        q_cmd = z.copy()
        q_cmd[elbow] = 1.0
        kp, kd = z.copy(), z.copy()
        kp[slots], kd[slots] = 60.0, 1.5
        good = cv.lowcmd_msg(node.msg_type, 5, q_cmd, z, z, kp, kd, np.ones(35))
        bad = cv.lowcmd_msg(node.msg_type, 5, q_cmd, z, z, kp, kd, np.ones(35))
        bad.crc ^= 1
        key = 'vidplan_sim: episode'

        def publish_until(msg, cond):
            deadline = time.monotonic() + 30.0  # generous: a loaded CI machine runs slowly
            while not cond():
                assert proc.poll() is None and time.monotonic() < deadline, 'sim not responding'
                pub.publish(msg)
                node.spin_once(0.01)

        publish_until(bad, lambda: key in diags and int(diags[key]['dropped_crc']) > 10)
        q_elbow = cv.lowstate_arrays(states[-1])['q'][elbow]
        assert abs(q_elbow) < 0.1, q_elbow  # never applied: still near the ready pose
        # The same command with a good CRC is applied.
        publish_until(good, lambda: cv.lowstate_arrays(states[-1])['q'][elbow] > 0.7)
    finally:
        stop(proc)
        node.shutdown()
