"""Goal bookkeeping of the executor's actions (FollowJointTrajectory, GripperCommand), ROS-free.

The rules follow ros2_controllers jazzy joint_trajectory_controller.cpp (preempt_active_goal,
goal_cancelled_callback) and franka_ros2 franka_gripper gripper_action_server.cpp; the same
book runs under rclpy in test/nodes/test_action_client.py.
"""

import math

import pytest

from vidplan_ros.core.action_goals import (FJT_ERROR_CODES, JTC_PREEMPTED, GoalBook,
                                           GripperConfig, feedback_error_rad, gripper_command)
from vidplan_ros.core.errors import ConfigValueError


def test_result_codes_are_control_msgs():
    assert FJT_ERROR_CODES[-4] == 'PATH_TOLERANCE_VIOLATED' and FJT_ERROR_CODES[0] == 'SUCCESSFUL'


def test_a_goal_that_succeeds():
    book = GoalBook('fjt')
    g = book.new_goal(1.0, 1.0)
    assert book.running() and g.state == 'sent'
    book.on_response(g.key, True)
    book.on_feedback(g.key, 0.02)
    book.on_feedback(g.key, 0.01)
    assert book.on_result(g.key, 'succeeded', 0) == 'succeeded'
    assert not book.running() and book.max_error_rad == 0.02 and book.last_error == ''
    s = book.summary()
    assert s['goals_sent'] == s['goals_accepted'] == s['goals_succeeded'] == 1


def test_preemption_by_our_next_goal_or_the_jtc_message_is_not_a_failure():
    book = GoalBook('fjt')
    a = book.new_goal(1.0, 1.0)
    book.on_response(a.key, True)
    b = book.new_goal(1.2, 1.2)               # the next plan's goal
    book.on_response(b.key, True)
    # the JTC aborts the old goal with INVALID_GOAL when it accepts the new one
    assert book.on_result(a.key, 'aborted', -1, JTC_PREEMPTED) == 'preempted'
    assert book.active == b.key and book.last_error == ''
    # somebody else's goal preempting ours: the JTC says so in error_string
    assert book.on_result(b.key, 'aborted', -1, JTC_PREEMPTED) == 'preempted'
    assert book.counts['aborted'] == 0 and book.counts['preempted'] == 2


def test_aborts_and_rejections_name_the_reason():
    book = GoalBook('fjt')
    g = book.new_goal(1.0, 1.0)
    book.on_response(g.key, True)
    assert book.on_result(g.key, 'aborted', -4, 'joint 2 off path') == 'aborted'
    assert 'PATH_TOLERANCE_VIOLATED' in book.last_error and 'joint 2' in book.last_error
    r = book.new_goal(2.0, 2.0)
    book.on_response(r.key, False)
    assert r.state == 'rejected' and not book.running() and 'rejected' in book.last_error
    # a result after the end changes nothing
    assert book.on_result(r.key, 'succeeded') == 'rejected'


def test_cancel_on_stop_modes_once_per_goal():
    book = GoalBook('fjt')
    assert book.cancel_target('estop') is None          # nothing running
    g = book.new_goal(1.0, 1.0)
    book.on_response(g.key, True)
    assert book.cancel_target('track') is None and book.cancel_target('decelerate') is None
    assert book.cancel_target('hold') is g and g.cancel_requested
    assert book.cancel_target('estop') is None          # asked once already
    book.on_result(g.key, 'canceled')
    assert book.summary()['goals_canceled'] == 1 and not book.running()


def test_feedback_error_is_matched_by_joint_name():
    names = ('fr3_joint1', 'fr3_joint2')
    # the controller's own order and an extra joint it also controls
    assert feedback_error_rad(['fr3_joint2', 'extra', 'fr3_joint1'], [0.1, 5.0, -0.3],
                              names) == pytest.approx(0.3)
    assert math.isnan(feedback_error_rad(['other'], [1.0], names))


def test_gripper_goal_is_half_the_width_clipped():
    cfg = GripperConfig(width_max_m=0.08, max_effort_n=30.0)
    assert gripper_command(cfg, 0.05) == (pytest.approx(0.025), 30.0)
    assert gripper_command(cfg, 0.2)[0] == pytest.approx(0.04)
    assert gripper_command(cfg, -1.0)[0] == 0.0
    with pytest.raises(ValueError, match='finite'):
        gripper_command(cfg, float('nan'))
    with pytest.raises(ConfigValueError, match='max_effort_n'):
        GripperConfig(max_effort_n=100.0)
