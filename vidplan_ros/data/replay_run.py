"""The replay loop: recorded messages in, the stack and a shadow executor on bag time. ROS-free.

Messages arrive in log-time order. All messages of one log time are taken in before anything
acts on that time (a camera set recorded at one instant is one observation). Then the executor
steps its control periods up to that time on the recorded joint states, and, once
`replan_period_s` has passed and every input is fresher than `max_skew_s`, the pipeline replans
from the newest frames and joints. The plan reaches the executor at the observation's time
(`latency='frozen'`) or its measured compute time later (`'measured'`); the outputs are written
to the output bag at that time, so the bag stays in time order.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.executor import Executor, ExecutorConfig
from vidplan_ros.data.bags import BagError, BagWriter, bag_typestore
from vidplan_ros.data.replay_score import ReplanRecord, ReplayLog
from vidplan_ros.data.replay_topics import (ReplayError, TopicMap, frame_rgb, joint_positions,
                                            reference_chunk)
from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.dds_msgs import dds_type

__all__ = ['OUTPUT_TOPICS', 'ReplayRun', 'copy_plan', 'model_for_bag']

OUTPUT_TOPICS = {
    '/vidplan/latent': 'sensor_msgs/msg/Image',
    '/vidplan/latent/joint_states': 'sensor_msgs/msg/JointState',
    '/vidplan/video_plan': 'sensor_msgs/msg/Image',
    '/vidplan/plan_preview': 'sensor_msgs/msg/Image',
    '/vidplan/grounded_plan': 'trajectory_msgs/msg/JointTrajectory',
    '/vidplan/grounded_plan/feasibility': 'std_msgs/msg/Float64MultiArray',
    '/vidplan/shadow/joint_command': 'sensor_msgs/msg/JointState',
    '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray',
}
NODE = 'vidplan_replay'


def model_for_bag(metadata: Mapping[str, Any], bag: Path) -> str:
    """The model set of the task a bag's metadata names (models/*/config.json `task`)."""
    from vidplan_ros.core.paths import models_dir
    task = metadata.get('task')
    if not task:
        raise ReplayError(f'{bag} does not say which task it records; name the model set '
                          'with --model (e.g. --model franka_push)')
    found = []
    for cfg in sorted(models_dir().glob('*/config.json')):
        try:
            if json.loads(cfg.read_text()).get('params', {}).get('task') == task:
                found.append(cfg.parent.name)
        except (OSError, ValueError):
            continue
    if not found:
        raise ReplayError(f'{bag} records task {task!r} and no model set under {models_dir()} '
                          'is trained for it; name one with --model')
    return task.replace('/', '_') if task.replace('/', '_') in found else found[0]


def copy_plan(bag: Path, topics: Mapping[str, Any], tmap: TopicMap
              ) -> tuple[list[str], dict[str, str]]:
    """(topics copied into the output, {topic: why not} for the others). A type is copied
    with the ROS 2 Humble definition the output is written with; a bag whose own definition
    differs (its RIHS01 hash, Iron and later) or a type without one is left out."""
    from rosbags.rosbag2 import Reader
    store = bag_typestore()
    digests: dict[str, str] = {}
    try:
        with Reader(bag) as reader:
            digests = {c.topic: c.digest or '' for c in reader.connections}
    except Exception:  # noqa: BLE001 - the definitions are only a check; BagReader opened it
        pass
    copied, skipped = [], {}
    for topic, info in topics.items():
        ros_type = info.ros_type
        digest = digests.get(topic, '')
        if topic in OUTPUT_TOPICS and (topic != '/diagnostics'
                                       or ros_type != OUTPUT_TOPICS[topic]):
            skipped[topic] = 'a replay output: written anew'
        elif ros_type not in store.fielddefs:
            skipped[topic] = f'type {ros_type} has no ROS 2 standard definition'
        elif digest.startswith('RIHS01_') and digest != store.hash_rihs01(ros_type):
            skipped[topic] = f"its {ros_type} definition differs from ROS 2 Humble's"
        else:
            copied.append(topic)
    return copied, skipped


@dataclass
class _Pending:
    """A plan made at `stamp_s` that reaches the executor at `due_s`."""

    due_s: float
    rp: Any
    q0: np.ndarray
    timings_ms: dict[str, float]
    preview: np.ndarray | None


class ReplayRun:
    """One replay's state: latest inputs, the shadow executor, pending plans, the log."""

    def __init__(self, pipeline: Any, tmap: TopicMap, cfg: Any, executor_cfg: ExecutorConfig,
                 joint_period_s: float, echo: Callable[[str], None]) -> None:
        self.pipe, self.tmap, self.cfg, self.echo = pipeline, tmap, cfg, echo
        self.spec = pipeline.spec
        self.period_s = cfg.replan_period_s or pipeline.plan_dt_s
        self.notes: list[str] = []
        self.executor = Executor(self.spec, self._executor_cfg(executor_cfg, joint_period_s))
        self.log = ReplayLog(self.spec.num_joints)
        self.classes = {c.ros_type: dds_type(c.ros_type) for c in
                        [*tmap.cameras.values(), tmap.joints,
                         *([tmap.reference] if tmap.reference else [])]}
        self.camera_of = {c.topic: cam for cam, c in tmap.cameras.items()}
        self.inputs = set(tmap.inputs)
        self.frames: dict[str, tuple[float, Any, str]] = {}
        self.q: tuple[float, np.ndarray] | None = None
        self.last_replan_s = -np.inf
        self.next_step_s: float | None = None
        self.steps = 0
        self.every = max(1, int(round(1.0 / (cfg.command_rate_hz * executor_cfg.control_dt_s))))
        self.pending: list[_Pending] = []
        self.first_error: dict[str, str] = {}
        self.messages = 0
        self.t0_s: float | None = None
        self.t_s = 0.0
        self.bag: BagWriter | None = None

    @property
    def span_s(self) -> float:
        return 0.0 if self.t0_s is None else self.t_s - self.t0_s

    def _executor_cfg(self, cfg: ExecutorConfig, period_s: float) -> ExecutorConfig:
        """`cfg`, with stale_observation_s raised to 1.5 recorded joint-state periods when the
        bag records joints more slowly (the sim records them at the plan rate)."""
        need = 1.5 * period_s
        if not np.isfinite(need) or need <= cfg.stale_observation_s:
            return cfg
        self.notes.append(f'joint states come every {period_s:.3f} s in this bag: the '
                          f"executor's stale_observation_s is raised from "
                          f'{cfg.stale_observation_s:g} to {need:.3f} s for the replay')
        return replace(cfg, stale_observation_s=need)

    # --- the loop ------------------------------------------------------------------------------

    def play(self, messages: Iterable[Any], bag: BagWriter, copied: list[str],
             progress: bool, total: int | None = None) -> None:
        """Consume `messages` (BagMessage with raw CDR) into `bag`; see the module docstring.
        A message that cannot be read raises `ReplayError` (after the stack caught up)."""
        from tqdm import tqdm
        self.bag = bag
        copy = set(copied)
        pace = self.cfg.timing == 'recorded'
        wall0 = time.perf_counter()
        bar = tqdm(desc='replay', unit='msg', total=total, disable=not progress,
                   file=_stderr())
        group_s: float | None = None
        it = iter(messages)
        try:
            while True:
                try:
                    msg = next(it, None)
                except BagError as exc:
                    raise self._read_error(exc) from None
                except Exception as exc:  # noqa: BLE001 - rosbags, zstd, sqlite3 all differ
                    raise self._read_error(exc) from None
                t_s = None if msg is None else msg.t_ns * 1e-9
                if group_s is not None and (t_s is None or t_s > group_s):
                    self._act(group_s)
                    if t_s is not None:   # the periods before it, so the bag stays in order
                        self._advance(t_s, inclusive=False)
                if msg is None:
                    break
                if self.t0_s is None:
                    self.t0_s = t_s
                if pace:
                    ahead = (t_s - self.t0_s) / self.cfg.rate - (time.perf_counter() - wall0)
                    if ahead > 0:
                        time.sleep(ahead)
                group_s, self.t_s = t_s, t_s
                self.messages += 1
                if msg.topic in copy:
                    bag.write(msg.topic, msg.t_ns, msg.message, ros_type=msg.ros_type)
                if msg.topic in self.inputs:
                    self._take(msg.topic, msg.ros_type, t_s, msg.message)
                bar.update(1)
                if self.log.replans:
                    bar.set_postfix(replans=len(self.log.replans), refresh=False)
        finally:
            self._deliver(np.inf)
            bar.close()

    def _read_error(self, exc: BaseException) -> ReplayError:
        self._deliver(np.inf)
        where = f'{self.t_s - (self.t0_s or 0.0):.3f} s into the bag' if self.messages else \
            'before its first message'
        return ReplayError(f'the bag cannot be read past {where} ({type(exc).__name__}: {exc}'
                           '); it is truncated or corrupt. For an mcap bag, `vidplan bag '
                           'recover BAG NEW` copies what made it to disk; replay NEW')

    def _take(self, topic: str, ros_type: str, t_s: float, data: bytes) -> None:
        msg = self.classes[ros_type].deserialize(data)
        tmap = self.tmap
        try:
            if topic in self.camera_of:
                self.frames[self.camera_of[topic]] = (t_s, msg, ros_type)
            elif topic == tmap.joints.topic:
                q = joint_positions(msg, ros_type, self.spec, tmap.joint_map)
                self.q = (t_s, q)
                self.log.joint_t.append(t_s)
                self.log.joint_q.append(q)
                self.executor.on_state(q, None, t_s)
                if self.next_step_s is None:
                    self.next_step_s = t_s
            elif tmap.reference is not None and topic == tmap.reference.topic:
                times, pos = reference_chunk(msg, self.spec, tmap.joint_map)
                if len(times):
                    stamp = cv.time_to_ns(msg.header.stamp) * 1e-9
                    self.log.reference.append((stamp or t_s, times, pos))
        except VidplanError as exc:   # one bad message: counted, reported, skipped
            self._skip(f'bad_{topic}', exc)

    def _skip(self, reason: str, exc: BaseException) -> None:
        self.log.skip(reason)
        if reason not in self.first_error:
            self.first_error[reason] = str(exc)
            self.notes.append(f'{reason}: {exc}')
            self.echo(f'  warning: {reason}: {exc} (counted; the replay goes on)')

    def _act(self, t_s: float) -> None:
        """Everything recorded at `t_s` is in: step the executor to it, then maybe replan."""
        self._advance(t_s)
        if t_s - self.last_replan_s < self.period_s - 1e-6 or self.q is None:
            return
        if len(self.frames) < len(self.tmap.cameras):
            return
        if any(t_s - tc > self.cfg.max_skew_s for tc, _, _ in self.frames.values()) \
                or t_s - self.q[0] > self.cfg.max_skew_s:
            return   # not one observation yet: the newest inputs are too far apart
        self.last_replan_s = t_s
        self._replan(t_s)

    def _replan(self, t_s: float) -> None:
        try:
            images = {cam: frame_rgb(msg, ros_type) for cam, (_, msg, ros_type)
                      in self.frames.items()}
        except VidplanError as exc:
            self._skip('frame_undecodable', exc)
            return
        q0 = self.q[1]
        t0 = time.perf_counter()
        try:
            rp = self.pipe.replan(images, q0, t_s)
        except VidplanError as exc:
            self._skip('pipeline_error', exc)
            return
        timings = {k: 1e3 * v for k, v in rp.timings_s.items()}
        timings['replan'] = 1e3 * (time.perf_counter() - t0)
        preview = None
        every = self.cfg.preview_every
        if every and len(self.log.replans) % every == 0:
            t1 = time.perf_counter()
            frames = self.pipe.decode(rp.video_plan)          # (H, V, S, S, 3)
            h, v, s, _, c = frames.shape   # views stacked vertically, time left to right,
            preview = frames.transpose(1, 2, 0, 3, 4).reshape(v * s, h * s, c)  # as the node
            timings['preview'] = 1e3 * (time.perf_counter() - t1)
        due = t_s + (timings['replan'] * 1e-3 if self.cfg.latency == 'measured' else 0.0)
        self.pending.append(_Pending(due, rp, q0, timings, preview))
        self._deliver(t_s)

    def _advance(self, t_s: float, inclusive: bool = True) -> None:
        """Executor control periods up to `t_s` (or just before it), handing over plans as
        they fall due."""
        if self.next_step_s is None:
            return
        dt = self.executor.cfg.control_dt_s
        end = t_s + 1e-9 if inclusive else t_s - 1e-9
        while self.next_step_s <= end:
            now = self.next_step_s
            self._deliver(now)
            c0 = time.perf_counter()
            cmd = self.executor.step(now)
            self.log.step_s.append(time.perf_counter() - c0)
            if self.steps % self.every == 0 and cmd.mode != 'idle':
                self.log.shadow_t.append(now)
                self.log.shadow_q.append(cmd.q_rad)
                self._write('/vidplan/shadow/joint_command', now, cv.joint_state_msg(
                    dds_type, _ns(now), self.spec.joint_names, cmd.q_rad, cmd.dq_rad_s))
            self.steps += 1
            self.next_step_s = now + dt

    def _deliver(self, now_s: float) -> None:
        while self.pending and self.pending[0].due_s <= now_s + 1e-9:
            p = self.pending.pop(0)
            self._publish(p, self.executor.on_plan(p.rp.plan).reason)

    def _publish(self, p: _Pending, decision: str) -> None:
        rp, plan, names = p.rp, p.rp.plan, self.spec.joint_names
        stamp_ns, at = _ns(rp.stamp_s), p.due_s
        self.log.replans.append(ReplanRecord(
            stamp_s=rp.stamp_s, q0_rad=p.q0, times_s=np.asarray(plan.times_from_stamp_s),
            positions_rad=np.asarray(plan.positions_rad), dynamics_residual=plan.dynamics_residual,
            alignment=plan.alignment, decision=decision, timings_ms=p.timings_ms))
        t = dds_type
        self._write('/vidplan/latent', at, cv.latent_msg(t, stamp_ns, rp.z0))
        self._write('/vidplan/latent/joint_states', at,
                    cv.joint_state_msg(t, stamp_ns, names, p.q0))
        self._write('/vidplan/video_plan', at, cv.latent_msg(t, stamp_ns, rp.video_plan,
                                                             'video_plan'))
        if p.preview is not None:
            self._write('/vidplan/plan_preview', at,
                        cv.image_msg(t, stamp_ns, 'plan_preview', p.preview, 'rgb8'))
        self._write('/vidplan/grounded_plan/feasibility', at, t(
            'std_msgs/msg/Float64MultiArray')(data=[rp.stamp_s, float(plan.dynamics_residual),
                                                    float(plan.alignment)]))
        self._write('/vidplan/grounded_plan', at, cv.joint_trajectory_msg(
            t, stamp_ns, names, plan.times_from_stamp_s, plan.positions_rad))
        status = self.executor.status()
        values = {**{f'{k}_ms': f'{v:.2f}' for k, v in p.timings_ms.items()},
                  'dynamics_residual': f'{plan.dynamics_residual:.5f}',
                  'alignment': f'{plan.alignment:.4f}', 'decision': decision,
                  'accepted': status['accepted'], 'rejected': status['rejected'],
                  'method': self.pipe.method, 'model': self.pipe.model_dir.name}
        level = 0 if decision == 'accepted' else 1
        self._write('/diagnostics', at, t('diagnostic_msgs/msg/DiagnosticArray')(
            header=cv.header(t, _ns(at)), status=[t('diagnostic_msgs/msg/DiagnosticStatus')(
                level=level, name=f'{NODE}: pipeline', hardware_id=self.spec.name,
                message=decision, values=[t('diagnostic_msgs/msg/KeyValue')(
                    key=k, value=str(v)) for k, v in values.items()])]))

    def _write(self, topic: str, t_s: float, msg: Any) -> None:
        assert self.bag is not None
        self.bag.write(topic, _ns(t_s), msg)


def _ns(t_s: float) -> int:
    return int(round(t_s * 1e9))


def _stderr() -> Any:
    import sys
    return sys.stderr
