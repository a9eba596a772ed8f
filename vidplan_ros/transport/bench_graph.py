"""Node-graph timing over DDS between OS processes: `vidplan bench graph`.

    vidplan bench graph --duration-s 10 --out benchmarks      # graph.json, graph.md, graph.png
    vidplan bench graph --only hop,executor --duration-s 5

Three measurements, each optional (``--only``); every time is CLOCK_MONOTONIC
(``time.monotonic_ns``), which on Linux is one clock for all processes of a host, so one-way
times across processes need no RTT halving and carry no clock offset:

hop       A camera SET between two processes on the Cyclone DDS backend. A child node publishes
          3 rgb8 Images back to back (one per camera topic, best effort ``QOS_SENSOR_DATA`` as
          the sim node's cameras) at ``--camera-rate-hz``, with the child's monotonic time taken
          just before the first publish in their header stamp; this process's node receives
          them. Latency of a set = receipt of the last of its 3 images - that stamp: serialise,
          loopback DDS, wake-up, deserialise and callback dispatch of all three, one way.
          Cases 3 x 128x128 and 3 x 640x480.
executor  The executor node's 500 Hz command period: the real ``ExecutorNode`` (unitree_g1,
          unitree_arm_sdk, control_dt 2 ms, config/executor.yaml) spinning in a child process on
          the dds backend exactly as ``vidplan_executor`` does, with its ``_tick`` timed at entry
          and exit; this process stands in for the robot (LowState at 500 Hz) and times each
          LowCmd it receives. |period - 2 ms| from the node's tick starts and from the receipts;
          idle, then under load (``BUSY_LOOPS`` busy-loop processes started for that phase).
graph     The node graph of ``vidplan launch sim`` (bringup ``sim_graph``: sim, perception,
          planner, grounding, executor, monitor as processes over DDS) for ``--graph-s``. An
          observer node here notes the first receipt of each camera stamp and of each grounded
          plan; the executor process runs the same node with a hook that notes, per accepted
          plan, when the first command after it was published. camera -> grounded plan and
          camera -> first new executor command, matched by the observation stamp; the monitor's
          own camera -> grounded plan figures (summary.json) are kept beside them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

import numpy as np

from vidplan_ros.transport.bench import ChildProcess

PHASES = ('hop', 'executor', 'graph')
HOP_SIZES: tuple[tuple[int, int], ...] = ((128, 128), (640, 480))
CAMERAS = 3
CONTROL_DT_S = 0.002
G1 = 'unitree_g1'
G1_MODE_MACHINE = 5                  # the sim node's default (G1 29-DoF rev 1.0)
BUSY_LOOPS = 2
WARMUP_S = 0.5
TARGET_HOP_MS = {'p50': 2.0, 'p99': 5.0}      # 3 x 128x128 (issue 12)
TARGET_PERIOD_ERROR_P99_MS = 0.5              # executor, idle (issue 12)
STARTUP_TIMEOUT_S = 120.0

__all__ = ['PHASES', 'latency_stats', 'main', 'period_stats', 'run_bench', 'to_markdown']


# --- statistics -------------------------------------------------------------------------------

def latency_stats(values_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """n, p50 / p95 / p99 / max / mean of samples in ms (NaN when there are none)."""
    a = np.asarray(values_ms, dtype=np.float64)
    if not a.size:
        return {'n': 0, **{k: math.nan for k in ('p50', 'p95', 'p99', 'max', 'mean')}}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {'n': int(a.size), 'p50': float(p50), 'p95': float(p95), 'p99': float(p99),
            'max': float(a.max()), 'mean': float(a.mean())}


def period_stats(stamps_ns: Sequence[int] | np.ndarray, period_s: float) -> dict[str, Any]:
    """Intervals between consecutive stamps vs ``period_s``: |interval - period| in ms, the
    mean interval, and how many intervals were longer than 1.5 periods (a late command)."""
    t = np.sort(np.asarray(stamps_ns, dtype=np.int64))
    d_ms = np.diff(t) / 1e6
    period_ms = period_s * 1e3
    return {'intervals': int(d_ms.size),
            'mean_period_ms': float(d_ms.mean()) if d_ms.size else math.nan,
            'abs_error_ms': latency_stats(np.abs(d_ms - period_ms)),
            'over_1_5_periods': int((d_ms > 1.5 * period_ms).sum())}


def _in(a: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    return (a >= window[0]) & (a < window[1])


# --- processes ----------------------------------------------------------------------------------

def _child_env(domain_id: int) -> dict[str, str]:
    from vidplan_ros.transport.dds_config import localhost_env
    env = localhost_env()
    root = str(Path(__file__).resolve().parents[2])
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [root, env.get('PYTHONPATH')]))
    env['ROS_DOMAIN_ID'] = str(domain_id)
    env['VIDPLAN_TRANSPORT'] = 'dds'
    return env


class _Child(ChildProcess):
    """A child process of this module (``--child KIND``); it stops when its stdin closes."""

    def __init__(self, argv: list[str], domain_id: int) -> None:
        super().__init__([sys.executable, '-m', 'vidplan_ros.transport.bench_graph', *argv],
                         _child_env(domain_id))

    def fail(self, what: str) -> RuntimeError:
        time.sleep(0.2)
        tail = ''.join(self.stderr_lines[-30:])
        return RuntimeError(f'bench graph: {what} (child exit code {self.proc.poll()}); '
                            f'child stderr:\n{tail}')

    def next_line(self) -> str | None:
        try:
            return self.lines.get_nowait().strip()
        except queue.Empty:
            if self.proc.poll() is not None and self.lines.empty():
                raise self.fail('the child exited early') from None
            return None

    def stop(self, timeout_s: float = 10.0) -> None:
        super().stop(timeout_s)


def _stdin_closed() -> threading.Event:
    closed = threading.Event()

    def watch() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=watch, daemon=True).start()
    return closed


class _Progress:
    """A tqdm bar in seconds of planned bench time (or nothing)."""

    def __init__(self, total_s: float, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=round(total_s, 1), unit='s', desc='bench graph',
                            file=sys.stderr, mininterval=0.5,
                            bar_format='{l_bar}{bar}| {n:.0f}/{total:.0f} s '
                            '[{elapsed}<{remaining}]')
        self.done = 0.0

    def to(self, seconds: float) -> None:
        if self.bar is not None and seconds > self.done:
            self.bar.update(min(seconds, self.bar.total) - min(self.done, self.bar.total))
        self.done = max(self.done, seconds)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- hop: a camera set between two processes ---------------------------------------------------

def hop_topic(key: str, camera: int) -> str:
    return f'/vidplan_bench/image_{key}/cam{camera}'


def run_camera_child(sizes: Sequence[tuple[int, int]], rate_hz: float, duration_s: float,
                     warmup_s: float) -> int:
    """Publish a set of ``CAMERAS`` Images per period, per size in turn; report each case as
    ``CASE key measure_from_ns measure_to_ns sets_sent``, then ``DONE``."""
    from vidplan_ros.transport import QOS_SENSOR_DATA, create_node
    from vidplan_ros.transport import convert as cv
    node = create_node('vidplan_bench_cameras', backend='dds')
    cases = []
    for w, h in sizes:
        key = f'{w}x{h}'
        rng = np.random.default_rng(w * 100_003 + h)
        pubs = [node.create_publisher('sensor_msgs/msg/Image', hop_topic(key, i),
                                      QOS_SENSOR_DATA) for i in range(CAMERAS)]
        msgs = [cv.image_msg(node.msg_type, 0, f'cam{i}',
                             rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
                for i in range(CAMERAS)]
        cases.append((key, pubs, msgs))
    closed = _stdin_closed()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not all(p.get_subscription_count() > 0 for _, pubs, _ in cases for p in pubs):
        if time.monotonic() > deadline or closed.is_set():
            print('no subscriber matched the camera topics', file=sys.stderr)
            return 3
        node.spin_once(0.02)
    print('READY', flush=True)
    for key, pubs, msgs in cases:
        state = {'sent': 0}
        t_measure = time.monotonic_ns() + int(warmup_s * 1e9)
        t_end = t_measure + int(duration_s * 1e9)

        def publish_set(pubs: list = pubs, msgs: list = msgs, state: dict = state,
                        t_measure: int = t_measure, t_end: int = t_end) -> None:
            t0 = time.monotonic_ns()    # just before the first publish of the set
            sec, nanosec = divmod(t0, 1_000_000_000)
            for msg in msgs:
                msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            for pub, msg in zip(pubs, msgs):
                pub.publish(msg)
            state['sent'] += int(t_measure <= t0 < t_end)

        timer = node.create_timer(1.0 / rate_hz, publish_set)
        while time.monotonic_ns() < t_end and not closed.is_set():
            node.spin_once(0.01)
        timer.cancel()
        print(f"CASE {key} {t_measure} {t_end} {state['sent']}", flush=True)
    print('DONE', flush=True)
    while not closed.is_set():
        node.spin_once(0.05)
    node.shutdown()
    return 0


def run_hop(domain_id: int, duration_s: float, rate_hz: float, progress: _Progress,
            done_s: float, sizes: Sequence[tuple[int, int]] = HOP_SIZES) -> dict[str, Any]:
    from vidplan_ros.transport import QOS_SENSOR_DATA, create_node
    from vidplan_ros.transport.convert import time_to_ns
    keys = [f'{w}x{h}' for w, h in sizes]
    receipts: dict[str, dict[int, list[int]]] = {k: {} for k in keys}
    sizes_bytes: dict[str, int] = {}
    node = create_node('vidplan_bench_hop', backend='dds', domain_id=domain_id)
    child = None
    try:
        for key in keys:
            def on_image(msg: Any, key: str = key) -> None:
                t = time.monotonic_ns()
                receipts[key].setdefault(time_to_ns(msg.header.stamp), []).append(t)
                sizes_bytes.setdefault(key, len(msg.data))
            for i in range(CAMERAS):
                node.create_subscription('sensor_msgs/msg/Image', hop_topic(key, i), on_image,
                                         QOS_SENSOR_DATA)
        child = _Child(['--child', 'cameras', '--sizes', ','.join(keys), '--rate', str(rate_hz),
                        '--duration-s', str(duration_s), '--warmup-s', str(WARMUP_S)],
                       domain_id)
        cases: dict[str, tuple[int, int, int]] = {}
        t_start, ready_at, finished = time.monotonic(), None, False
        progress.note('hop: discovery')
        while not finished:
            node.spin_once(0.01)
            line = child.next_line()
            now = time.monotonic()
            if line == 'READY':
                ready_at = now
                progress.note('hop: camera sets')
            elif line and line.startswith('CASE '):
                _, key, a, b, n = line.split()
                cases[key] = (int(a), int(b), int(n))
            finished = line == 'DONE'
            if now - t_start > STARTUP_TIMEOUT_S + len(keys) * (duration_s + 5):
                raise child.fail('the camera child did not finish')
            if ready_at is not None:
                progress.to(done_s + min(now - ready_at, len(keys) * (duration_s + WARMUP_S)))
        drain = time.monotonic() + 0.5
        while time.monotonic() < drain:
            node.spin_once(0.01)
    finally:
        node.shutdown()
        if child is not None:
            child.stop()
    out: dict[str, Any] = {}
    for key in keys:
        t_from, t_to, sent = cases[key]
        complete, partial = [], 0
        for stamp, times in receipts[key].items():
            if not t_from <= stamp < t_to:
                continue
            if len(times) >= CAMERAS:
                complete.append((max(times) - stamp) / 1e6)
            else:
                partial += 1
        out[key] = {'label': f'{CAMERAS} x {key} rgb8', 'image_bytes': sizes_bytes.get(key, 0),
                    'rate_hz': rate_hz, 'sets_sent': sent, 'sets_received': len(complete),
                    'sets_incomplete': partial, 'sets_lost': sent - len(complete) - partial,
                    'latency_ms': latency_stats(complete), 'samples_ms': complete}
    return out


# --- executor: the node's 500 Hz loop --------------------------------------------------------

def _timed_executor_class() -> type:
    """ExecutorNode with timing hooks only: tick entry/exit, and per accepted plan the time
    the first command after it was published."""
    from vidplan_ros.nodes.executor_node import ExecutorNode

    class TimedExecutorNode(ExecutorNode):
        def __init__(self, argv: list[str], plans_out: TextIO | None = None) -> None:
            self.ticks: list[int] = []
            self.plans_out = plans_out
            self.pending_plan_ns: int | None = None
            super().__init__(argv)

        def _tick(self) -> None:
            t0 = time.monotonic_ns()
            super()._tick()
            self.ticks += (t0, time.monotonic_ns())

        def _use_plan(self, msg: Any, stamp_ns: int, residual: float,
                      alignment: float) -> None:
            before = self.ex.status()['accepted']
            super()._use_plan(msg, stamp_ns, residual, alignment)
            if self.ex.status()['accepted'] > before:
                self.pending_plan_ns = stamp_ns

        def _publish_command(self, cmd: Any) -> None:
            super()._publish_command(cmd)
            if self.pending_plan_ns is not None and self.plans_out is not None:
                self.plans_out.write(f'{self.pending_plan_ns} {time.monotonic_ns()}\n')
                self.plans_out.flush()
                self.pending_plan_ns = None

    return TimedExecutorNode


def executor_argv() -> list[str]:
    from vidplan_ros.core.paths import config_dir
    return ['vidplan_executor', '--backend', 'dds', '--ros-args', '--params-file',
            str(config_dir() / 'executor.yaml'), '-p', f'robot:={G1}',
            '-p', f'executor.control_dt_s:={CONTROL_DT_S}']


def run_executor_child(ticks_out: str) -> int:
    """The executor node on the G1 at 500 Hz until stdin closes; tick times into ``ticks_out``
    (.npy, int64 rows: entry ns, exit ns)."""
    ex = _timed_executor_class()(executor_argv())
    closed = _stdin_closed()
    print('READY', flush=True)
    try:
        ex.node.spin(until=closed.is_set)   # the node's own executor, as `spin()` in main
    finally:
        np.save(ticks_out, np.asarray(ex.ticks, dtype=np.int64).reshape(-1, 2))
        ex.close()
    return 0


def run_graph_executor_child(plans_out: str, argv: list[str]) -> int:
    """The graph's executor node (its own ``--ros-args``) with the plan -> command hook; stops
    on SIGINT / SIGTERM like the node."""
    from vidplan_ros.nodes.diagnostics import spin
    with open(plans_out, 'a') as f:
        return spin(_timed_executor_class()(['vidplan_executor', *argv], plans_out=f))


def _busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range(n)]


def _stop_procs(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait(timeout=5)


def run_executor(domain_id: int, duration_s: float, progress: _Progress, done_s: float,
                 busy_loops: int = BUSY_LOOPS) -> dict[str, Any]:
    from vidplan_ros.core.robot_spec import load_robot_spec
    from vidplan_ros.transport import create_node
    from vidplan_ros.transport import convert as cv
    spec = load_robot_spec(G1)
    ros_type, cmd_topic = spec.interfaces.command('')
    received: list[int] = []
    windows: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix='vidplan_bench_graph_') as tmp:
        ticks_path = Path(tmp) / 'ticks.npy'
        node = create_node('vidplan_bench_robot', backend='dds', domain_id=domain_id)
        child, busy = None, []
        try:
            node.create_subscription(ros_type, cmd_topic,
                                     lambda _m: received.append(time.monotonic_ns()))
            q = np.zeros(cv.UNITREE_MOTORS)
            q[np.asarray(spec.unitree.motor_indices)] = spec.ready_pose_rad
            state = cv.lowstate_msg(node.msg_type, 0, G1_MODE_MACHINE, q, np.zeros_like(q),
                                    np.zeros_like(q))
            pub = node.create_publisher('unitree_hg/msg/LowState',
                                        spec.interfaces.lowstate_topic)
            node.create_timer(CONTROL_DT_S, lambda: pub.publish(state))
            child = _Child(['--child', 'executor', '--ticks-out', str(ticks_path)], domain_id)
            progress.note('executor: start-up')
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not received:       # commanding: LowState seen, mode hold
                node.spin_once(0.01)
                child.next_line()
                if time.monotonic() > deadline:
                    raise child.fail(f'no {cmd_topic} command from the executor node')
            for phase, n_busy in (('idle', 0), ('load', busy_loops)):
                busy = _busy_loops(n_busy)
                progress.note(f'executor: {phase}')
                start = time.monotonic_ns() + int(WARMUP_S * 1e9)
                windows[phase] = (start, start + int(duration_s * 1e9))
                t_phase = time.monotonic()
                while time.monotonic_ns() < windows[phase][1]:
                    node.spin_once(0.01)
                    child.next_line()
                    progress.to(done_s + min(time.monotonic() - t_phase,
                                             duration_s + WARMUP_S))
                done_s += duration_s + WARMUP_S
                _stop_procs(busy)
                busy = []
        finally:
            _stop_procs(busy)
            node.shutdown()
            if child is not None:
                child.stop()
        if not ticks_path.is_file():
            raise RuntimeError('bench graph: the executor child wrote no tick times')
        ticks = np.load(ticks_path)
    recv = np.asarray(received, dtype=np.int64)
    out: dict[str, Any] = {'robot': G1, 'interface': spec.interfaces.command_interface,
                           'command_topic': cmd_topic, 'control_dt_s': CONTROL_DT_S,
                           'busy_loops_under_load': busy_loops, 'phases': {}}
    for phase, window in windows.items():
        sel = ticks[_in(ticks[:, 0], window)]
        cost_ms = (sel[:, 1] - sel[:, 0]) / 1e6
        node_ticks = period_stats(sel[:, 0], CONTROL_DT_S)
        node_ticks['tick_cost_ms'] = latency_stats(cost_ms)
        rx = recv[_in(recv, window)]
        out['phases'][phase] = {
            'expected_periods': int(round(duration_s / CONTROL_DT_S)),
            'node_ticks': node_ticks, 'received_commands': period_stats(rx, CONTROL_DT_S),
            'samples_abs_error_ms': {
                'node_ticks': np.abs(np.diff(sel[:, 0]) / 1e6 - CONTROL_DT_S * 1e3).tolist(),
                'received_commands': np.abs(np.diff(rx) / 1e6 - CONTROL_DT_S * 1e3).tolist()}}
    return out


# --- graph: camera -> plan -> command through the launched graph ------------------------------

def _graph_specs(robot: str, task: str, out_dir: Path, plans_path: Path) -> list[Any]:
    """`vidplan launch sim`'s processes; the executor runs through the plan -> command hook."""
    from vidplan_ros.bringup.supervisor import ProcessSpec
    from vidplan_ros.bringup.vidplan_launch import sim_graph
    specs = sim_graph(robot, task, episodes=1000, out_dir=out_dir, backend='auto')
    out = []
    for s in specs:
        if s.name == 'executor':
            ros = list(s.argv[s.argv.index('--ros-args'):])
            argv = (sys.executable, '-m', 'vidplan_ros.transport.bench_graph', '--child',
                    'graph-executor', '--plans-out', str(plans_path), '--', *ros)
            s = ProcessSpec(s.name, argv, s.required, s.env)
        out.append(s)
    return out


def run_graph(domain_id: int, duration_s: float, robot: str, task: str, progress: _Progress,
              done_s: float) -> dict[str, Any]:
    from vidplan_ros.bringup.graph import model_info
    from vidplan_ros.bringup.supervisor import Supervisor
    from vidplan_ros.bringup.vidplan_launch import resolve_robot_task
    from vidplan_ros.core.config import read_params_file
    from vidplan_ros.core.paths import config_dir
    from vidplan_ros.core.robot_spec import load_robot_spec
    from vidplan_ros.transport import QOS_SENSOR_DATA, create_node
    from vidplan_ros.transport.convert import time_to_ns
    spec_name, sim_task, model = resolve_robot_task(robot, task)
    cams = model_info(model).cameras
    interfaces = load_robot_spec(spec_name).interfaces
    interface = interfaces.command_interface
    stream_hz = read_params_file(config_dir() / 'executor.yaml', 'vidplan_executor').get(
        'stream_rate_hz', 50.0)
    command_period_ms = CONTROL_DT_S * 1e3 if interfaces.unitree else \
        1e3 / float(stream_hz)
    camera_at: dict[int, int] = {}
    plan_at: dict[int, int] = {}
    tmp = Path(tempfile.mkdtemp(prefix='vidplan_bench_graph_'))
    plans_path, log_path = tmp / 'plans.txt', tmp / 'launch.log'
    plans_path.touch()
    old = {k: os.environ.get(k) for k in ('ROS_DOMAIN_ID', 'VIDPLAN_TRANSPORT')}
    os.environ.update({'ROS_DOMAIN_ID': str(domain_id), 'VIDPLAN_TRANSPORT': 'dds'})
    node = create_node('vidplan_bench_observer', backend='dds', domain_id=domain_id)
    for cam in cams:
        node.create_subscription(
            'sensor_msgs/msg/Image', f'/cameras/{cam}/image_raw',
            lambda m: camera_at.setdefault(time_to_ns(m.header.stamp), time.monotonic_ns()),
            QOS_SENSOR_DATA)
    node.create_subscription(
        'trajectory_msgs/msg/JointTrajectory', '/vidplan/grounded_plan',
        lambda m: plan_at.setdefault(time_to_ns(m.header.stamp), time.monotonic_ns()),
        QOS_SENSOR_DATA)
    log = open(log_path, 'w')
    sup = Supervisor(_graph_specs(robot, task, tmp / 'run', plans_path), out=log,
                     grace_s=10.0, colour=False)
    runner = threading.Thread(target=sup.run, daemon=True)
    measure_from: int | None = None
    t_start = time.monotonic()
    try:
        runner.start()
        progress.note('graph: start-up (models load)')
        while runner.is_alive():
            node.spin_once(0.02)
            now = time.monotonic()
            if measure_from is None and plan_at:
                measure_from = time.monotonic_ns()
                t_measure = now
                progress.note('graph: running')
            if measure_from is not None:
                progress.to(done_s + min(now - t_measure, duration_s))
                if now - t_measure >= duration_s:
                    break
            elif now - t_start > STARTUP_TIMEOUT_S * 3:
                break
    finally:
        sup.stop()
        progress.note('graph: stopping')
        while runner.is_alive():
            node.spin_once(0.05)
            runner.join(timeout=0.05)
        node.shutdown()
        log.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    exits = {e.name: e.returncode for e in sup.exits}
    if measure_from is None:
        return {'skipped': f'no grounded plan within {STARTUP_TIMEOUT_S * 3:g} s of start; '
                           f'node exit codes {exits}; launch log: {log_path}'}
    # observations whose camera frame arrived inside the measured window
    window = (measure_from, measure_from + int(duration_s * 1e9))
    seen = {s: t for s, t in camera_at.items() if window[0] <= t < window[1]}
    to_plan = [(t - seen[s]) / 1e6 for s, t in plan_at.items() if s in seen]
    first_cmd = []
    for line in plans_path.read_text().splitlines():
        stamp, t = (int(v) for v in line.split())
        if stamp in seen:
            first_cmd.append((t - seen[stamp]) / 1e6)
    summary_path = tmp / 'run' / 'summary.json'
    monitor = {}
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        monitor = {'latency_ms': summary.get('latency_ms', {}),
                   'executor_status_modes': summary.get('executor_status_modes', {})}
    shutil.rmtree(tmp, ignore_errors=True)   # the run video and the log: kept only on failure
    return {'robot': robot, 'task': sim_task, 'model': model, 'cameras': list(cams),
            'executor_interface': interface, 'command_period_ms': command_period_ms,
            'measured_s': duration_s, 'startup_s': round(t_measure - t_start, 1),
            'camera_stamps': len(seen), 'grounded_plans': len(to_plan),
            'camera_to_plan_ms': latency_stats(to_plan),
            'camera_to_first_command_ms': latency_stats(first_cmd),
            'plans_accepted_with_command': len(first_cmd),
            'monitor_summary': monitor, 'node_exit_codes': exits,
            'samples_ms': {'camera_to_plan': to_plan, 'camera_to_first_command': first_cmd}}


# --- the run ------------------------------------------------------------------------------------

def run_bench(only: Sequence[str] = PHASES, duration_s: float = 10.0,
              camera_rate_hz: float = 30.0, graph_s: float = 25.0, graph_robot: str = 'franka',
              graph_task: str = 'push', progress: bool = True,
              command: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the phases in ``only`` (hop, executor, graph); the result dict of graph.json."""
    from vidplan_ros.core.provenance import load_average, provenance
    from vidplan_ros.transport.dds_config import LOCALHOST_CYCLONEDDS_XML
    unknown = sorted(set(only) - set(PHASES))
    if unknown or not only:
        raise ValueError(f'--only {",".join(only)}: pick from {",".join(PHASES)}')
    if not duration_s > 0 or not camera_rate_hz > 0 or not graph_s > 0:
        raise ValueError('durations and the camera rate must be > 0')
    result = provenance(command, packages=('cyclonedds',))
    result['config'] = {'only': list(only), 'duration_s': duration_s, 'warmup_s': WARMUP_S,
                        'camera_rate_hz': camera_rate_hz, 'graph_s': graph_s,
                        'graph_robot': graph_robot, 'graph_task': graph_task,
                        'nice': os.nice(0), 'clock': 'CLOCK_MONOTONIC (time.monotonic_ns), '
                        'one clock for every process of the host'}
    result['load_1min_before'] = (load_average() or [math.nan])[0]
    plan = {'hop': len(HOP_SIZES) * (duration_s + WARMUP_S), 'executor': 2 * (duration_s
            + WARMUP_S), 'graph': graph_s}
    bar = _Progress(sum(plan[p] for p in only), progress)
    domain_id = random.SystemRandom().randint(100, 230)
    old_uri = os.environ.get('CYCLONEDDS_URI')
    os.environ['CYCLONEDDS_URI'] = LOCALHOST_CYCLONEDDS_XML   # read at this process's first
    done = 0.0                                                # participant
    t0 = time.monotonic()
    try:
        for phase in PHASES:
            if phase not in only:
                continue
            if phase == 'hop':
                result['hop'] = run_hop(domain_id, duration_s, camera_rate_hz, bar, done)
            elif phase == 'executor':
                result['executor'] = run_executor(domain_id, duration_s, bar, done)
            else:
                result['graph'] = run_graph(domain_id, graph_s, graph_robot, graph_task, bar,
                                            done)
            done += plan[phase]
            bar.to(done)
    finally:
        bar.close()
        if old_uri is None:
            os.environ.pop('CYCLONEDDS_URI', None)
        else:
            os.environ['CYCLONEDDS_URI'] = old_uri
    result['machine']['loadavg_at_end'] = load_average()
    result['load_1min_after'] = (result['machine']['loadavg_at_end'] or [math.nan])[0]
    result['wall_s'] = round(time.monotonic() - t0, 1)
    return result


# --- report -------------------------------------------------------------------------------------

def _f(v: float, digits: int = 2) -> str:
    return 'n/a' if v is None or not math.isfinite(v) else f'{v:.{digits}f}'


def _verdict(ok: bool) -> str:
    return 'met' if ok else 'NOT met'


def to_markdown(result: dict[str, Any]) -> str:
    m, git, cfg = result['machine'], result.get('git', {}), result['config']
    before, after = result['load_1min_before'], result['load_1min_after']
    lines = ['# Node graph timing over DDS (`vidplan bench graph`)', '',
             f"Command: `{result['command']}`  ",
             f"Commit {git.get('commit', '?')[:12]}{' (dirty)' if git.get('dirty') else ''}, "
             f"{result['started_utc']}, {result['wall_s']:g} s  ",
             f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['platform']}, Python "
             f"{m['python']}, cyclonedds {m.get('cyclonedds')}; the bench ran at nice "
             f"{cfg['nice']}  ",
             f'Load average (1 min): **{before:g} before, {after:g} after** '
             f"(1/5/15 min at start {m.get('loadavg')}, at end {m.get('loadavg_at_end')}).", '']
    cores = m.get('cpu_count') or 1
    if max(before, after) > 0.5 * cores:
        lines += [f'**Loaded machine:** other jobs kept the {cores} cores busy (1-min load '
                  f'{before:g} -> {after:g} on {cores} cores) while this ran, so the tails '
                  '(p95, p99, max) here are upper bounds for an idle host; the p50s are the '
                  'closer figures.'
                  + (f" The bench's processes ran at nice {cfg['nice']}, below those jobs."
                     if cfg['nice'] > 0 else ''), '']
    lines += [f"Clock: {cfg['clock']}: one-way times across processes need no RTT halving and "
              'have no clock offset. Warm-up of each phase not counted: '
              f"{cfg['warmup_s']:g} s.", '']
    if 'hop' in result:
        lines += ['## Camera set hop (2 processes, Cyclone DDS, loopback)', '',
                  'A child node publishes the 3 Images of a set back to back (best effort '
                  f"QOS_SENSOR_DATA, as the sim's cameras) at {cfg['camera_rate_hz']:g} Hz; "
                  "latency = receipt of the last of the 3 here - the publisher's clock just "
                  'before its first publish (in the header stamp). One way, same clock.', '',
                  '| camera set | bytes / image | sets sent | received | lost | incomplete '
                  '| p50 ms | p95 ms | p99 ms | max ms |',
                  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
        for r in result['hop'].values():
            lat = r['latency_ms']
            lines.append(f"| {r['label']} | {r['image_bytes']} | {r['sets_sent']} | "
                         f"{r['sets_received']} | {r['sets_lost']} | {r['sets_incomplete']} | "
                         f"{_f(lat['p50'])} | {_f(lat['p95'])} | {_f(lat['p99'])} | "
                         f"{_f(lat['max'])} |")
        small = result['hop'].get('128x128')
        if small:
            lat = small['latency_ms']
            lines += ['', f"Figure (issue 12), 3 x 128x128: p50 {_f(lat['p50'])} ms (<= "
                      f"{TARGET_HOP_MS['p50']:g}): {_verdict(lat['p50'] <= TARGET_HOP_MS['p50'])}"
                      f"; p99 {_f(lat['p99'])} ms (<= {TARGET_HOP_MS['p99']:g}): "
                      f"{_verdict(lat['p99'] <= TARGET_HOP_MS['p99'])}."]
        lines.append('')
    if 'executor' in result:
        ex = result['executor']
        lines += ['## Executor command period (500 Hz)', '',
                  f"The executor node ({ex['robot']}, {ex['interface']} on "
                  f"`{ex['command_topic']}`, control_dt {ex['control_dt_s'] * 1e3:g} ms, "
                  'config/executor.yaml) in its own process on the dds backend, spinning as the '
                  'node does, tick timed at entry; this process stands in for the robot '
                  '(LowState at 500 Hz, holding the ready pose: the executor holds and commands '
                  'every tick) and timestamps each LowCmd it receives. Under load: '
                  f"{ex['busy_loops_under_load']} busy-loop processes started by the bench (at "
                  'its niceness) for that phase.', '',
                  '| phase | measured at | intervals (expected) | mean period ms '
                  '| abs(period - 2 ms) p50 ms | p99 ms | max ms | intervals > 3 ms '
                  '| tick cost p50 / p99 ms |', '|---|---|---:|---:|---:|---:|---:|---:|---|']
        for phase, ph in ex['phases'].items():
            for where, label in (('node_ticks', 'node tick'),
                                 ('received_commands', 'LowCmd receipt')):
                st = ph[where]
                err = st['abs_error_ms']
                cost = st.get('tick_cost_ms')
                lines.append(f"| {phase} | {label} | {st['intervals']} "
                             f"({ph['expected_periods']}) | {_f(st['mean_period_ms'], 3)} | "
                             f"{_f(err['p50'], 3)} | {_f(err['p99'], 3)} | {_f(err['max'], 2)} "
                             f"| {st['over_1_5_periods']} | "
                             + (f"{_f(cost['p50'], 3)} / {_f(cost['p99'], 3)}" if cost else '')
                             + ' |')
        idle = ex['phases'].get('idle')
        if idle:
            p99 = idle['node_ticks']['abs_error_ms']['p99']
            lines += ['', f'Figure (issue 12): idle node-tick p99 abs(period - 2 ms) = '
                      f'{_f(p99, 3)} ms (<= {TARGET_PERIOD_ERROR_P99_MS:g}): '
                      f'{_verdict(p99 <= TARGET_PERIOD_ERROR_P99_MS)}.']
        lines.append('')
    if 'graph' in result:
        g = result['graph']
        lines += ['## Node graph: camera -> plan -> command (`vidplan launch sim` processes)',
                  '']
        if 'skipped' in g:
            lines += [f"Not measured: {g['skipped']}", '']
        else:
            mon = g['monitor_summary'].get('latency_ms', {}).get('total', {})
            lines += [f"{g['robot']} {g['task']}, model set {g['model']}, cameras "
                      f"{', '.join(g['cameras'])}; {g['measured_s']:g} s measured after the "
                      f"first grounded plan ({g['startup_s']:g} s start-up). Camera time = the "
                      'first receipt of the stamp at an observer node here; plan = its receipt '
                      'there; first command = the executor publishing its first command after '
                      'accepting the plan (hook in the executor process), which commands '
                      f"on {g.get('executor_interface', '?')} every "
                      f"{g.get('command_period_ms', math.nan):g} ms: up to one such period of "
                      'the second row is waiting for the next command.', '',
                      '| path | n | p50 ms | p95 ms | p99 ms | max ms |',
                      '|---|---:|---:|---:|---:|---:|']
            for key, label in (('camera_to_plan_ms', 'camera -> grounded plan'),
                               ('camera_to_first_command_ms',
                                'camera -> first new executor command')):
                st = g[key]
                lines.append(f"| {label} | {st['n']} | {_f(st['p50'], 1)} | {_f(st['p95'], 1)}"
                             f" | {_f(st['p99'], 1)} | {_f(st['max'], 1)} |")
            if mon.get('count'):
                lines += ['', f"The monitor's own camera -> grounded plan (summary.json, whole "
                          f"run incl. start-up): n {mon['count']}, p50 {mon['p50']:.1f} ms, p95 "
                          f"{mon['p95']:.1f} ms, max {mon['max']:.1f} ms."]
            lines.append('')
    return '\n'.join(lines) + '\n'


def plot(result: dict[str, Any], path: Path) -> None:
    """One PNG: the latency distributions (empirical CDFs) of every phase that ran."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels: list[tuple[str, str, dict[str, list[float]]]] = []
    if 'hop' in result:
        panels.append(('camera set hop, one way', 'ms',
                       {r['label']: r['samples_ms'] for r in result['hop'].values()}))
    if 'executor' in result:
        series = {}
        for phase, ph in result['executor']['phases'].items():
            for where, s in ph['samples_abs_error_ms'].items():
                series[f"{phase}, {where.replace('_', ' ')}"] = s
        panels.append(('executor |period - 2 ms|', 'ms', series))
    if 'graph' in result and 'samples_ms' in result['graph']:
        panels.append(('node graph latency', 'ms',
                       {k.replace('_', ' '): v
                        for k, v in result['graph']['samples_ms'].items()}))
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, unit, series) in zip(axes[0], panels):
        for label, values in series.items():
            v = np.sort(np.asarray(values, dtype=float))
            if v.size:
                ax.plot(np.maximum(v, 1e-3), np.arange(1, v.size + 1) / v.size, label=label)
        ax.set_xscale('log')
        ax.set_xlabel(unit)
        ax.set_ylabel('fraction <= x')
        ax.set_title(title)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=7)
    load = f"load {result['load_1min_before']:g} -> {result['load_1min_after']:g}"
    fig.suptitle(f"vidplan bench graph ({result['machine']['cpu_count']} cores, {load})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _strip_samples(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the raw sample lists (they go to the plot, not to graph.json)."""
    out = json.loads(json.dumps(result))
    for r in out.get('hop', {}).values():
        r.pop('samples_ms', None)
    for ph in out.get('executor', {}).get('phases', {}).values():
        ph.pop('samples_abs_error_ms', None)
    out.get('graph', {}).pop('samples_ms', None)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='vidplan bench graph', description=__doc__.split('\n')[0])
    p.add_argument('--duration-s', type=float, default=10.0,
                   help='measured seconds per hop case and per executor phase (default 10)')
    p.add_argument('--only', default=','.join(PHASES), metavar='PHASE,...',
                   help=f'phases to run, of {",".join(PHASES)} (default all)')
    p.add_argument('--out', type=Path, default=Path('benchmarks'),
                   help='directory for graph.json, graph.md, graph.png (default benchmarks)')
    p.add_argument('--camera-rate-hz', type=float, default=30.0,
                   help='camera sets per second in the hop phase (default 30)')
    p.add_argument('--graph-s', type=float, default=25.0,
                   help='measured seconds of the launched graph (default 25)')
    p.add_argument('--graph-robot', default='franka')
    p.add_argument('--graph-task', default='push')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--child', choices=('cameras', 'executor', 'graph-executor'),
                   help=argparse.SUPPRESS)
    p.add_argument('--sizes', default='', help=argparse.SUPPRESS)
    p.add_argument('--rate', type=float, default=30.0, help=argparse.SUPPRESS)
    p.add_argument('--warmup-s', type=float, default=WARMUP_S, help=argparse.SUPPRESS)
    p.add_argument('--ticks-out', default='', help=argparse.SUPPRESS)
    p.add_argument('--plans-out', default='', help=argparse.SUPPRESS)
    p.add_argument('rest', nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.child == 'cameras':
        sizes = [tuple(int(v) for v in s.split('x')) for s in args.sizes.split(',') if s]
        return run_camera_child(sizes, args.rate, args.duration_s, args.warmup_s)
    if args.child == 'executor':
        return run_executor_child(args.ticks_out)
    if args.child == 'graph-executor':
        rest = args.rest[1:] if args.rest[:1] == ['--'] else args.rest
        return run_graph_executor_child(args.plans_out, rest)
    only = [s.strip() for s in args.only.split(',') if s.strip()]
    result = run_bench(only, args.duration_s, args.camera_rate_hz, args.graph_s,
                       args.graph_robot, args.graph_task, not args.no_progress,
                       command=['vidplan', 'bench', 'graph', *argv])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'graph.json').write_text(json.dumps(_strip_samples(result), indent=1) + '\n')
    md = to_markdown(result)
    plot(result, args.out / 'graph.png')
    (args.out / 'graph.md').write_text(md + '\n![latency distributions](graph.png)\n')
    print(md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
