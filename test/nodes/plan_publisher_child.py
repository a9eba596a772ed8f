"""A stand-in planner+grounding process for executor tests: plans toward a fixed goal.

Every 0.2 s of sim time: a plan stamped with the latest joint state (its source observation),
8 points over 1.6 s moving smoothly from the ready pose to ready + offset over 3 s, and its
feasibility figures. Killed by the test to play a dying planner.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vidplan_ros.core.robot_spec import load_robot_spec  # noqa: E402
from vidplan_ros.transport import create_node  # noqa: E402
from vidplan_ros.transport import convert as cv  # noqa: E402

OFFSET = np.array([0.3, -0.2, 0.2, 0.25, -0.3, 0.2, 0.3])


def main() -> None:
    spec = load_robot_spec('franka_fr3')
    node = create_node('fake_planner', ['--ros-args', '-p', 'use_sim_time:=true'])
    q0 = np.asarray(spec.ready_pose_rad)
    state = {}
    node.create_subscription('sensor_msgs/msg/JointState', '/joint_states',
                             lambda m: state.update(stamp=cv.time_to_ns(m.header.stamp)))
    plan = node.create_publisher('trajectory_msgs/msg/JointTrajectory', '/vidplan/grounded_plan')
    feas = node.create_publisher('std_msgs/msg/Float64MultiArray',
                                 '/vidplan/grounded_plan/feasibility')
    start = {}

    def goal_at(t_s: float) -> np.ndarray:
        s = np.clip((t_s - start['t']) / 3.0, 0.0, 1.0)
        return q0 + OFFSET * (3 * s ** 2 - 2 * s ** 3)

    def tick() -> None:
        if 'stamp' not in state:
            return
        stamp_ns = state['stamp']
        start.setdefault('t', stamp_ns * 1e-9)
        times = 0.2 * np.arange(1, 9)
        pos = np.array([goal_at(stamp_ns * 1e-9 + t) for t in times])
        feas.publish(node.msg_type('std_msgs/msg/Float64MultiArray')(
            data=[stamp_ns * 1e-9, 0.01, 0.95]))
        plan.publish(cv.joint_trajectory_msg(node.msg_type, stamp_ns, spec.joint_names, times,
                                             pos))
        print(f'plan {stamp_ns}', flush=True)

    node.create_timer(0.2, tick)
    node.spin()


if __name__ == '__main__':
    main()
