"""The rclpy backend on real rclpy (the `ros` extra's ROS 2 Jazzy wheels): logging, parameters
and clean shutdown, each against what rclpy itself does (the upstream file is named per test).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import pytest

rclpy = pytest.importorskip(
    'rclpy', reason='rclpy does not import here: pip install -e .[ros] (x86_64 Linux, '
                    'CPython 3.10-3.12) or source a ROS 2 install')

from vidplan_ros.core.errors import ConfigError  # noqa: E402
from vidplan_ros.transport import QoS, create_node  # noqa: E402


@dataclass(frozen=True)
class Inner:
    margin_rad: float = 0.1


@dataclass(frozen=True)
class Cfg:
    rate_hz: float = 10.0
    cameras: tuple[str, ...] = ()                  # empty default (perception's `cameras`)
    gains: tuple[float, ...] = (1.0, 2.0)          # non-empty array default
    name: str = 'x'
    inner: Inner = Inner()


def _node(tmp_path, yaml_text=None, *extra):
    argv = ['test']
    if yaml_text is not None:
        path = tmp_path / 'params.yaml'
        path.write_text(textwrap.dedent(yaml_text))
        argv += ['--ros-args', '--params-file', str(path), *extra]
    elif extra:
        argv += ['--ros-args', *extra]
    return create_node('vidplan_rclpy_test', argv, backend='rclpy')


@pytest.fixture()
def ros_node():
    node = create_node('vidplan_rclpy_test', backend='rclpy')
    yield node
    node.shutdown()


def test_params_declared_from_the_config_dataclass(ros_node):
    cfg = ros_node.load_config(QoS)
    assert cfg == QoS()
    assert ros_node.ros_node.get_parameter('depth').value == 10


def test_messages_and_clock(ros_node):
    Msg = ros_node.msg_type('sensor_msgs/msg/JointState')
    assert Msg.__module__.startswith('sensor_msgs')
    assert abs(ros_node.now_s() - time.time()) < 1.0


# --- defect 2: rclpy keys logging state by call site (rclpy impl/rcutils_logger.py) ---------

def _report(logger, level, msg, throttle_s=0.0):
    getattr(logger, level)(msg, throttle_s=throttle_s)   # one call site, every severity


def test_a_spin_timer_runs_each_tick_spin_s_after_its_scheduled_call(ros_node):
    """rclpy's timer keeps its schedule; the callback runs once spin_s of each period has passed
    since the call was due (rclpy executors.py `_take_timer` advances the timer before the
    callback, timer.py `time_until_next_call`), and never earlier."""
    period_ns, spin_ns = 100_000_000, 40_000_000
    seen = []
    timer = ros_node.create_timer(
        0.1, lambda: seen.append(timer.time_until_next_call()), spin_s=0.04)
    deadline = time.monotonic() + 5.0
    while len(seen) < 3 and time.monotonic() < deadline:
        ros_node.spin_once(0.2)
    assert len(seen) == 3
    # at the callback: next call - now = period - time since due, i.e. >= spin_s had passed
    assert all(u <= period_ns - spin_ns for u in seen), seen
    with pytest.raises(ValueError, match='spin_s 0.2 must be >= 0 and below the period'):
        ros_node.create_timer(0.1, lambda: None, spin_s=0.2)


def test_one_call_path_logs_at_every_severity_and_throttle(ros_node, capfd):
    for level in ('info', 'warning', 'error', 'info', 'debug'):
        _report(ros_node.logger, level, f'vidplan-{level}')
    _report(ros_node.logger, 'warning', 'vidplan-throttled', throttle_s=30.0)
    _report(ros_node.logger, 'warning', 'vidplan-throttled', throttle_s=30.0)  # dropped
    _report(ros_node.logger, 'warning', 'vidplan-unthrottled')
    err = capfd.readouterr().err
    for line in ('[INFO]', '[WARN]', '[ERROR]'):
        assert line in err
    assert err.count('vidplan-info') == 2 and 'vidplan-error' in err
    assert err.count('vidplan-throttled') == 1 and 'vidplan-unthrottled' in err


# --- defects 1 and 10: parameters (rclpy node.py declare_parameter / get_parameter) ---------

def test_an_empty_list_in_a_params_file_means_the_default(tmp_path):
    node = _node(tmp_path, """
        /**:
          ros__parameters:
            cameras: []
            gains: []
        """)
    try:
        cfg = node.load_config(Cfg)
        assert cfg.cameras == () and cfg.gains == (1.0, 2.0)
        # declared and set, so `ros2 param get` shows a value, never "not set"
        assert list(node.ros_node.get_parameter('cameras').value) == []
        assert list(node.ros_node.get_parameter('gains').value) == [1.0, 2.0]
    finally:
        node.shutdown()


def test_an_unset_empty_array_field_is_an_empty_array(tmp_path):
    node = _node(tmp_path)
    try:
        assert node.load_config(Cfg) == Cfg()
        assert node.ros_node.get_parameter('cameras').type_ == rclpy.Parameter.Type.STRING_ARRAY
    finally:
        node.shutdown()


def test_values_nested_maps_and_overrides_reach_the_config(tmp_path):
    node = _node(tmp_path, """
        vidplan_rclpy_test:
          ros__parameters:
            use_sim_time: false
            rate_hz: 5.0
            cameras: [front, wrist]
            inner:
              margin_rad: 0.25
        """, '-p', 'name:=yy')
    try:
        assert node.load_config(Cfg) == Cfg(rate_hz=5.0, cameras=('front', 'wrist'),
                                            name='yy', inner=Inner(0.25))
    finally:
        node.shutdown()


def test_a_string_ros_reads_as_a_boolean_says_to_quote_it(tmp_path):
    node = _node(tmp_path, None, '-p', 'name:=y')   # rcl parse.c: unquoted y is true
    try:
        with pytest.raises(ConfigError, match=r"'name'.*quote it"):
            node.load_config(Cfg)
    finally:
        node.shutdown()


def test_an_unknown_key_is_an_error_naming_it_and_the_allowed_keys(tmp_path):
    node = _node(tmp_path, """
        /**:
          ros__parameters:
            rate_hx: 5.0
            use_sim_time: false
            qos_overrides./x.publisher.depth: 3
        """)
    try:
        with pytest.raises(ConfigError, match=r"'rate_hx'.*allowed parameters: .*'rate_hz'"):
            node.load_config(Cfg)
    finally:
        node.shutdown()


def test_an_integer_for_a_double_says_to_write_a_decimal_point(tmp_path):
    node = _node(tmp_path, """
        /**:
          ros__parameters:
            rate_hz: 5
        """)
    try:
        with pytest.raises(ConfigError, match=r"'rate_hz'.*decimal point"):
            node.load_config(Cfg)
    finally:
        node.shutdown()


def test_two_nodes_in_one_process_keep_their_own_arguments(tmp_path):
    a = create_node('a', ['a', '--ros-args', '-r', '__node:=alpha', '-p', 'name:=A'], 'rclpy')
    b = create_node('b', ['b', '--ros-args', '-p', 'name:=B'], 'rclpy')
    try:
        assert (a.name, b.name) == ('alpha', 'b')
        assert a.load_config(Cfg).name == 'A' and b.load_config(Cfg).name == 'B'
        a.shutdown()
        assert b.ok()          # the context lives while one of our nodes does
    finally:
        a.shutdown()
        b.shutdown()
    assert not rclpy.ok()


# --- defect 7: SIGINT/SIGTERM (rclpy signal_handler.cpp, executors.py) ----------------------

@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_spinning_node_with_exit_0_and_no_traceback(sig):
    code = textwrap.dedent("""
        import sys
        from vidplan_ros.nodes.diagnostics import spin
        from vidplan_ros.transport import create_node

        class Adapter:
            def __init__(self):
                self.node = create_node('vidplan_signal_test', sys.argv, backend='rclpy')
                self.node.create_timer(0.05, lambda: None)
                self.node.logger.info('spinning')
            def close(self):
                self.node.logger.info('closed')
                self.node.shutdown()

        sys.exit(spin(Adapter()))
        """)
    _signal_once_spinning_exits_0(code, sig)


def _signal_once_spinning_exits_0(code: str, sig: int) -> None:
    """Run `code` (prints 'spinning', then 'closed' when it stops), send `sig` once it
    spins: exit code 0, no traceback."""
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    out = ''
    deadline = time.monotonic() + 60
    while 'spinning' not in out:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, out
        out += line
        assert time.monotonic() < deadline, out
    time.sleep(0.3)
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    out += rest
    assert proc.returncode == 0, out
    assert 'Traceback' not in out and 'closed' in out, out


def test_spin_once_after_a_signal_shut_the_context_down_is_a_quiet_no_op():
    """What a loop that calls spin_once itself (the sim node's) meets after SIGTERM: rclpy's
    handler shut the context down from its own thread (signal_handler.cpp); the executor then
    raises ExternalShutdownException on every spin_once (executors.py)."""
    code = textwrap.dedent("""
        import os, signal, sys, time
        from vidplan_ros.transport import create_node
        node = create_node('vidplan_signal_test', sys.argv, backend='rclpy')
        node.create_timer(0.05, lambda: None)
        os.kill(os.getpid(), signal.SIGTERM)   # rclpy's handler: shut the context down
        deadline = time.monotonic() + 10
        while node.ok() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not node.ok()
        for _ in range(3):
            node.spin_once(0.05)
        node.shutdown()
        node.spin_once(0.05)
        print('stopped quietly')
        """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and 'stopped quietly' in out.stdout, out.stdout + out.stderr
    assert 'Traceback' not in out.stderr, out.stderr


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_loop_that_publishes_on_its_own_stops_on_a_signal_with_exit_0(sig):
    """The sim node's loop (publish, spin_once, while ok()). SIGINT must not raise
    KeyboardInterrupt inside rclpy (its handler chains to Python's: signal_handler.cpp), and a
    publish between the loop's ok() check and the signal's shutdown (rclpy's own thread) must
    not die on rcl's "publisher's context is invalid": the last publish below is that race."""
    code = textwrap.dedent("""
        import sys
        from vidplan_ros.transport import create_node
        node = create_node('vidplan_signal_test', sys.argv, backend='rclpy')
        pub = node.create_publisher('std_msgs/msg/Bool', '/vidplan/signal_test')
        msg = node.msg_type('std_msgs/msg/Bool')()
        print('spinning', flush=True)
        while node.ok():
            pub.publish(msg)
            node.spin_once(0.0)
        pub.publish(msg)
        node.shutdown()
        print('closed', flush=True)
        """)
    _signal_once_spinning_exits_0(code, sig)


def test_sigint_is_pythons_again_once_the_last_node_shut_down():
    """While the context is up SIGINT only shuts it down (Python's handler is set aside, so
    rclpy's chains to nothing); after the last node it is Ctrl-C -> KeyboardInterrupt again,
    and a second context gets rclpy's handler again."""
    code = textwrap.dedent("""
        import os, signal, sys, time
        from vidplan_ros.transport import create_node
        # Python's own handler to start from: a job started in the background by a
        # non-interactive shell inherits SIGINT ignored, which the backend leaves alone
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for _ in range(2):
            node = create_node('vidplan_signal_test', sys.argv, backend='rclpy')
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + 10
            while node.ok() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not node.ok()
            node.shutdown()
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)
        except KeyboardInterrupt:
            print('KeyboardInterrupt')
        """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and 'KeyboardInterrupt' in out.stdout, out.stdout + out.stderr
    assert 'Traceback' not in out.stderr, out.stderr
