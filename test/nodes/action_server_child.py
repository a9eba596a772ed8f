"""A test_msgs/action/Fibonacci server that behaves like the JointTrajectoryController's
FollowJointTrajectory server (ros2_controllers jazzy joint_trajectory_controller.cpp):
one active goal; a new accepted goal aborts the active one (preemption); cancel is accepted
and the goal ends CANCELED; feedback while running. Goal `order`: 0 = reject, < 0 = abort
after one feedback, N > 0 = N feedbacks 50 ms apart, then succeed with the sequence 0..N-1.
Runs until killed; prints 'ready' once the server is up.
"""

import threading
import time

import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from test_msgs.action import Fibonacci

NAME = '/vidplan_test/follow'


class Server(Node):
    def __init__(self) -> None:
        super().__init__('vidplan_action_server_child')
        self.lock = threading.Lock()
        self.active = None
        self.server = ActionServer(
            self, Fibonacci, NAME, self.execute, goal_callback=self.on_goal,
            cancel_callback=lambda _h: CancelResponse.ACCEPT,
            handle_accepted_callback=self.on_accepted,
            callback_group=ReentrantCallbackGroup())

    def on_goal(self, goal):
        return GoalResponse.REJECT if goal.order == 0 else GoalResponse.ACCEPT

    def on_accepted(self, handle):
        with self.lock:
            previous, self.active = self.active, handle
        if previous is not None and previous.is_active:
            previous.abort()                      # JTC: "Current goal preempted ..."
        handle.execute()

    def execute(self, handle):
        order = handle.request.order
        feedback = Fibonacci.Feedback()
        for k in range(max(1, abs(order))):
            if handle.is_cancel_requested:
                handle.canceled()
                return Fibonacci.Result()
            if not handle.is_active:              # preempted by a newer goal
                return Fibonacci.Result()
            feedback.sequence = list(range(k + 1))
            handle.publish_feedback(feedback)
            if order < 0:
                handle.abort()
                return Fibonacci.Result(sequence=[-1])
            time.sleep(0.05)
        if handle.is_active:
            handle.succeed()
        return Fibonacci.Result(sequence=list(range(order)))


def main() -> None:
    rclpy.init()
    node = Server()
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    print('ready', flush=True)
    try:
        executor.spin()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
