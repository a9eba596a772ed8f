"""An rclpy action client feeding a `core.action_goals.GoalBook`: send, feedback, result, cancel.

Actions are rclpy-only (DESIGN §3): the dds backend has no services, and an action is three
services plus two topics (rcl_action names.c). A ROS 2 service request over DDS carries the
client's request id outside the CDR message -- rmw_cyclonedds prefixes a (guid, seq) header to the
payload (serdata.hpp), rmw_fastrtps uses RTPS related_sample_identity -- and Jazzy's rmws also
match on a type hash in USER_DATA, so without ROS the executor uses the controller's topic
interface instead. This module reaches the rclpy node of the transport (`node.ros_node`) because
the transport interface has no actions.

Calls and callbacks run in the node's spin thread (rclpy futures' done callbacks run there).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from vidplan_ros.core.action_goals import Goal, GoalBook
from vidplan_ros.core.errors import VidplanError

# action_msgs/msg/GoalStatus codes -> GoalBook states (action_msgs GoalStatus.msg)
_STATUS = {4: 'succeeded', 5: 'canceled', 6: 'aborted'}


def action_type(node: Any, ros_type: str) -> type:
    """The rclpy action class of `pkg/action/Name`, with a clear error where it is missing."""
    if getattr(node, 'backend', '') != 'rclpy':
        raise VidplanError(f'{ros_type} is an action: it needs the rclpy transport (a ROS 2 '
                           'host or the ros-jazzy wheels); without ROS use the topic interface')
    pkg, kind, name = ros_type.split('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
    except (ImportError, AttributeError):
        raise VidplanError(f'{ros_type} is not available in this ROS 2 environment; install '
                           f'or source the package {pkg} (control_msgs is not on PyPI)') from None


class ActionGoalClient:
    """Goals of one action server, recorded in `book`.

    `error_of(feedback) -> float` turns a feedback message into a tracking error (NaN: none);
    `result_of(result) -> (error_code, error_string)` reads a result message.
    """

    def __init__(self, node: Any, ros_type: str, name: str, book: GoalBook,
                 error_of: Callable[[Any], float] | None = None,
                 result_of: Callable[[Any], tuple[int, str]] | None = None) -> None:
        from rclpy.action import ActionClient
        self.node, self.name, self.book = node, name, book
        self.type = action_type(node, ros_type)
        self.client = ActionClient(node.ros_node, self.type, name)
        self.error_of = error_of
        self.result_of = result_of or (lambda _r: (0, ''))
        self.handles: dict[int, Any] = {}
        self.not_ready = 0

    def goal_msg(self) -> Any:
        return self.type.Goal()

    def ready(self) -> bool:
        return self.client.server_is_ready()

    def send(self, goal_msg: Any, stamp_s: float = 0.0) -> Goal | None:
        """Send a goal (superseding the running one); None when no server is up yet."""
        if not self.ready():
            self.not_ready += 1
            self.node.logger.warning(f'{self.name}: no action server; goal not sent',
                                     throttle_s=2.0)
            return None
        goal = self.book.new_goal(stamp_s, self.node.now_s())
        key = goal.key
        future = self.client.send_goal_async(
            goal_msg, feedback_callback=lambda fb: self._on_feedback(key, fb))
        future.add_done_callback(lambda f: self._on_response(key, f))
        return goal

    def cancel(self, goal: Goal | None) -> None:
        """Ask the server to cancel `goal` (sent again once it is accepted, if need be)."""
        if goal is None:
            return
        goal.cancel_requested = True
        handle = self.handles.get(goal.key)
        if handle is not None:
            handle.cancel_goal_async()

    def cancel_active(self) -> Goal | None:
        goal = self.book.take_cancel()
        self.cancel(goal)
        return goal

    def _on_response(self, key: int, future: Any) -> None:
        try:
            handle = future.result()
        except Exception as exc:  # noqa: BLE001 - the server went away mid-call
            self.book.on_result(key, 'lost', error=str(exc))
            return
        self.book.on_response(key, bool(handle.accepted))
        if not handle.accepted:
            self.node.logger.warning(f'{self.name}: goal rejected', throttle_s=2.0)
            return
        self.handles[key] = handle
        handle.get_result_async().add_done_callback(lambda f: self._on_result(key, f))
        goal = self.book.goals.get(key)
        if goal is not None and goal.cancel_requested:
            handle.cancel_goal_async()      # cancelled while the goal was in flight

    def _on_feedback(self, key: int, feedback_msg: Any) -> None:
        if self.error_of is not None:
            self.book.on_feedback(key, self.error_of(feedback_msg.feedback))

    def _on_result(self, key: int, future: Any) -> None:
        self.handles.pop(key, None)
        try:
            response = future.result()
        except Exception as exc:  # noqa: BLE001
            self.book.on_result(key, 'lost', error=str(exc))
            return
        code, text = self.result_of(response.result)
        state = self.book.on_result(key, _STATUS.get(int(response.status), 'lost'), code, text)
        if state in ('aborted', 'lost') or (state == 'succeeded' and code != 0):
            self.node.logger.warning(self.book.last_error, throttle_s=1.0)

    def destroy(self) -> None:
        self.client.destroy()
