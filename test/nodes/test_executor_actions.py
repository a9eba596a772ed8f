"""The executor's FollowJointTrajectory and gripper interfaces with the real control_msgs types,
against stand-ins of the JTC and franka_gripper servers in another process
(test/nodes/jtc_server_child.py). control_msgs is not on PyPI: this runs on a ROS 2 host, or
after `bash test/tools/build_control_msgs.sh <control_msgs source> && source
/tmp/control_msgs/env.sh` (the interfaces built with the rosidl wheels), and skips elsewhere;
test_action_client.py covers the same client on test_msgs in the default suite.
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('rclpy', reason='rclpy is not installed (pip install -e .[ros])')
pytest.importorskip('control_msgs.action', reason='control_msgs is not installed here (not on '
                    'PyPI); this test runs on a ROS 2 host')

from vidplan_ros.core.robot_spec import load_robot_spec  # noqa: E402
from vidplan_ros.nodes.executor_node import ExecutorNode  # noqa: E402
from vidplan_ros.transport import create_node  # noqa: E402
from vidplan_ros.transport import convert as cv  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SPEC = load_robot_spec('franka_fr3')


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / 'test/nodes/jtc_server_child.py'), 'allow'], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                print('server:', line, end='')

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e['event'] == kind]


def test_goal_per_plan_feedback_preemption_gripper_and_cancel_on_estop():
    server = Server()
    ex = ExecutorNode(['vidplan_executor', '--backend', 'rclpy', '--ros-args',
                       '-p', 'interface:=follow_joint_trajectory',
                       '-p', 'gripper_width_topic:=/vidplan/gripper_width'])
    node = create_node('jtc_test_driver', [], backend='rclpy')
    t = 'std_msgs/msg/'
    states = node.create_publisher('sensor_msgs/msg/JointState', '/joint_states')
    plans = node.create_publisher('trajectory_msgs/msg/JointTrajectory', '/vidplan/grounded_plan')
    feas = node.create_publisher(t + 'Float64MultiArray', '/vidplan/grounded_plan/feasibility')
    estop = node.create_publisher(t + 'Bool', '/vidplan/estop')
    width = node.create_publisher(t + 'Float64', '/vidplan/gripper_width')
    q0 = np.asarray(SPEC.ready_pose_rad)
    book = ex.follow.book
    last_plan = [0.0]

    def step(plans_on: bool = True) -> None:
        now_ns = node.now_ns()
        states.publish(cv.joint_state_msg(node.msg_type, now_ns, SPEC.joint_names, q0))
        if plans_on and node.now_s() - last_plan[0] > 0.15:
            last_plan[0] = node.now_s()
            feas.publish(node.msg_type(t + 'Float64MultiArray')(data=[now_ns * 1e-9, 0.01, 0.9]))
            plans.publish(cv.joint_trajectory_msg(node.msg_type, now_ns, SPEC.joint_names,
                                                  np.array([0.5, 1.0]),
                                                  np.vstack([q0 + 0.02, q0 + 0.04])))
        # rclpy's spin_once runs one callback: drain both nodes so states stay fresh
        for n in (node, ex.node):
            for _ in range(20):
                n.spin_once(0.0)
        time.sleep(0.005)

    def until(cond, timeout_s: float, plans_on: bool = True) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            assert server.proc.poll() is None, 'server exited'
            assert time.monotonic() < deadline, (book.summary(), server.events[-5:])
            step(plans_on)

    try:
        until(lambda: server.of('ready') and ex.follow.ready() and ex.hand.ready(), 60)
        until(lambda: book.counts['preempted'] >= 2 and book.max_error_rad > 0, 60)
        goals = server.of('goal')
        assert all(g['accepted'] and g['joints'] == list(SPEC.joint_names) for g in goals)
        assert all(g['stamp_ns'] == 0 and g['points'] > 10 for g in goals)   # start on receipt
        assert book.counts['aborted'] == 0 and book.last_error == ''       # preemption != error
        assert book.max_error_rad == pytest.approx(0.007)                   # by joint name
        # the hand: width 0.05 m -> GripperCommand position 0.025 (franka_gripper: width / 2)
        width.publish(node.msg_type(t + 'Float64')(data=0.05))
        until(lambda: server.of('gripper'), 30)
        assert server.of('gripper')[0]['position'] == pytest.approx(0.025)
        # e-stop: the running goal is cancelled, the controller would hold
        estop.publish(node.msg_type(t + 'Bool')(data=True))
        until(lambda: book.counts['canceled'] >= 1, 30, plans_on=False)
        assert server.of('cancel') and ex.last.mode == 'estop'
    finally:
        ex.close()
        node.shutdown()
        server.proc.kill()
        server.proc.wait()


def test_the_sim_serves_the_franka_gripper_action_the_executor_uses():
    """The embedded sim on rclpy serves franka_gripper's ~/gripper_action (GripperCommand);
    the executor's width command moves the simulated fingers and the goal succeeds."""
    import os
    sim = subprocess.Popen(
        [sys.executable, '-m', 'vidplan_ros.nodes.sim_node', '--backend', 'rclpy', '--ros-args',
         '-p', 'robot:=franka_fr3', '-p', 'task:=franka/reach', '-p', 'cameras:=[front]',
         '-p', 'image_width:=32', '-p', 'image_height:=32', '-p', 'camera_rate_hz:=1.0',
         '-p', 'episode_time_s:=1000.0'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ)
    ex = ExecutorNode(['vidplan_executor', '--backend', 'rclpy', '--ros-args',
                       '-p', 'gripper_width_topic:=/vidplan/gripper_width'])
    node = create_node('gripper_test_driver', [], backend='rclpy')
    states = []
    node.create_subscription('sensor_msgs/msg/JointState', '/joint_states', states.append)
    width = node.create_publisher('std_msgs/msg/Float64', '/vidplan/gripper_width')
    book = ex.hand.book

    def until(cond, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            assert sim.poll() is None, sim.stdout.read()[-3000:]
            assert time.monotonic() < deadline, (book.summary(), len(states))
            for n in (node, ex.node):
                for _ in range(20):
                    n.spin_once(0.0)
            time.sleep(0.005)

    def fingers() -> float:
        msg = states[-1]
        return sum(p for n, p in zip(msg.name, msg.position) if 'finger' in n)

    try:
        until(lambda: states and ex.hand.ready(), 90)
        for done, target in enumerate((0.02, 0.07), start=1):
            width.publish(node.msg_type('std_msgs/msg/Float64')(data=target))
            until(lambda d=done: book.counts['succeeded'] >= d, 30)
            until(lambda w=target: abs(fingers() - w) < 2e-3, 10)
        assert book.counts['aborted'] == 0 and book.counts['rejected'] == 0
    finally:
        ex.close()
        node.shutdown()
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
