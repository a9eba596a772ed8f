"""Record episodes into bags: from the embedded sim (`EpisodeRecorder`) or live topics.

`EpisodeRecorder` is a rollout hook (`run_episode(..., on_step=recorder)`): at every plan tick
it writes the topics a user records on the real robot, stamped with sim time (log time = header
stamp = sim time since reset), so sim episodes and robot bags look the same to the dataset
builder:

    /cameras/<name>/image_raw      sensor_msgs/msg/Image (rgb8), every camera of the env
    /cameras/<name>/camera_info    sensor_msgs/msg/CameraInfo (pinhole K, no distortion)
    /joint_states                  sensor_msgs/msg/JointState: arm joints, then gripper fingers
    /lowstate                      unitree_hg/msg/LowState (G1 only, as the robot publishes it)
    <command topic>                trajectory_msgs/msg/JointTrajectory: the commanded chunk,
                                   stamped with its observation's time. Franka: the JTC topic
                                   (spec.interfaces.joint_trajectory_topic). G1: the rollout
                                   gives trajectory chunks, not the 500 Hz LowCmd stream, so
                                   chunks go to /vidplan/commanded_trajectory.
    /franka_gripper/joint_command  sensor_msgs/msg/JointState, finger targets = width / 2
                                   (robots with a gripper, when the expert commands one; the
                                   topic the sim node takes gripper commands on)
    /clock                         rosgraph_msgs/msg/Clock

Observations and the command made from them share a log time; the end state of the episode is
one more observation without a command.

`record_topics` is `vidplan record`: subscribe over the transport and write until a duration
passes or Ctrl-C; the bag is closed properly either way (also on SIGTERM and on errors).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vidplan_ros.data.bags import BagError, BagWriter
from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.dds_msgs import UnknownRosTypeError, dds_type
from vidplan_ros.transport.qos import QoS

__all__ = ['CLOCK_TOPIC', 'COMMANDED_TRAJECTORY_TOPIC', 'EXPERT_TRAJECTORY_TOPIC',
           'EpisodeRecorder', 'GRIPPER_TOPIC', 'KNOWN_TOPIC_TYPES', 'RecordResult',
           'build_parser', 'camera_topics', 'command_topic', 'main', 'parse_topic',
           'record_topics', 'topic_type']

CLOCK_TOPIC = '/clock'
JOINT_STATES_TOPIC = '/joint_states'
COMMANDED_TRAJECTORY_TOPIC = '/vidplan/commanded_trajectory'
# The expert's own chunk when the executed one was perturbed (DART collection, sim.perturb).
EXPERT_TRAJECTORY_TOPIC = '/vidplan/expert_trajectory'
# The sim's ground truth of the task (sim.tasks.task_vector: cube and goal, or the target),
# one dimension labelled with the comma-joined names, stamped by the bag's log time: a
# training label for what the views must show (nn.planner's state head), never an input.
TASK_STATE_TOPIC = '/vidplan/task_state'
GRIPPER_TOPIC = '/franka_gripper/joint_command'   # what the sim node subscribes to
G1_MODE_MACHINE = 5                               # G1 29-DoF rev 1.0 (robots.md §2.2)

# Types of the topics this stack and its robots use, for `vidplan record <topic>` without a type.
# Exact names first, then shell-style patterns (first match wins).
KNOWN_TOPIC_TYPES: dict[str, str] = {
    CLOCK_TOPIC: 'rosgraph_msgs/msg/Clock',
    JOINT_STATES_TOPIC: 'sensor_msgs/msg/JointState',
    '/joint_command': 'sensor_msgs/msg/JointState',
    '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
    '/lowcmd': 'unitree_hg/msg/LowCmd',
    '/arm_sdk': 'unitree_hg/msg/LowCmd',
    '/lowstate': 'unitree_hg/msg/LowState',
    GRIPPER_TOPIC: 'sensor_msgs/msg/JointState',
    COMMANDED_TRAJECTORY_TOPIC: 'trajectory_msgs/msg/JointTrajectory',
    EXPERT_TRAJECTORY_TOPIC: 'trajectory_msgs/msg/JointTrajectory',
    '*/image_raw/compressed': 'sensor_msgs/msg/CompressedImage',
    '*/compressed': 'sensor_msgs/msg/CompressedImage',
    '*/image_raw': 'sensor_msgs/msg/Image',
    '*/image_rect*': 'sensor_msgs/msg/Image',
    '*/camera_info': 'sensor_msgs/msg/CameraInfo',
    '*/joint_trajectory': 'trajectory_msgs/msg/JointTrajectory',
    '*/joint_states': 'sensor_msgs/msg/JointState',
}

# What a recorder subscribes with: best effort matches reliable and best-effort publishers
# alike (a reliable reader would never hear a sensor-data publisher); a deep queue rides out
# bursts between spins.
RECORD_QOS = QoS(reliability='best_effort', depth=100)


def topic_type(topic: str) -> str | None:
    """The ROS type of a known topic name (exact or by pattern), or None."""
    if topic in KNOWN_TOPIC_TYPES:
        return KNOWN_TOPIC_TYPES[topic]
    for pattern, ros_type in KNOWN_TOPIC_TYPES.items():
        if '*' in pattern and fnmatch.fnmatchcase(topic, pattern):
            return ros_type
    return None


def parse_topic(spec: str) -> tuple[str, str]:
    """`/topic` or `/topic:pkg/msg/Type` -> (topic, ros_type); the type of a known topic may be
    left out."""
    topic, _, ros_type = spec.partition(':')
    topic = topic.strip()
    if not topic.startswith('/'):
        raise BagError(f'topic {spec!r}: give the full name, e.g. {"/" + topic!r}')
    ros_type = ros_type.strip() or (topic_type(topic) or '')
    if not ros_type:
        raise BagError(f'topic {topic}: its type is not known; give it as '
                       f'{topic}:pkg/msg/Type (e.g. {topic}:sensor_msgs/msg/Image)')
    if ros_type.count('/') != 2:
        raise BagError(f'topic {topic}: type {ros_type!r} is not pkg/msg/Type')
    return topic, ros_type


def camera_topics(camera: str) -> tuple[str, str]:
    """(image topic, camera_info topic) of a camera."""
    return f'/cameras/{camera}/image_raw', f'/cameras/{camera}/camera_info'


def command_topic(spec: Any) -> str:
    """Where a robot's commanded trajectory chunks are recorded (see the module doc)."""
    if spec.interfaces.command_interface == 'joint_trajectory':
        return spec.interfaces.joint_trajectory_topic
    return COMMANDED_TRAJECTORY_TOPIC


class EpisodeRecorder:
    """Writes one sim episode into `bag`; call it as the rollout's `on_step(env, t_s, action)`.

    `env` is a `vidplan_ros.sim.env.SimEnv`; `action` has `stamp_s`, `times_from_start_s` (T,),
    `positions` (T, n) in spec joint order and `gripper_width_m` (float or None), like
    `sim.experts.ExpertAction`. Every call renders each camera once. After the rollout,
    `record_end()` adds the final observation, so observations outnumber commands by one.
    """

    def __init__(self, env: Any, bag: BagWriter, cameras: Sequence[str] | None = None,
                 record_labels: bool = False) -> None:
        self.env = env
        self.record_labels = record_labels   # also the expert's own chunk (perturbed runs)
        self.bag = bag
        self.spec = env.spec
        self.cameras = tuple(cameras) if cameras is not None else tuple(env.camera_names)
        unknown = [c for c in self.cameras if c not in env.camera_names]
        if unknown:
            raise BagError(f'cameras {unknown} are not in the sim ({list(env.camera_names)})')
        self.is_g1 = self.spec.interfaces.unitree
        self.has_gripper = self.spec.gripper.width_max_m > 0
        self.fingers = tuple(self.spec.gripper.joint_names) if self.has_gripper else ()
        self.command_topic = command_topic(self.spec)
        self.steps = 0
        for topic, ros_type in self.topics().items():
            bag.add_topic(topic, ros_type)

    def topics(self) -> dict[str, str]:
        """Every topic this recorder writes, with its ROS type."""
        out = {CLOCK_TOPIC: 'rosgraph_msgs/msg/Clock',
               JOINT_STATES_TOPIC: 'sensor_msgs/msg/JointState',
               self.command_topic: 'trajectory_msgs/msg/JointTrajectory',
               TASK_STATE_TOPIC: 'std_msgs/msg/Float64MultiArray'}
        if self.record_labels:
            out[EXPERT_TRAJECTORY_TOPIC] = 'trajectory_msgs/msg/JointTrajectory'
        for cam in self.cameras:
            image, info = camera_topics(cam)
            out[image] = 'sensor_msgs/msg/Image'
            out[info] = 'sensor_msgs/msg/CameraInfo'
        if self.is_g1:
            out[self.spec.interfaces.lowstate_topic] = 'unitree_hg/msg/LowState'
        if self.has_gripper:
            out[GRIPPER_TOPIC] = 'sensor_msgs/msg/JointState'
        return out

    def __call__(self, env: Any, t_s: float, action: Any) -> None:
        if env is not self.env:
            raise BagError('EpisodeRecorder was made for another SimEnv')
        t_ns = int(round(t_s * 1e9))
        self.record_observation(t_ns)
        self.record_action(t_ns, action)
        self.steps += 1

    def record_observation(self, t_ns: int) -> None:
        """Clock, joint state (and G1 LowState) and every camera at sim time `t_ns`."""
        env, bag = self.env, self.bag
        bag.write(CLOCK_TOPIC, t_ns, cv.clock_msg(dds_type, t_ns))
        q, dq, tau = env.q(), env.dq(), env.effort()
        if self.fingers:
            joints = [env.data.joint(j) for j in self.fingers]
            q = np.concatenate([q, [float(j.qpos[0]) for j in joints]])
            dq = np.concatenate([dq, [float(j.qvel[0]) for j in joints]])
            tau = np.concatenate([tau, [float(j.qfrc_actuator[0]) for j in joints]])
        bag.write(JOINT_STATES_TOPIC, t_ns, cv.joint_state_msg(
            dds_type, t_ns, list(self.spec.joint_names) + list(self.fingers), q, dq, tau))
        if self.is_g1:
            n = self.spec.num_joints
            slots = np.asarray(self.spec.unitree.motor_indices)
            full = [np.zeros(cv.UNITREE_MOTORS) for _ in range(3)]
            for arr, val in zip(full, (q[:n], dq[:n], tau[:n])):
                arr[slots] = val
            bag.write(self.spec.interfaces.lowstate_topic, t_ns, cv.lowstate_msg(
                dds_type, t_ns // 1_000_000, G1_MODE_MACHINE, *full))
        from vidplan_ros.sim.tasks import task_vector
        names, values = task_vector(env.task_state())
        bag.write(TASK_STATE_TOPIC, t_ns, cv.named_values_msg(dds_type, names, values))
        for cam in self.cameras:
            pixels = env.render(cam)
            frame = f'{cam}_camera_optical_frame'
            image, info = camera_topics(cam)
            bag.write(image, t_ns, cv.image_msg(dds_type, t_ns, frame, pixels, 'rgb8'))
            bag.write(info, t_ns, cv.camera_info_msg(dds_type, t_ns, frame, pixels.shape[1],
                                                     pixels.shape[0],
                                                     env.camera_intrinsics(cam)))

    def record_end(self) -> None:
        """The observation at the end of the episode (no command follows it); call once after
        the rollout, so the bag also shows where the last chunk led."""
        self.record_observation(int(round(self.env.time_s * 1e9)))

    def record_action(self, t_ns: int, action: Any) -> None:
        """The commanded chunk (stamped with its observation's time) and gripper width."""
        stamp_ns = int(round(float(action.stamp_s) * 1e9))
        self.bag.write(self.command_topic, t_ns, cv.joint_trajectory_msg(
            dds_type, stamp_ns, self.spec.joint_names, action.times_from_start_s,
            action.positions))
        label = getattr(action, 'label_positions', None)
        if self.record_labels and label is not None:
            self.bag.write(EXPERT_TRAJECTORY_TOPIC, t_ns, cv.joint_trajectory_msg(
                dds_type, stamp_ns, self.spec.joint_names, action.times_from_start_s, label))
        width = getattr(action, 'gripper_width_m', None)
        if self.has_gripper and width is not None:
            half = float(np.clip(width, 0.0, self.spec.gripper.width_max_m)) / 2
            self.bag.write(GRIPPER_TOPIC, t_ns, cv.joint_state_msg(
                dds_type, stamp_ns, self.fingers, [half] * len(self.fingers)))


@dataclass(frozen=True)
class RecordResult:
    path: Path
    counts: Mapping[str, int]
    duration_s: float
    stopped_by: str   # 'duration', 'ctrl-c' or 'stop'


def record_topics(node: Any, topics: Sequence[str | tuple[str, str]], out_dir: str | Path,
                  duration_s: float | None = None, metadata: Mapping[str, Any] | None = None,
                  qos: QoS = RECORD_QOS, overwrite: bool = False,
                  stop: Callable[[], bool | str] | None = None,
                  on_ready: Callable[[], None] | None = None,
                  compression: str = '') -> RecordResult:
    """Record `topics` (`/name`, `/name:pkg/msg/Type` or (name, type)) from `node` into a bag.

    Runs until `duration_s` of wall time passes, `stop()` is truthy (a string is kept as the
    reason), or Ctrl-C; log time is the
    node clock at receipt (sim time under use_sim_time). Ctrl-C ends a recording normally; any
    other exception closes the bag (metadata `complete: false`) and propagates. `on_ready` is
    called once the subscriptions exist; `compression` is BagWriter's ('' or 'zstd').
    """
    if getattr(node, 'backend', '') != 'dds':
        raise BagError('record_topics writes the CDR of dds_msgs messages and needs the dds '
                       'transport (VIDPLAN_TRANSPORT=dds); on a ROS 2 host `ros2 bag record -s '
                       'mcap` records the same bags')
    if duration_s is not None and not duration_s > 0:
        raise BagError(f'duration_s = {duration_s!r}: a number of seconds > 0, or None to '
                       'record until Ctrl-C')
    pairs = [parse_topic(t) if isinstance(t, str) else (t[0], t[1]) for t in topics]
    if not pairs:
        raise BagError('no topics to record; name at least one, e.g. /joint_states')
    dup = sorted({t for t, _ in pairs if [p for p, _ in pairs].count(t) > 1})
    if dup:
        raise BagError(f'topics {dup} are named twice; name each topic once')
    for topic, ros_type in pairs:
        try:
            dds_type(ros_type)
        except UnknownRosTypeError as exc:
            raise BagError(f'{topic}: cannot record {ros_type} without ROS ({exc})') from None
    meta = {'source': 'robot', 'recorded_topics': [t for t, _ in pairs]}
    meta.update(metadata or {})
    log = node.logger
    started = time.monotonic()
    stopped_by = 'duration'
    with BagWriter(out_dir, metadata=meta, overwrite=overwrite, compression=compression,
                   qos={t: QoS(depth=10) for t, _ in pairs}) as bag:
        subs = []
        for topic, ros_type in pairs:
            bag.add_topic(topic, ros_type)

            def on_msg(msg: Any, topic: str = topic, ros_type: str = ros_type) -> None:
                bag.write(topic, node.now_ns(), msg, ros_type=ros_type)

            subs.append(node.create_subscription(ros_type, topic, on_msg, qos))
        log.info(f'recording {len(pairs)} topics into {bag.path} '
                 f'({"for %g s" % duration_s if duration_s else "until Ctrl-C"})')
        if on_ready is not None:
            on_ready()
        deadline = None if duration_s is None else started + duration_s
        try:
            while node.ok():
                reason = stop() if stop is not None else None
                if reason:
                    stopped_by = reason if isinstance(reason, str) else 'stop'
                    break
                left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if left <= 0:
                    break
                node.spin_once(left)
                log.info(f'{sum(bag.counts.values())} messages so far', throttle_s=5.0)
        except KeyboardInterrupt:
            stopped_by = 'ctrl-c'
        elapsed = time.monotonic() - started
        bag.update_metadata(stopped_by=stopped_by, wall_duration_s=round(elapsed, 3))
        counts = bag.counts
    silent = [t for t, n in counts.items() if n == 0]
    log.info(f'closed {Path(out_dir)}: {sum(counts.values())} messages in {elapsed:.1f} s')
    if silent:
        log.warning(f'no messages on {silent}: check the names, that a publisher runs, and '
                    'ROS_DOMAIN_ID')
    return RecordResult(Path(out_dir), counts, elapsed, stopped_by)


# --- vidplan record ---------------------------------------------------------------------------

def _meta_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of `vidplan record` (fills `parser` when given, e.g. a CLI subparser)."""
    parser = parser or argparse.ArgumentParser(
        prog='vidplan record', description='Record topics into a ROS 2 bag (mcap), as '
        '`ros2 bag record -s mcap` does, without ROS.')
    parser.add_argument('topics', nargs='+', metavar='TOPIC',
                        help='/name or /name:pkg/msg/Type (the type of known topics such as '
                        '/joint_states, /clock, */image_raw, */camera_info may be left out)')
    parser.add_argument('-o', '--output', default='',
                        help='bag directory (default rosbag2_<date>-<time>)')
    parser.add_argument('-d', '--duration', type=float, default=None,
                        help='stop after this many seconds (default: at Ctrl-C)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing bag at --output')
    parser.add_argument('--compress', action='store_true',
                        help='zstd-compress the mcap chunks (ROS 2 tools and Foxglove read it)')
    parser.add_argument('--reliable', action='store_true',
                        help='subscribe reliably (matches reliable publishers only)')
    parser.add_argument('--depth', type=int, default=RECORD_QOS.depth,
                        help='subscription queue depth per topic')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='stamp messages with /clock time instead of wall time')
    parser.add_argument('--meta', nargs='*', default=[], metavar='KEY=VALUE',
                        help='episode metadata, e.g. robot=franka_fr3 task=push success=true')
    return parser


def run(args: argparse.Namespace) -> int:
    """Run `vidplan record` with parsed `args`; returns the exit code."""
    from vidplan_ros.transport import create_node

    meta: dict[str, Any] = {}
    for item in args.meta:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise BagError(f'--meta {item!r}: give KEY=VALUE, e.g. task=push')
        meta[key] = _meta_value(value)
    if args.depth < 1:
        raise BagError(f'--depth {args.depth}: a queue depth >= 1')
    out = args.output or time.strftime('rosbag2_%Y_%m_%d-%H_%M_%S')
    qos = QoS(reliability='reliable' if args.reliable else 'best_effort', depth=args.depth)
    argv = ['--ros-args', '-p', 'use_sim_time:=true'] if args.use_sim_time else []
    node = create_node('vidplan_record', argv=argv, backend='dds')
    # Ctrl-C and SIGTERM only raise a flag, so a message is never cut half-written; the loop
    # then closes the bag and we exit 0, as `ros2 bag record` does.
    stopped: list[str] = []
    names = {signal.SIGINT: 'ctrl-c', signal.SIGTERM: 'sigterm'}
    previous = {sig: signal.getsignal(sig) for sig in names}

    def on_signal(signum: int, frame: Any) -> None:
        stopped.append(names.get(signal.Signals(signum), 'signal'))

    for sig in names:
        signal.signal(sig, on_signal)
    try:
        result = record_topics(node, args.topics, out, duration_s=args.duration,
                               metadata=meta, qos=qos, overwrite=args.overwrite,
                               compression='zstd' if args.compress else '',
                               stop=lambda: stopped[0] if stopped else False,
                               on_ready=lambda: print(f'recording into {out}', flush=True))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        node.shutdown()
    for topic, n in sorted(result.counts.items()):
        print(f'  {topic:48s} {n:7d}')
    print(f'wrote {sum(result.counts.values())} messages to {result.path} '
          f'({result.stopped_by})')
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except BagError as exc:
        print(f'vidplan record: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
