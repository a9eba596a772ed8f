"""Stand-ins for the JointTrajectoryController's FollowJointTrajectory server and franka_gripper's
GripperCommand server, with the real control_msgs types (ROS hosts; skipped elsewhere).

Behaviour as upstream (ros2_controllers jazzy joint_trajectory_controller.cpp:
goal_received_callback / validate_trajectory_msg, goal_accepted_callback / preempt_active_goal,
goal_cancelled_callback; franka_ros2 franka_gripper gripper_action_server.cpp): goals naming
joints the controller lacks are rejected, a goal ending moving is rejected unless
allow_nonzero_velocity_at_trajectory_end (argv[1] == 'allow'), a new goal aborts the active one
with INVALID_GOAL "Current goal preempted by new incoming action.", cancel ends a goal CANCELED,
feedback carries joint_names / desired / actual / error. Every event is printed as a JSON line.
"""

import json
import sys
import threading
import time

import rclpy
from control_msgs.action import FollowJointTrajectory, GripperCommand
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

JOINTS = [f'fr3_joint{i}' for i in range(1, 8)]
PREEMPTED = 'Current goal preempted by new incoming action.'


def say(**event) -> None:
    print(json.dumps(event), flush=True)


class Jtc(Node):
    def __init__(self, allow_moving_end: bool) -> None:
        super().__init__('jtc_stand_in')
        self.allow = allow_moving_end
        self.lock = threading.Lock()
        self.active = None
        group = ReentrantCallbackGroup()
        self.fjt = ActionServer(self, FollowJointTrajectory,
                                '/fr3_arm_controller/follow_joint_trajectory', self.execute,
                                goal_callback=self.on_goal, cancel_callback=self.on_cancel,
                                handle_accepted_callback=self.on_accepted, callback_group=group)
        self.hand = ActionServer(self, GripperCommand, '/franka_gripper/gripper_action',
                                 self.grip, callback_group=group)

    def on_goal(self, goal):
        traj = goal.trajectory
        ok = bool(traj.points) and all(j in JOINTS for j in traj.joint_names)
        last_v = list(traj.points[-1].velocities) if traj.points else []
        if ok and not self.allow and any(abs(v) > 1.2e-7 for v in last_v):
            ok = False
        say(event='goal', accepted=ok, joints=list(traj.joint_names), points=len(traj.points),
            stamp_ns=traj.header.stamp.sec * 10**9 + traj.header.stamp.nanosec,
            t_end=traj.points[-1].time_from_start.sec + traj.points[-1].time_from_start.nanosec
            * 1e-9 if traj.points else 0.0, end_velocity=last_v)
        return GoalResponse.ACCEPT if ok else GoalResponse.REJECT

    def on_cancel(self, _handle):
        say(event='cancel')
        return CancelResponse.ACCEPT

    def on_accepted(self, handle):
        with self.lock:
            previous, self.active = self.active, handle
        if previous is not None and previous.is_active:
            previous.abort()
        handle.execute()

    def execute(self, handle):
        result = FollowJointTrajectory.Result()
        feedback = FollowJointTrajectory.Feedback()
        feedback.joint_names = JOINTS
        traj = handle.request.trajectory
        end = traj.points[-1].time_from_start
        t_end = end.sec + end.nanosec * 1e-9
        t0 = time.monotonic()
        while time.monotonic() - t0 < t_end:
            if handle.is_cancel_requested:
                handle.canceled()
                say(event='canceled')
                return result
            if not handle.is_active:                       # preempted
                result.error_code = FollowJointTrajectory.Result.INVALID_GOAL
                result.error_string = PREEMPTED
                return result
            feedback.error.positions = [0.001 * (i + 1) for i in range(7)]
            handle.publish_feedback(feedback)
            time.sleep(0.02)
        if handle.is_active:
            handle.succeed()
        result.error_code = FollowJointTrajectory.Result.SUCCESSFUL
        return result

    def grip(self, handle):
        say(event='gripper', position=handle.request.command.position,
            max_effort=handle.request.command.max_effort)
        handle.succeed()
        return GripperCommand.Result(position=handle.request.command.position,
                                     reached_goal=True)


def main() -> None:
    rclpy.init()
    node = Jtc(len(sys.argv) > 1 and sys.argv[1] == 'allow')
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    say(event='ready')
    try:
        executor.spin()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
