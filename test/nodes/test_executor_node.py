"""Executor node between a plan source and the sim robot, over DDS, as separate processes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidplan_ros.core.errors import ConfigValueError
from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.nodes.diagnostics import diagnostic_values
from vidplan_ros.transport import create_node
from vidplan_ros.transport import convert as cv

from test.nodes.test_sim_node import spin_until, start_sim, stop

REPO = Path(__file__).resolve().parents[2]
SPEC = load_robot_spec('franka_fr3')
OFFSET = np.array([0.3, -0.2, 0.2, 0.25, -0.3, 0.2, 0.3])
STALE_PLAN_S, DT_S = 0.5, 0.002


def test_executor_tracks_plans_safely_and_holds_when_the_planner_dies():
    sim = start_sim('robot:=franka_fr3', 'task:=franka/reach', 'cameras:=[front]',
                    'camera_rate_hz:=1.0')
    executor = subprocess.Popen(
        [sys.executable, '-m', 'vidplan_ros.nodes.executor_node', '--ros-args',
         '-p', 'use_sim_time:=true', '-p', f'executor.stale_plan_s:={STALE_PLAN_S}',
         '-p', f'executor.control_dt_s:={DT_S}',
         # Sim time arrives in /clock steps and this machine is shared: allow stamps up to
         # 0.25 s ahead of the executor's clock before calling it a clock mismatch.
         '-p', 'executor.max_future_stamp_s:=0.25'],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    planner = subprocess.Popen([sys.executable, str(REPO / 'test/nodes/plan_publisher_child.py')],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    node = create_node('executor_watcher', ['--ros-args', '-p', 'use_sim_time:=true'])
    try:
        chunks, states, diag = [], [], {}
        node.create_subscription('trajectory_msgs/msg/JointTrajectory',
                                 SPEC.interfaces.joint_trajectory_topic, chunks.append)
        node.create_subscription('sensor_msgs/msg/JointState', '/joint_states', states.append)
        node.create_subscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics',
                                 lambda m: diag.update(diagnostic_values(m)))
        key = 'vidplan_executor: executor'

        def q_now():
            return cv.joint_state_arrays(states[-1], SPEC.joint_names)[0]

        q0 = np.asarray(SPEC.ready_pose_rad)
        spin_until(node, lambda: states and np.abs(q_now() - (q0 + OFFSET)).max() < 0.02, 90,
                   sim)
        print('executor status while tracking:', diag.get(key))
        assert int(diag[key]['accepted']) > 5
        planner.kill()
        planner.wait()
        spin_until(node, lambda: diag.get(key, {}).get('mode') in ('decelerate', 'hold'), 30,
                   sim)
        since = float(diag[key]['tracking_ended_s'])
        late_s = since - (float(diag[key]['plan_stamp_s']) + STALE_PLAN_S)
        print(f'executor stopped tracking {late_s * 1e3:.1f} ms after the last plan went stale')
        assert -1e-6 <= late_s <= 2 * DT_S + 1e-6
        # Every command the robot received was finite and inside the robot's limits.
        lo = np.array(SPEC.position_min_rad) + SPEC.position_margin_rad
        hi = np.array(SPEC.position_max_rad) - SPEC.position_margin_rad
        vmax = np.array(SPEC.velocity_max_rad_s)
        assert len(chunks) > 50
        for chunk in chunks:
            _, pos, vel = cv.joint_trajectory_arrays(chunk, SPEC.joint_names)
            assert np.all(np.isfinite(pos)) and np.all(np.isfinite(vel))
            assert np.all((pos >= lo - 1e-9) & (pos <= hi + 1e-9))
            assert np.all(np.abs(vel) <= vmax + 1e-9)
    finally:
        for proc in (planner, executor):
            proc.kill()
            proc.wait()
        stop(sim)
        node.shutdown()


def test_the_shipped_params_file_configures_the_node():
    from vidplan_ros.core.config import load_config
    from vidplan_ros.nodes.executor_node import ExecutorNodeConfig
    cfg = load_config(ExecutorNodeConfig, REPO / 'config' / 'executor.yaml')
    assert cfg == ExecutorNodeConfig()
    with pytest.raises(ConfigValueError, match='tick_spin_s = 0.01 is not allowed'):
        ExecutorNodeConfig(tick_spin_s=0.01)     # a 10 ms spin would eat the 2 ms tick


def test_feasibility_matches_wall_clock_stamps():
    """Figures sent as float64 seconds since 1970 lose sub-microsecond digits; they must still
    pair with the plan's exact nanosecond stamp (and not with a different plan's)."""
    from vidplan_ros.nodes.executor_node import ExecutorNode
    logic = object.__new__(ExecutorNode)
    rng = np.random.default_rng(0)
    stamps = [int(1.8e18 + rng.integers(0, 10**12)) for _ in range(200)]
    logic.feasibility = {int(round((s / 1e9) * 1e9)): (0.01, 0.9) for s in stamps}
    assert all(logic._figures_for(s) == (0.01, 0.9) for s in stamps)
    assert logic._figures_for(stamps[0] + 50_000) is None      # 50 us away: another plan


def _in_process_executor(*params: str, backend: str = 'dds'):
    from vidplan_ros.nodes.executor_node import ExecutorNode
    argv = ['vidplan_executor', '--backend', backend, '--ros-args']
    for p in params:
        argv += ['-p', p]
    return ExecutorNode(argv)


def test_a_panda_executor_takes_fr3_plans_and_commands_panda_joints():
    """Isaac Sim's Franka (franka_panda spec, panda_* joints) driven by an FR3 model set whose
    grounding publishes fr3_* plans: the executor matches them by the spec's joint_aliases and
    commands panda_* names on /joint_command (issue 11, defect 5)."""
    fr3, panda = SPEC, load_robot_spec('franka_panda')
    ex = _in_process_executor('robot:=franka_panda', 'interface:=joint_state_command')
    node = create_node('isaac_stand_in', ['--backend', 'dds'])
    try:
        commands = []
        node.create_subscription('sensor_msgs/msg/JointState', '/joint_command', commands.append)
        states = node.create_publisher('sensor_msgs/msg/JointState', '/joint_states')
        plans = node.create_publisher('trajectory_msgs/msg/JointTrajectory',
                                      '/vidplan/grounded_plan')
        feas = node.create_publisher('std_msgs/msg/Float64MultiArray',
                                     '/vidplan/grounded_plan/feasibility')
        q0 = np.asarray(panda.ready_pose_rad)
        target = q0 + 0.05
        t_end = node.now_s() + 30.0
        last_plan = 0.0
        while node.now_s() < t_end and ex.ex.status()['accepted'] < 3:
            now_ns = int(node.now_s() * 1e9)
            states.publish(cv.joint_state_msg(node.msg_type, now_ns, panda.joint_names, q0))
            if node.now_s() - last_plan > 0.1:
                last_plan = node.now_s()
                feas.publish(node.msg_type('std_msgs/msg/Float64MultiArray')(
                    data=[now_ns * 1e-9, 0.01, 0.95]))
                plans.publish(cv.joint_trajectory_msg(
                    node.msg_type, now_ns, fr3.joint_names, np.array([0.5, 1.0]),
                    np.vstack([(q0 + target) / 2, target])))
            for n in (node, ex.node):
                n.spin_once(0.005)
        assert ex.ex.status()['accepted'] >= 3, ex.ex.status()
        assert ex.drops['plan_invalid'] == 0
        t_cmd = node.now_s() + 5.0
        while node.now_s() < t_cmd and not commands:
            for n in (node, ex.node):
                n.spin_once(0.005)
        assert commands and list(commands[-1].name) == list(panda.joint_names)
    finally:
        ex.close()
        node.shutdown()


def test_follow_joint_trajectory_is_an_rclpy_action_with_a_clear_error_elsewhere():
    import importlib.util

    import pytest

    from vidplan_ros.core.errors import VidplanError
    with pytest.raises(VidplanError, match='needs the rclpy transport'):
        _in_process_executor('interface:=follow_joint_trajectory')
    if importlib.util.find_spec('rclpy') is None:
        return
    if importlib.util.find_spec('control_msgs') is None:      # not on PyPI
        with pytest.raises(VidplanError, match='control_msgs'):
            _in_process_executor('interface:=follow_joint_trajectory', backend='rclpy')
