"""The executor's action client on real rclpy against a real action server in another process.

control_msgs is not on PyPI, so the server is test_msgs/action/Fibonacci behaving like the
JointTrajectoryController's FollowJointTrajectory server (test/nodes/action_server_child.py):
goal accepted or rejected, feedback while running, result succeeded or aborted, a new goal
preempting the running one, cancel. The FollowJointTrajectory-specific parts (goal from the
executor's trajectory, feedback error by joint name, result codes) are in
test/core/test_action_goals.py and use the same client code on ROS hosts.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidplan_ros.core.action_goals import GoalBook

pytest.importorskip('rclpy', reason='rclpy is not installed (pip install -e .[ros])')
pytest.importorskip('test_msgs', reason='ros-jazzy-test-msgs is not installed')

from vidplan_ros.nodes.action_client import ActionGoalClient  # noqa: E402
from vidplan_ros.transport import create_node  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NAME = '/vidplan_test/follow'


@pytest.fixture(scope='module')
def client():
    server = subprocess.Popen([sys.executable, str(REPO / 'test/nodes/action_server_child.py')],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    node = create_node('vidplan_action_client_test', [], backend='rclpy')
    book = GoalBook('follow')
    fib = ActionGoalClient(node, 'test_msgs/action/Fibonacci', NAME, book,
                           error_of=lambda fb: float(len(fb.sequence)),
                           result_of=lambda r: (0 if list(r.sequence) != [-1] else -1,
                                                'aborted by the server'
                                                if list(r.sequence) == [-1] else ''))
    try:
        spin(node, fib.ready, 60, server)
        yield node, book, fib
    finally:
        fib.destroy()
        node.shutdown()
        server.kill()
        server.wait()


def spin(node, done, timeout_s, server=None, book=None):
    deadline = time.monotonic() + timeout_s
    while not done():
        if server is not None and server.poll() is not None:
            raise AssertionError(f'action server exited: {server.stdout.read()}')
        states = {k: g.state for k, g in book.goals.items()} if book else {}
        assert time.monotonic() < deadline, f'timed out; goals {states}'
        node.spin_once(0.05)


def goal(fib, order):
    msg = fib.goal_msg()
    msg.order = order
    return fib.send(msg, stamp_s=float(order))


def test_goal_succeeds_with_feedback(client):
    node, book, fib = client
    sent = goal(fib, 4)
    spin(node, lambda: sent.state == 'succeeded', 60, book=book)
    assert book.counts['accepted'] >= 1 and book.max_error_rad == 4.0   # 4 feedbacks seen
    assert not book.running()


def test_rejected_and_aborted_goals_are_reported(client):
    node, book, fib = client
    rejected = goal(fib, 0)
    spin(node, lambda: rejected.state == 'rejected', 60, book=book)
    assert 'rejected' in book.last_error
    aborted = goal(fib, -1)
    spin(node, lambda: aborted.state == 'aborted', 60, book=book)
    assert book.counts['aborted'] == 1 and 'aborted by the server' in book.last_error


def test_a_new_goal_preempts_the_running_one_without_counting_a_failure(client):
    node, book, fib = client
    first = goal(fib, 200)                             # 10 s of feedback
    spin(node, lambda: first.state == 'accepted', 60, book=book)
    second = goal(fib, 2)
    spin(node, lambda: first.state == 'preempted' and second.state == 'succeeded', 60, book=book)
    assert book.counts['aborted'] == 1                 # only the earlier test's real abort


def test_stop_cancels_the_running_goal_even_while_it_is_in_flight(client):
    node, book, fib = client
    running = goal(fib, 200)
    spin(node, lambda: running.state == 'accepted', 60, book=book)
    assert book.cancel_target('track') is None         # tracking: nothing to cancel
    fib.cancel(book.cancel_target('estop'))
    spin(node, lambda: running.state == 'canceled', 60, book=book)
    assert book.cancel_target('estop') is None         # once per goal, nothing running now
    in_flight = goal(fib, 200)
    assert fib.cancel_active() is in_flight            # before the server answered
    spin(node, lambda: in_flight.state == 'canceled', 60, book=book)
    assert book.counts['cancel_requested'] == 2 and book.counts['canceled'] == 2
