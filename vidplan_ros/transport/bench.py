"""Transport benchmark: DDS round-trip latency between two processes, and CDR (de)serialise cost.

    python -m vidplan_ros.transport.bench --duration 5          # prints a markdown table
    vidplan bench transport --duration 5                        # the same, via the CLI

A child process (this module with ``--echo-child``) runs a node that echoes every benchmark
topic back on ``<topic>/echo``; this process publishes each message type at its rate from a node
timer and times publish -> echo callback with ``perf_counter_ns`` (one clock, so no cross-process
clock error). Both sides are our ``create_node(..., backend='dds')`` nodes with their executor
(``spin_once``), so the numbers include what a node pays: serialise, DDS over loopback, wake-up,
deserialise, callback dispatch -- twice (there and back). Loopback-only unicast discovery
(:mod:`vidplan_ros.transport.dds_config`) on a random domain id, so runs do not cross-talk.

Cases run one after another; the first ``warmup_s`` of each are not counted. Serialise and
deserialise are timed in this process with ``timeit`` (best of 5 repeats, per call).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import random
import subprocess
import sys
import threading
import time
import timeit
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vidplan_ros.core import provenance
from vidplan_ros.transport.dds_config import LOCALHOST_CYCLONEDDS_XML, localhost_env
from vidplan_ros.transport.qos import QOS_DEFAULT

TOPIC_PREFIX = '/vidplan_bench'
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((96, 96), (640, 480))
ARM_JOINTS = [f'fr3_joint{i}' for i in range(1, 8)]
TRAJECTORY_POINTS = 20
CHILD_MAX_LIFETIME_S = 3600.0


# --- cases -----------------------------------------------------------------------------------

@dataclass
class Case:
    """One benchmarked message: its type, topic key, publish rate and how it carries a seq no."""

    key: str                                  # topic suffix and result key
    label: str                                # row label in the table
    ros_type: str
    rate_hz: float
    make: Callable[[Callable[[str], type]], Any]
    set_seq: Callable[[Any, int], None]
    get_seq: Callable[[Any], int]


def _stamp_seq(msg: Any, seq: int) -> None:
    msg.header.stamp.sec = seq


def _stamp_get(msg: Any) -> int:
    return int(msg.header.stamp.sec)


def _joint_state(msg_type: Callable[[str], type]) -> Any:
    from vidplan_ros.transport import convert as cv
    return cv.joint_state_msg(msg_type, 0, ARM_JOINTS, np.linspace(-1.0, 1.0, 7),
                              np.linspace(0.1, 0.7, 7), np.linspace(-3.0, 3.0, 7))


def _joint_trajectory(msg_type: Callable[[str], type]) -> Any:
    from vidplan_ros.transport import convert as cv
    t = np.linspace(0.05, 1.0, TRAJECTORY_POINTS)
    q = np.sin(t[:, None] * np.arange(1, 8)[None, :])
    return cv.joint_trajectory_msg(msg_type, 0, ARM_JOINTS, t, q, np.cos(q), -q)


def _lowcmd(msg_type: Callable[[str], type]) -> Any:
    from vidplan_ros.transport import convert as cv
    n = cv.UNITREE_MOTORS
    q = np.linspace(-1.0, 1.0, n)
    return cv.lowcmd_msg(msg_type, 1, q, np.zeros(n), np.full(n, 0.5), np.full(n, 60.0),
                         np.full(n, 1.5), np.ones(n, dtype=np.uint8))


def _lowstate(msg_type: Callable[[str], type]) -> Any:
    from vidplan_ros.transport import convert as cv
    n = cv.UNITREE_MOTORS
    q = np.linspace(-1.0, 1.0, n)
    return cv.lowstate_msg(msg_type, 0, 1, q, 0.1 * q, 2.0 * q)


def _lowcmd_set(msg: Any, seq: int) -> None:
    msg.reserve[0] = seq  # the CRC is not restamped: the echo does not check it


def _image_maker(width: int, height: int) -> Callable[[Callable[[str], type]], Any]:
    def make(msg_type: Callable[[str], type]) -> Any:
        from vidplan_ros.transport import convert as cv
        rng = np.random.default_rng(width * 100_003 + height)
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        return cv.image_msg(msg_type, 0, 'camera', pixels, 'rgb8')
    return make


def make_cases(sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
               keys: Sequence[str] | None = None) -> list[Case]:
    """The benchmark cases (all, or those whose key is in ``keys``), in run order."""
    cases = [
        Case('joint_state', 'JointState (7 joints)', 'sensor_msgs/msg/JointState', 1000.0,
             _joint_state, _stamp_seq, _stamp_get),
        Case('joint_trajectory', f'JointTrajectory ({TRAJECTORY_POINTS} pts x 7)',
             'trajectory_msgs/msg/JointTrajectory', 50.0, _joint_trajectory, _stamp_seq,
             _stamp_get),
        Case('lowcmd', 'unitree_hg LowCmd', 'unitree_hg/msg/LowCmd', 500.0, _lowcmd,
             _lowcmd_set, lambda m: int(m.reserve[0])),
        Case('lowstate', 'unitree_hg LowState', 'unitree_hg/msg/LowState', 500.0, _lowstate,
             lambda m, s: setattr(m, 'tick', s), lambda m: int(m.tick)),
    ]
    for w, h in sizes:
        cases.append(Case(f'image_{w}x{h}', f'Image rgb8 {w}x{h}', 'sensor_msgs/msg/Image',
                          30.0, _image_maker(w, h), _stamp_seq, _stamp_get))
    if keys is not None:
        unknown = sorted(set(keys) - {c.key for c in cases})
        if unknown:
            raise ValueError(f'unknown bench case(s) {unknown}; known: '
                             f'{[c.key for c in cases]}')
        cases = [c for c in cases if c.key in keys]
    return cases


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'96x96,640x480' -> [(96, 96), (640, 480)] (width x height)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(','))):
        try:
            w, h = (int(v) for v in part.lower().split('x'))
        except ValueError:
            raise ValueError(f'image size {part!r} is not WIDTHxHEIGHT, e.g. 640x480') from None
        if w < 1 or h < 1:
            raise ValueError(f'image size {part!r} must be positive')
        out.append((w, h))
    return out


# --- echo child ------------------------------------------------------------------------------

def run_echo_child(domain_id: int, sizes: Sequence[tuple[int, int]],
                   keys: Sequence[str] | None) -> int:
    """Echo every case topic back on ``<topic>/echo`` until stdin closes."""
    from vidplan_ros.transport import create_node
    node = create_node('vidplan_bench_echo', backend='dds', domain_id=domain_id)
    for case in make_cases(sizes, keys):
        topic = f'{TOPIC_PREFIX}/{case.key}'
        pub = node.create_publisher(case.ros_type, topic + '/echo', QOS_DEFAULT)
        node.create_subscription(case.ros_type, topic, pub.publish, QOS_DEFAULT)
    print('READY', flush=True)
    stdin_closed = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stdin_closed.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    deadline = time.monotonic() + CHILD_MAX_LIFETIME_S
    while not stdin_closed.is_set() and time.monotonic() < deadline:
        node.spin_once(0.05)
    node.shutdown()
    return 0


class ChildProcess:
    """A benchmark's child process: stdout lines queued, stderr kept (both pumped by threads);
    it stops when its stdin closes (`stop`), or is killed."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        for stream, sink in ((self.proc.stdout, self.lines.put),
                             (self.proc.stderr, self.stderr_lines.append)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line)

    def stop(self, timeout_s: float = 5.0) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=timeout_s)
        except Exception:  # noqa: BLE001 - whatever happened, the child must go
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)


class _Child(ChildProcess):
    def __init__(self, domain_id: int, sizes: Sequence[tuple[int, int]],
                 keys: Sequence[str] | None) -> None:
        env = localhost_env()
        root = str(Path(__file__).resolve().parents[2])
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [root, env.get('PYTHONPATH')]))
        argv = [sys.executable, '-m', 'vidplan_ros.transport.bench', '--echo-child',
                str(domain_id), '--sizes', ','.join(f'{w}x{h}' for w, h in sizes)]
        if keys is not None:
            argv += ['--cases', ','.join(keys)]
        super().__init__(argv, env)

    def stderr(self) -> str:
        return ''.join(self.stderr_lines[-30:])

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.lines.get(timeout=0.1).strip() == 'READY':
                    return
            except queue.Empty:
                pass
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError(f'bench echo child exited with {self.proc.returncode}:\n'
                                   f'{self.stderr()}')
            if time.monotonic() > deadline:
                raise RuntimeError(f'bench echo child not ready after {timeout_s} s:\n'
                                   f'{self.stderr()}')


# --- measurement -----------------------------------------------------------------------------

def _per_call_us(fn: Callable[[], Any], budget_s: float) -> float:
    """Best-of-5 µs per call of ``fn``, spending about ``budget_s`` in total."""
    number, elapsed = 1, 0.0
    while True:
        elapsed = timeit.timeit(fn, number=number)
        if elapsed >= budget_s / 10 or number >= 1_000_000:
            break
        number *= 2 if elapsed <= 0 else max(2, min(10, int(budget_s / 10 / elapsed) + 1))
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def _stats(latencies_us: list[float]) -> dict[str, float]:
    if not latencies_us:
        return {k: math.nan for k in ('p50', 'p90', 'p99', 'max', 'mean')}
    a = np.asarray(latencies_us, dtype=np.float64)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {'p50': float(p50), 'p90': float(p90), 'p99': float(p99), 'max': float(a.max()),
            'mean': float(a.mean())}


def _run_case(node: Any, pub: Any, handlers: dict[str, Any], case: Case, duration_s: float,
              warmup_s: float, drain_s: float) -> dict[str, Any]:
    """Publish ``case`` at its rate for warm-up + ``duration_s``; time each echo."""
    msg = case.make(node.msg_type)
    topic = f'{TOPIC_PREFIX}/{case.key}'
    sent: dict[int, int] = {}
    latencies: list[float] = []
    counts = {'sent': 0, 'received': 0, 'late_or_unknown': 0}
    state = {'seq': 0, 'record_from': 0}
    perf = time.perf_counter_ns

    def on_echo(echo: Any) -> None:
        t = perf()
        t0 = sent.pop(case.get_seq(echo), None)
        if t0 is None:
            counts['late_or_unknown'] += 1
            return
        counts['received'] += 1
        latencies.append((t - t0) / 1e3)

    def send() -> None:
        state['seq'] += 1
        seq = state['seq']
        case.set_seq(msg, seq)
        if seq >= state['record_from']:
            sent[seq] = perf()
            counts['sent'] += 1
        pub.publish(msg)

    handlers[case.key] = on_echo
    state['record_from'] = 1 << 62
    start = time.monotonic()
    timer = node.create_timer(1.0 / case.rate_hz, send)
    try:
        while time.monotonic() < start + warmup_s:
            node.spin_once(0.01)
        sent.clear()
        state['record_from'] = state['seq'] + 1
        measure_start = time.monotonic()
        while time.monotonic() < measure_start + duration_s:
            node.spin_once(0.01)
        timer.cancel()
        drain_until = time.monotonic() + drain_s
        while sent and time.monotonic() < drain_until:
            node.spin_once(0.01)
        measured_s = time.monotonic() - measure_start
    finally:
        timer.cancel()
        handlers[case.key] = None
    cls = type(msg)
    data = msg.serialize()
    budget = max(0.02, min(0.5, duration_s / 4))
    return {
        'ros_type': case.ros_type, 'topic': topic, 'rate_hz': case.rate_hz,
        'cdr_bytes': len(data), 'sent': counts['sent'], 'received': counts['received'],
        'lost': counts['sent'] - counts['received'], 'measured_s': measured_s,
        'latency_us': _stats(latencies),
        'serialize_us': _per_call_us(msg.serialize, budget),
        'deserialize_us': _per_call_us(lambda: cls.deserialize(data), budget),
    }


def machine_info() -> dict[str, Any]:
    """Where the numbers were taken (core/provenance.py; load average included: other jobs
    skew them), with the Cyclone DDS version."""
    return provenance.machine_info(packages=('cyclonedds',))


def run_transport_bench(duration_s: float = 5.0,
                        sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
                        cases: Sequence[str] | None = None, domain_id: int | None = None,
                        warmup_s: float | None = None,
                        discovery_timeout_s: float = 30.0) -> dict[str, Any]:
    """Round-trip latency per case over DDS between two OS processes, plus (de)serialise µs.

    ``sizes``: (width, height) of the rgb8 Image cases. ``cases``: keys to run (default all:
    joint_state, joint_trajectory, lowcmd, lowstate, image_WxH...). Returns
    ``{'config': ..., 'machine': ..., 'results': {key: {...}}}`` where each result holds
    ``latency_us`` (p50/p90/p99/max/mean), ``serialize_us``, ``deserialize_us``, counts and the
    CDR size in bytes.
    """
    from vidplan_ros.transport import create_node
    if not duration_s > 0:
        raise ValueError(f'duration_s {duration_s!r} must be > 0')
    sizes = [tuple(s) for s in sizes]
    selected = make_cases(sizes, cases)
    keys = [c.key for c in selected]
    if warmup_s is None:
        warmup_s = min(0.5, max(0.05, duration_s / 4))
    if domain_id is None:
        domain_id = random.SystemRandom().randint(100, 230)
    load_before = machine_info().get('loadavg')
    t_start = time.monotonic()

    old_uri = os.environ.get('CYCLONEDDS_URI')
    # Read by Cyclone when this process first opens domain `domain_id` (a fresh, random one).
    os.environ['CYCLONEDDS_URI'] = LOCALHOST_CYCLONEDDS_XML
    child = _Child(domain_id, sizes, keys if cases is not None else None)
    node = None
    try:
        child.wait_ready(discovery_timeout_s)
        node = create_node('vidplan_bench', backend='dds', domain_id=domain_id)
        pubs: dict[str, Any] = {}
        handlers: dict[str, Any] = {}
        subs = []
        for case in selected:
            topic = f'{TOPIC_PREFIX}/{case.key}'
            pubs[case.key] = node.create_publisher(case.ros_type, topic, QOS_DEFAULT)
            handlers[case.key] = None

            def dispatch(msg: Any, key: str = case.key) -> None:
                handler = handlers.get(key)
                if handler is not None:
                    handler(msg)

            subs.append(node.create_subscription(case.ros_type, topic + '/echo', dispatch,
                                                 QOS_DEFAULT))
        deadline = time.monotonic() + discovery_timeout_s
        while not (all(p.get_subscription_count() > 0 for p in pubs.values())
                   and all(s.get_publisher_count() > 0 for s in subs)):
            if child.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'bench: discovery with the echo child failed on domain '
                                   f'{domain_id}; child stderr:\n{child.stderr()}')
            node.spin_once(0.02)
        results = {}
        for case in selected:
            results[case.key] = {'label': case.label, **_run_case(
                node, pubs[case.key], handlers, case, duration_s, warmup_s,
                drain_s=max(0.5, 2.0 / case.rate_hz))}
    finally:
        if node is not None:
            node.shutdown()
        child.stop()
        if old_uri is None:
            os.environ.pop('CYCLONEDDS_URI', None)
        else:
            os.environ['CYCLONEDDS_URI'] = old_uri
    machine = machine_info()
    machine['loadavg_before'] = load_before
    return {
        'config': {'duration_s': duration_s, 'warmup_s': warmup_s, 'sizes': sizes,
                   'cases': keys, 'domain_id': domain_id,
                   'qos': 'reliable, volatile, keep_last 10 (QOS_DEFAULT) both ways',
                   'wall_s': round(time.monotonic() - t_start, 1)},
        'machine': machine,
        'results': results,
    }


# --- report ----------------------------------------------------------------------------------

def format_markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table (latencies are round trips, in µs)."""
    rows = ['| message | rate Hz | CDR bytes | sent | lost | RTT p50 | p90 | p99 | max '
            '| serialise µs | deserialise µs |',
            '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in result['results'].values():
        lat = r['latency_us']
        rows.append(f"| {r['label']} | {r['rate_hz']:g} | {r['cdr_bytes']} | {r['sent']} | "
                    f"{r['lost']} | {lat['p50']:.0f} | {lat['p90']:.0f} | {lat['p99']:.0f} | "
                    f"{lat['max']:.0f} | {r['serialize_us']:.1f} | {r['deserialize_us']:.1f} |")
    return '\n'.join(rows) + '\n'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='vidplan bench transport',
        description='DDS round-trip latency between two processes (loopback) and CDR '
                    'serialise/deserialise cost for the message types vidplan uses.')
    parser.add_argument('--duration', type=float, default=5.0, metavar='S',
                        help='measured seconds per message type (default 5)')
    parser.add_argument('--sizes', default='96x96,640x480', metavar='WxH,...',
                        help='rgb8 image sizes (default 96x96,640x480)')
    parser.add_argument('--cases', default=None, metavar='KEY,...',
                        help='only these cases: joint_state, joint_trajectory, lowcmd, '
                             'lowstate, image_WxH (default all)')
    parser.add_argument('--domain', type=int, default=None,
                        help='DDS domain id (default: random 100..230)')
    parser.add_argument('--json', default=None, metavar='PATH',
                        help='also write the full result dict as JSON')
    parser.add_argument('--echo-child', type=int, default=None, metavar='DOMAIN',
                        help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = parse_sizes(args.sizes)
    keys = [k.strip() for k in args.cases.split(',') if k.strip()] if args.cases else None
    if args.echo_child is not None:
        return run_echo_child(args.echo_child, sizes, keys)
    result = run_transport_bench(args.duration, sizes, keys, domain_id=args.domain)
    m = result['machine']
    print(format_markdown(result))
    print(f"{m.get('cpu_count')} CPUs, Python {m['python']}, cyclonedds {m['cyclonedds']}, "
          f"load average before {m.get('loadavg_before')} after {m.get('loadavg')}; "
          f"{result['config']['duration_s']:g} s per case, RTT = publish -> echo callback.")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
