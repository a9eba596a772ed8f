"""Goal bookkeeping for the robot's actions, ROS-free: FollowJointTrajectory and GripperCommand.

The executor's `follow_joint_trajectory` interface sends one goal per accepted plan to the
JointTrajectoryController and cancels it when it stops; the Franka Hand is driven through
franka_gripper's `~/gripper_action`. This module decides what to send and classifies what comes
back; `nodes/action_client.py` moves the messages with rclpy. Upstream behaviour it follows
(ros2_controllers jazzy, joint_trajectory_controller/src/joint_trajectory_controller.cpp):

- a new goal preempts the active one, which is *aborted* with error_code INVALID_GOAL and
  error_string "Current goal preempted by new incoming action." -- a replan, not a failure;
- a cancelled goal is finished as CANCELED and the controller holds (or decelerates to) the
  current position;
- result error codes are control_msgs/action/FollowJointTrajectory's (below).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vidplan_ros.core.config import require, require_positive

# control_msgs/action/FollowJointTrajectory result codes (control_msgs, the .action file)
FJT_ERROR_CODES = {0: 'SUCCESSFUL', -1: 'INVALID_GOAL', -2: 'INVALID_JOINTS',
                   -3: 'OLD_HEADER_TIMESTAMP', -4: 'PATH_TOLERANCE_VIOLATED',
                   -5: 'GOAL_TOLERANCE_VIOLATED'}
JTC_PREEMPTED = 'Current goal preempted by new incoming action.'
# Terminal states of a goal, as action_msgs/msg/GoalStatus names them (plus our two).
FINISHED = ('succeeded', 'aborted', 'canceled', 'rejected', 'preempted', 'lost')
# Executor modes in which a running trajectory goal must not go on (core/executor.MODES).
STOP_MODES = ('estop', 'hold')


@dataclass
class Goal:
    """One goal's life: sent -> accepted | rejected -> succeeded | aborted | canceled |
    preempted (replaced by our next goal) | lost (the server went away)."""

    key: int
    stamp_s: float                   # source stamp of the plan it carries (0 for a gripper)
    sent_s: float
    state: str = 'sent'
    cancel_requested: bool = False
    error_code: int = 0
    error: str = ''


@dataclass
class GoalBook:
    """The goals of one action client and what became of them (diagnostics)."""

    name: str
    goals: dict[int, Goal] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    active: int | None = None        # the newest goal not finished
    last_error: str = ''
    max_error_rad: float = 0.0       # largest |feedback error| of the active goal
    _next: int = 0

    def new_goal(self, stamp_s: float, now_s: float) -> Goal:
        """Record a goal about to be sent; it supersedes the active one (the server preempts
        that one when it accepts this)."""
        self._next += 1
        goal = Goal(self._next, stamp_s, now_s)
        self.goals[goal.key] = goal
        self.active = goal.key
        self.max_error_rad = 0.0
        self.counts['sent'] += 1
        while len(self.goals) > 64:                      # keep the recent ones
            oldest = min(self.goals)
            if oldest == self.active:
                break
            del self.goals[oldest]
        return goal

    def on_response(self, key: int, accepted: bool) -> None:
        goal = self.goals.get(key)
        if goal is None or goal.state != 'sent':
            return
        goal.state = 'accepted' if accepted else 'rejected'
        self.counts[goal.state] += 1
        if not accepted:
            self.last_error = f'{self.name}: goal {key} rejected by the server'
            self._finish(goal)

    def on_feedback(self, key: int, error_rad: float) -> None:
        """Tracking error reported for a goal (max |desired - actual| over joints)."""
        if key == self.active and np.isfinite(error_rad):
            self.max_error_rad = max(self.max_error_rad, float(error_rad))

    def on_result(self, key: int, status: str, error_code: int = 0, error: str = '') -> str:
        """Classify a goal's end: `status` is succeeded / aborted / canceled (GoalStatus);
        returns the state recorded (a preempted goal is 'preempted', not 'aborted')."""
        goal = self.goals.get(key)
        if goal is None or goal.state in FINISHED:
            return goal.state if goal else 'unknown'
        superseded = key != self.active
        if status == 'aborted' and (superseded or error == JTC_PREEMPTED):
            status = 'preempted'
        goal.state, goal.error_code, goal.error = status, int(error_code), error
        self.counts[status] += 1
        if status in ('aborted', 'lost') or (status == 'succeeded' and error_code != 0):
            code = FJT_ERROR_CODES.get(int(error_code), str(error_code))
            self.last_error = f'{self.name}: goal {key} {status}: {code} {error}'.strip()
            if status == 'succeeded':
                self.counts['failed'] += 1
        self._finish(goal)
        return status

    def cancel_target(self, mode: str) -> Goal | None:
        """The goal to cancel now that the executor is in `mode`, if any (once per goal)."""
        if mode not in STOP_MODES:
            return None
        return self.take_cancel()

    def take_cancel(self) -> Goal | None:
        """The active goal, marked for cancelling (stop / shutdown); None if nothing runs."""
        goal = self.goals.get(self.active) if self.active is not None else None
        if goal is None or goal.cancel_requested or goal.state not in ('sent', 'accepted'):
            return None
        goal.cancel_requested = True
        self.counts['cancel_requested'] += 1
        return goal

    def running(self) -> bool:
        goal = self.goals.get(self.active) if self.active is not None else None
        return goal is not None and goal.state in ('sent', 'accepted')

    def _finish(self, goal: Goal) -> None:
        if self.active == goal.key:
            self.active = None

    def summary(self) -> dict[str, object]:
        """Flat values for /diagnostics."""
        keys = ('sent', 'accepted', 'rejected', 'succeeded', 'aborted', 'preempted',
                'canceled', 'cancel_requested', 'failed', 'lost')
        out: dict[str, object] = {f'goals_{k}': self.counts[k] for k in keys}
        out['goal_running'] = self.running()
        out['goal_max_error_rad'] = round(self.max_error_rad, 6)
        out['goal_last_error'] = self.last_error
        return out


def feedback_error_rad(joint_names: list[str] | tuple[str, ...], error_positions,
                       wanted: tuple[str, ...]) -> float:
    """Max |error| over the `wanted` joints of a FollowJointTrajectory feedback (matched by
    name: the controller lists its own joints); NaN when it reports none of them."""
    values = [abs(float(error_positions[i])) for i, name in enumerate(joint_names)
              if name in wanted and i < len(error_positions)]
    return max(values) if values else float('nan')


@dataclass(frozen=True)
class GripperConfig:
    """A Franka Hand through franka_gripper's `~/gripper_action`
    (control_msgs/action/GripperCommand; franka_ros2 franka_gripper/src/gripper_action_server.cpp:
    target width = 2 * command.position; wider than now -> move at default_speed, else grasp with
    max_effort as the force and the default epsilons)."""

    width_max_m: float = 0.08
    max_effort_n: float = 20.0        # grasp force (franka_gripper: 0 < force <= 70 N)
    min_change_m: float = 0.002       # a new goal only when the width changes by this much

    def __post_init__(self) -> None:
        require_positive(self, 'width_max_m', 'max_effort_n', 'min_change_m')
        require(self.max_effort_n <= 70.0, 'max_effort_n', self.max_effort_n,
                'a grasp force in (0, 70] N (the Franka Hand continuous force)')


def gripper_command(cfg: GripperConfig, width_m: float) -> tuple[float, float]:
    """(command.position, command.max_effort) of a GripperCommand goal for a hand opening of
    `width_m` (clipped to [0, width_max_m]); raises ValueError for a non-finite width."""
    if not np.isfinite(width_m):
        raise ValueError(f'gripper width {width_m!r} is not finite')
    width = float(np.clip(width_m, 0.0, cfg.width_max_m))
    return width / 2.0, cfg.max_effort_n
