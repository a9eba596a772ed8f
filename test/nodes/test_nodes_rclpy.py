"""Every node on the rclpy backend (ROS 2 Jazzy wheels, Fast DDS), each in its own process
with its params file from config/: it starts, says its backend in the log, publishes
/diagnostics (the monitor: subscribes to it), and stops with exit code 0 and no traceback on
SIGINT or SIGTERM, the signals `ros2 launch` and `vidplan launch` end nodes with.

Before issue 11 none of this held: perception died at start-up on `cameras: []`
(ParameterUninitializedException), so did the sim without `-p cameras`, the first warning after
an info raised in rclpy's logger, and SIGTERM ended in ExternalShutdownException (exit 1).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip('rclpy', reason='rclpy does not import here: pip install -e .[ros] '
                                    '(x86_64 Linux, CPython 3.10-3.12)')

from vidplan_ros.nodes.diagnostics import diagnostic_values  # noqa: E402
from vidplan_ros.transport import create_node  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / 'config'
START_TIMEOUT_S = 150.0   # five torch processes starting at once on two busy cores


def _files(*names: str) -> list[str]:
    out: list[str] = []
    for name in names:
        out += ['--params-file', str(CONFIG / name)]
    return out


# name -> (module, --ros-args after the node name, the signal that stops it)
NODES = {
    # no -p cameras: the sim's own default (every camera of the scene) must hold on ROS too
    'vidplan_sim': ('vidplan_ros.nodes.sim_node',
                    ['-p', 'episode_time_s:=600.0', '-p', 'camera_rate_hz:=2.0'],
                    signal.SIGINT),
    'vidplan_perception': ('vidplan_ros.nodes.perception_node', _files('perception.yaml'),
                           signal.SIGTERM),
    'vidplan_planner': ('vidplan_ros.nodes.planner_node', _files('planner.yaml'),
                        signal.SIGINT),
    'vidplan_grounding': ('vidplan_ros.nodes.grounding_node',
                          _files('grounding.yaml', 'grounding_node.yaml'), signal.SIGTERM),
    'vidplan_executor': ('vidplan_ros.nodes.executor_node', _files('executor.yaml'),
                         signal.SIGINT),
}


class Proc:
    def __init__(self, name: str, module: str, ros_args: list[str], log: Path) -> None:
        self.name, self.log = name, log
        self._out = open(log, 'w')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', module, '--backend', 'rclpy', '--ros-args',
             '-r', f'__node:={name}', *ros_args],
            cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9
        finally:
            self._out.close()


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('rclpy_nodes')
    procs = {name: Proc(name, module, args, tmp / f'{name}.log')
             for name, (module, args, _) in NODES.items()}
    procs['vidplan_monitor'] = Proc('vidplan_monitor', 'vidplan_ros.nodes.monitor_node',
                                    ['-p', f'out_dir:={tmp / "run"}'], tmp / 'monitor.log')
    watch = create_node('vidplan_rclpy_watch', backend='rclpy')
    seen: dict[str, dict[str, str]] = {}
    watch.create_subscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics',
                              lambda m: seen.update(diagnostic_values(m)))
    try:
        yield {'procs': procs, 'watch': watch, 'seen': seen, 'tmp': tmp}
    finally:
        for p in procs.values():
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
        watch.shutdown()


def _spin_until(graph, cond, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not cond():
        dead = {n: p for n, p in graph['procs'].items() if p.proc.poll() is not None}
        if dead or time.monotonic() > deadline:
            logs = '\n'.join(f'--- {n} ({p.proc.poll()}):\n{p.output()[-3000:]}'
                             for n, p in graph['procs'].items())
            pytest.fail(f'{what}: {"exited: " + str(sorted(dead)) if dead else "timed out"}'
                        f'\n{logs}')
        graph['watch'].spin_once(0.05)


def test_every_node_starts_on_rclpy_and_publishes_diagnostics(graph):
    _spin_until(graph, lambda: all(any(k.startswith(f'{n}: ') for k in graph['seen'])
                                   for n in NODES), 'diagnostics from every node')
    ros = graph['watch'].ros_node
    _spin_until(graph, lambda: any(
        i.node_name == 'vidplan_monitor'
        for i in ros.get_subscriptions_info_by_topic('/diagnostics')),
        'the monitor subscribing to /diagnostics')
    for name, p in graph['procs'].items():
        assert 'transport backend: rclpy on rmw_fastrtps_cpp' in p.output(), (name, p.output())
    assert graph['seen']['vidplan_sim: episode']['task'] == 'franka/reach'


def test_every_node_stops_cleanly_on_sigint_or_sigterm(graph):
    codes = {name: p.stop(NODES[name][2] if name in NODES else signal.SIGINT)
             for name, p in graph['procs'].items()}
    outputs = {name: p.output() for name, p in graph['procs'].items()}
    for name, code in codes.items():
        assert code == 0 and 'Traceback' not in outputs[name], (name, code, outputs[name])
    assert (graph['tmp'] / 'run' / 'summary.json').exists()   # the monitor closed its run
