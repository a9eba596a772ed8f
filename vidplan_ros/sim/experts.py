"""Scripted experts for the sim tasks: IK on Cartesian waypoints, streamed as trajectory chunks.

An expert acts like the learned planner: `act(t_s, q_now, task_state)` is called at the plan
rate and returns an `ExpertAction`, a short joint trajectory chunk (the next ~0.6 s, points every
0.1 s, in robot spec joint order) that the trajectory follower (JTC semantics) executes, plus an
optional gripper width. Recorded demonstrations therefore carry the same action form as the
learned stack's output.

How a plan is made: the expert keeps a phase (e.g. above the target, then at it) and, entering a
phase, plans a path from where the last one ended: straight lines of the tool point with a
fixed tool orientation (or position only), solved by batched IK (keyframes solved backwards
from the goal, the line warm-started point by point so it stays on one IK branch, a little
inside the spec's position margins), timed by a min-jerk law that slows down locally so every
joint stays below `velocity_fraction` of its spec velocity limit (and `joint_speed_cap_rad_s`).
Joint-space min-jerk moves bring the arm to the first Cartesian pose. Chunks are samples of
that dense path (path tools in `vidplan_ros.sim.expert_paths`). Targets come from the task
state (world frame = robot base frame); the closed-loop parts (a joint offset learned at rest
against PD sag, push steering and extra strokes) use the state at every call.
`vidplan_ros.sim.rollout` runs an expert in the sim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.kinematics import KinematicChain, franka_fr3_chain, g1_arm_chain
from vidplan_ros.core.robot_spec import RobotSpec
from vidplan_ros.sim.expert_paths import (JointPath, ToolIK, cartesian_line, hold_path,
                                          joint_move, min_jerk)

__all__ = ['EXPERTS', 'Expert', 'ExpertAction', 'ExpertConfig', 'FrankaPushExpert',
           'FrankaReachExpert', 'G1ReachExpert', 'PhaseExpert', 'make_expert']


@dataclass(frozen=True)
class ExpertAction:
    """One planned chunk: what a planner sends to the trajectory controller.

    times_from_start_s (T,) s, strictly increasing and > 0, from `stamp_s` (the time of the
    observation the chunk was made from); positions (T, n) rad in robot spec joint order;
    gripper_width_m: the commanded gripper opening (None: no gripper / unchanged); phase: the
    expert's phase name, for logs.
    """

    stamp_s: float
    times_from_start_s: np.ndarray
    positions: np.ndarray
    gripper_width_m: float | None = None
    phase: str = ''
    # The expert's own chunk when `positions` were perturbed for execution (sim.perturb), so
    # recordings keep the corrective label beside what ran; None = `positions` are its own.
    label_positions: np.ndarray | None = None


@dataclass(frozen=True)
class ExpertConfig:
    """Timing and speed of the scripted experts."""

    chunk_dt_s: float = 0.1            # spacing of the points of a chunk
    chunk_horizon_s: float = 0.6       # time one chunk covers
    path_dt_s: float = 0.02            # spacing of the dense planned path
    speed_m_s: float = 0.3             # peak tool speed of a Cartesian move (m/s)
    velocity_fraction: float = 0.35    # joint speed cap, fraction of spec velocity_max_rad_s
    min_move_s: float = 0.4            # shortest move
    joint_speed_cap_rad_s: float = 1.5  # absolute joint speed cap (rad/s)
    settle_s: float = 0.3              # wait after a move before the next phase starts
    ik_seeds: int = 24                 # IK seeds for the keyframe poses

    def __post_init__(self) -> None:
        require_positive(self, 'chunk_dt_s', 'chunk_horizon_s', 'path_dt_s', 'speed_m_s',
                         'min_move_s', 'joint_speed_cap_rad_s')
        require(0 < self.velocity_fraction <= 1, 'velocity_fraction', self.velocity_fraction,
                'a fraction in (0, 1]')
        require(self.chunk_horizon_s >= self.chunk_dt_s, 'chunk_horizon_s',
                self.chunk_horizon_s, 'at least chunk_dt_s')
        require(self.settle_s >= 0, 'settle_s', self.settle_s, 'a time >= 0 s')
        require(self.ik_seeds >= 1, 'ik_seeds', self.ik_seeds, 'an integer >= 1')


class Expert(Protocol):
    """A scripted policy in the planner's action form."""

    def reset(self, task_state: Any, q_now: np.ndarray) -> None: ...

    def act(self, t_s: float, q_now: np.ndarray, task_state: Any) -> ExpertAction: ...


# --- experts ----------------------------------------------------------------------------------

class PhaseExpert:
    """Base of the scripted experts: a sequence of phases, each planned when it starts.

    Subclasses implement `_plan(phase, q_start, task_state, q_now)`, a JointPath in spec joint
    order from `q_start` (the end of the previous phase's plan), and may override `_replan` for
    closed-loop phases. After a phase's path ends (+ `settle_s`) the next phase starts; the
    last phase holds.

    Commands are the planned path plus a joint offset (0 unless a subclass learns one), the
    expert's integral action against the steady-state error of the robot's position loop
    (e.g. the gravity sag of the G1's plain PD): see `_learn_offset`.
    """

    phases: tuple[str, ...] = ('hold',)
    OFFSET_TOL_RAD = 1e-3       # joint errors below this are not compensated
    OFFSET_MAX_RAD = 0.3        # largest joint offset

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        self.spec = spec
        self.cfg = cfg or ExpertConfig()
        vmax = np.asarray(spec.velocity_max_rad_s, dtype=np.float64)
        self.v_cap = np.minimum(vmax * self.cfg.velocity_fraction,
                                self.cfg.joint_speed_cap_rad_s)
        self.q_lo = np.asarray(spec.position_min_rad) + spec.position_margin_rad
        self.q_hi = np.asarray(spec.position_max_rad) - spec.position_margin_rad
        # IK keeps a little more than the spec margin, so chunks never need clipping.
        self.ik_margin_rad = spec.position_margin_rad + 0.02
        count = int(round(self.cfg.chunk_horizon_s / self.cfg.chunk_dt_s))
        self._chunk_times = np.arange(1, count + 1) * self.cfg.chunk_dt_s
        self.gripper_width_m: float | None = None
        self._start(np.asarray(spec.ready_pose_rad, dtype=np.float64))

    def _start(self, q_now: np.ndarray) -> None:
        self._phase_idx = 0
        self._path: JointPath | None = None
        self._path_t0 = self._t_now = 0.0
        self._q_end = np.asarray(q_now, dtype=np.float64).copy()
        self.worst_ik_error_m = 0.0      # largest IK position error this episode (diagnostic)
        n = len(self._q_end)
        self._offset_ramp = (np.zeros(n), np.zeros(n), 0.0, 1.0)   # from, to, t0 s, duration s

    @property
    def phase(self) -> str:
        return self.phases[self._phase_idx]

    def reset(self, task_state: Any, q_now: np.ndarray) -> None:
        """Start a new episode from joint positions q_now (n,), spec order."""
        self._start(q_now)

    def resume(self, t_s: float, task_state: Any, q_now: np.ndarray) -> None:
        """Start reacting to a state the expert did not lead to (a learned policy's, a
        perturbation's): a fresh episode from `q_now` at time `t_s`, entering the phase that
        state is in (`_entry_phase`) instead of the first, so e.g. an arm already on the
        approach line is not sent back to the pre-pose."""
        self.reset(task_state, q_now)
        self._phase_idx = self.phases.index(self._entry_phase(task_state, q_now))

    def _entry_phase(self, task_state: Any, q_now: np.ndarray) -> str:
        return self.phases[0]

    def act(self, t_s: float, q_now: np.ndarray, task_state: Any) -> ExpertAction:
        """The chunk for the next `chunk_horizon_s`, made at time `t_s` (s)."""
        last = len(self.phases) - 1
        q_now = np.asarray(q_now, dtype=np.float64)
        self._t_now = float(t_s)          # for _plan
        if self._path is None:
            self._enter_phase(t_s, task_state, q_now)
        elif self._phase_idx < last and \
                t_s >= self._path_t0 + self._path.duration_s + self.cfg.settle_s:
            self._q_end = self._path.q[-1].copy()
            self._phase_idx += 1
            self._enter_phase(t_s, task_state, q_now)
        else:
            new = self._replan(self.phase, t_s, self._path, task_state, q_now)
            if new is not None:
                self._path, self._path_t0 = new, t_s
        assert self._path is not None
        times = t_s + self._chunk_times
        positions = self._path.sample(times - self._path_t0) + self._offset(times)
        return ExpertAction(float(t_s), self._chunk_times.copy(),
                            np.clip(positions, self.q_lo, self.q_hi), self.gripper_width_m,
                            self.phase)

    def _enter_phase(self, t_s: float, task_state: Any, q_now: np.ndarray) -> None:
        self._path = self._plan(self.phase, self._q_end, task_state, q_now)
        self._path_t0 = t_s

    def _plan(self, phase: str, q_start: np.ndarray, task_state: Any, q_now: np.ndarray
              ) -> JointPath:
        return hold_path(q_start, self.cfg.min_move_s)

    def _replan(self, phase: str, t_s: float, path: JointPath, task_state: Any,
                q_now: np.ndarray) -> JointPath | None:
        """A path replacing `path` from `t_s` on (its time 0 = t_s), or None to keep it."""
        return None

    # -- joint offset (integral action) -------------------------------------------------------

    def _offset(self, t_s: np.ndarray) -> np.ndarray:
        """(len(t_s), n) offset added to the planned positions at times t_s."""
        start, end, t0, duration = self._offset_ramp
        s = min_jerk((np.asarray(t_s) - t0) / duration)[:, None]
        return start[None, :] + s * (end - start)[None, :]

    def _learn_offset(self, t_s: float, q_planned: np.ndarray, q_now: np.ndarray,
                      joints: np.ndarray, gain: float, duration_s: float) -> bool:
        """With the robot at rest where the plan says `q_planned` (n,), move the offset of
        `joints` by `gain` x the error (q_planned - q_now) over `duration_s` from `t_s`.
        Returns False when the error is already below OFFSET_TOL_RAD."""
        err = np.zeros_like(q_planned)
        err[joints] = (q_planned - q_now)[joints]
        if np.max(np.abs(err)) < self.OFFSET_TOL_RAD:
            return False
        now = self._offset(np.array([t_s]))[0]
        target = np.clip(now + gain * err, -self.OFFSET_MAX_RAD, self.OFFSET_MAX_RAD)
        self._offset_ramp = (now, target, float(t_s), max(duration_s, 1e-3))
        return True

    # -- path helpers (spec joint order in and out) -------------------------------------------

    def _joint_move(self, q0: np.ndarray, q1: np.ndarray) -> JointPath:
        return joint_move(q0, q1, self.v_cap, self.cfg.min_move_s, self.cfg.path_dt_s)

    def _line(self, ik: ToolIK, idx: np.ndarray, q_start: np.ndarray, p1: np.ndarray,
              speed_m_s: float, law: str = 'min_jerk') -> JointPath:
        """Tool of `ik` (chain joints at spec indices `idx`) in a straight line to p1 (3,),
        chain root frame; the other joints stay at q_start."""
        qc = q_start[idx]
        path, err = cartesian_line(ik, ik.tool_position(qc), p1, qc, self.v_cap[idx],
                                   speed_m_s, self.cfg.path_dt_s,
                                   self.cfg.min_move_s if law == 'min_jerk' else 0.0, law)
        self.worst_ik_error_m = max(self.worst_ik_error_m, err)
        q = np.tile(q_start, (len(path.times_s), 1))
        q[:, idx] = path.q
        return JointPath(path.times_s, q)

    def _keyframe(self, ik: ToolIK, idx: np.ndarray, q_start: np.ndarray, point: np.ndarray
                  ) -> np.ndarray:
        """q_start (n,) with the chain joints set to reach `point` (3,) nearest to it."""
        q = q_start.copy()
        q[idx], err = ik.solve_keyframe(point, q_start[idx])
        self.worst_ik_error_m = max(self.worst_ik_error_m, err)
        return q


def _rot_z(yaw_rad: float) -> np.ndarray:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _chain_indices(spec: RobotSpec, chain: KinematicChain) -> np.ndarray:
    return np.array([spec.joint_names.index(j) for j in chain.joint_names])


HAND_DOWN = np.diag([1.0, -1.0, -1.0])   # Franka TCP pointing down, hand x = base x


class ReachExpert(PhaseExpert):
    """Tool point to a target: joint move to a pre-pose, straight approach, hold.

    The position loop's steady-state error (e.g. gravity sag) is learned at rest: at the
    pre-pose before approaching, then in the hold, as a joint offset on the commands.
    """

    phases = ('pre', 'approach', 'hold')
    APPROACH_M = 0.08           # the pre-pose's distance from the target (subclasses set it)
    APPROACH_SPEED_M_S = 0.15   # peak tool speed of the approach (m/s)
    OFFSET_GAIN = 0.9           # fraction of a measured joint error added to the offset

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        super().__init__(spec, cfg)
        self.ik: ToolIK | None = None
        self.idx = np.zeros(0, dtype=np.int64)   # spec index of each chain joint
        self.offset_idx = np.zeros(0, dtype=np.int64)   # joints whose error is compensated
        self._rot, self._pos = np.eye(3), np.zeros(3)   # chain root pose in the base frame
        self._target = np.zeros(3)

    def reset(self, task_state: Any, q_now: np.ndarray) -> None:
        super().reset(task_state, q_now)
        self._target = np.asarray(task_state.target_pos_m, dtype=np.float64).copy()

    def _to_chain(self, p_m: np.ndarray) -> np.ndarray:
        """Base frame -> chain root frame."""
        return self._rot.T @ (np.asarray(p_m, dtype=np.float64) - self._pos)

    def _pre_point(self, target: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _entry_phase(self, task_state: Any, q_now: np.ndarray) -> str:
        """'approach' (a straight line to the target) when the tool is already within the
        pre-pose's distance of it, else 'pre'."""
        near = np.linalg.norm(np.asarray(task_state.tip_pos_m) - self._target)
        return 'approach' if near <= 1.25 * self.APPROACH_M else 'pre'

    def _plan(self, phase: str, q_start: np.ndarray, task_state: Any, q_now: np.ndarray
              ) -> JointPath:
        assert self.ik is not None
        if phase == 'pre':
            # The target's IK first, then the pre-pose's nearest to it: the straight approach
            # between them then stays on one IK branch.
            q_tgt = self._keyframe(self.ik, self.idx, q_start, self._to_chain(self._target))
            pre = self._to_chain(self._pre_point(self._target))
            return self._joint_move(q_start, self._keyframe(self.ik, self.idx, q_tgt, pre))
        if phase == 'approach':
            path = self._line(self.ik, self.idx, q_start, self._to_chain(self._target),
                              self.APPROACH_SPEED_M_S)
            # Resting at the pre-pose: learn the offset while approaching.
            self._learn_offset(self._t_now, q_start, q_now, self.offset_idx, self.OFFSET_GAIN,
                               path.duration_s)
            return path
        return hold_path(q_start, self.cfg.path_dt_s)

    def _replan(self, phase: str, t_s: float, path: JointPath, task_state: Any,
                q_now: np.ndarray) -> JointPath | None:
        _, _, t0, duration = self._offset_ramp
        if phase == 'hold' and t_s >= max(self._path_t0, t0 + duration) + self.cfg.settle_s:
            self._learn_offset(t_s, path.q[-1], q_now, self.offset_idx, self.OFFSET_GAIN,
                               self.cfg.min_move_s)
        return None


class FrankaReachExpert(ReachExpert):
    """FR3 TCP (`fr3_hand_tcp`) to the target from above, hand pointing down, fingers closed."""

    APPROACH_M = 0.08           # the pre-pose is this far above the target

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        super().__init__(spec, cfg)
        chain = franka_fr3_chain()
        self.ik = ToolIK(chain, HAND_DOWN, self.cfg.ik_seeds, margin_rad=self.ik_margin_rad)
        self.idx = self.offset_idx = _chain_indices(spec, chain)
        self.gripper_width_m = 0.0

    def _pre_point(self, target: np.ndarray) -> np.ndarray:
        return target + np.array([0.0, 0.0, self.APPROACH_M])


class G1ReachExpert(ReachExpert):
    """G1 hand (`<side>_rubber_hand`, the side from the task state) to the target with that
    arm's 7 joints (position only, approaching forwards); the other arm holds, the waist holds
    its pose (its commands carry the learned sag offset)."""

    APPROACH_M = 0.06           # the pre-pose is this far behind the target (base -x)

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        super().__init__(spec, cfg)
        self._arms: dict[str, tuple[ToolIK, np.ndarray, KinematicChain]] = {}
        for side in ('left', 'right'):
            arm = g1_arm_chain(side)                    # rooted at torso_link
            waist = g1_arm_chain(side, include_waist=True)   # rooted at pelvis = base
            ik = ToolIK(arm, None, self.cfg.ik_seeds, pos_tol_m=2e-3,
                        margin_rad=self.ik_margin_rad)
            self._arms[side] = (ik, _chain_indices(spec, arm), waist)
        self.ik, self.idx, _ = self._arms['left']

    def reset(self, task_state: Any, q_now: np.ndarray) -> None:
        super().reset(task_state, q_now)
        self.ik, self.idx, waist = self._arms[task_state.side or 'left']
        waist_and_arm = _chain_indices(self.spec, waist)
        self.offset_idx = waist_and_arm      # the waist's sag moves the hand too
        q_waist = np.asarray(q_now, dtype=np.float64)[waist_and_arm]
        links = waist.fk_links(torch.as_tensor(q_waist, dtype=torch.float64)[None])
        torso = links['torso_link'][0].numpy()
        self._rot, self._pos = torso[:3, :3], torso[:3, 3]

    def _pre_point(self, target: np.ndarray) -> np.ndarray:
        return target - np.array([self.APPROACH_M, 0.0, 0.0])


class FrankaPushExpert(PhaseExpert):
    """Push the cube into the goal with the closed fingers as a flat pusher (3.6 cm wide).

    The hand points down with its x axis along the push direction (finger pads across it).
    Above the point behind the cube, down to pushing height, straight on to where the cube
    centre would be at the goal, then up. During the stroke, once the cube moves, the rest of
    the stroke is re-aimed so that the cube, carried along, would end at the goal; if the cube
    slips off the pad the stroke ends. A cube left off the goal gets another stroke.
    """

    phases = ('above', 'descend', 'push', 'retreat', 'hold')
    PUSH_HEIGHT_M = 0.02        # TCP above the table top while pushing (finger tips ~3 mm lower)
    HOVER_M = 0.10              # above the pushing height before descending
    FINGER_FRONT_M = 0.01       # TCP to the front face of the finger pads
    BEHIND_GAP_M = 0.03         # free space behind the (possibly rotated) cube before pushing
    PUSH_SPEED_M_S = 0.12       # peak tool speed while pushing (m/s)
    REAIM_EVERY_S = 0.2         # steer the stroke at most this often
    REAIM_TOL_M = 0.006         # re-aim when the predicted cube end is this far off the goal
    MAX_STEER_RAD = 0.35        # largest angle between a re-aimed stroke and the hand x axis
    LOST_CROSS_M = 0.03         # cube centre this far beside the pad centre: stroke ends
    LOST_ALONG_M = 0.08         # cube centre this far ahead of the TCP: stroke ends
    RETRY_FRACTION = 0.5        # another stroke when the cube ends farther than this x tol
    MAX_STROKES = 3

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        super().__init__(spec, cfg)
        self.chain = franka_fr3_chain()
        self.idx = _chain_indices(spec, self.chain)
        self.gripper_width_m = 0.0
        self._dir = np.array([1.0, 0.0, 0.0])
        self._ik = ToolIK(self.chain, HAND_DOWN, self.cfg.ik_seeds,
                          margin_rad=self.ik_margin_rad)
        self._table_z = 0.0
        self._strokes = 0
        self._cube_at_aim = np.zeros(3)

    def reset(self, task_state: Any, q_now: np.ndarray) -> None:
        super().reset(task_state, q_now)
        self._table_z = float(task_state.goal_pos_m[2])
        self._strokes = 0
        self._aim(task_state)

    def _aim(self, ts: Any) -> None:
        """Stroke direction cube -> goal, and the hand yaw for it."""
        self._strokes += 1
        d = (np.asarray(ts.goal_pos_m) - np.asarray(ts.cube_pos_m))[:2]
        self._dir = np.array([*(d / max(float(np.linalg.norm(d)), 1e-9)), 0.0])
        self._cube_at_aim = np.asarray(ts.cube_pos_m, dtype=np.float64).copy()
        yaw = math.atan2(self._dir[1], self._dir[0])
        if yaw > math.pi / 2:        # hand x = +-dir: keep the wrist near its ready angle
            yaw -= math.pi
        elif yaw < -math.pi / 2:
            yaw += math.pi
        self._ik = ToolIK(self.chain, _rot_z(yaw) @ HAND_DOWN, self.cfg.ik_seeds,
                          margin_rad=self.ik_margin_rad)

    def _entry_phase(self, ts: Any, q_now: np.ndarray) -> str:
        """By where the tool is relative to the stroke (aimed from the cube now): on the
        stroke line at pushing height behind the cube -> 'push'; above its start -> 'descend';
        anywhere else -> 'above'."""
        half = float(ts.cube_half_size_m)
        reach = half * math.sqrt(2) + self.FINGER_FRONT_M + self.BEHIND_GAP_M
        tip = np.asarray(ts.tip_pos_m, dtype=np.float64)
        rel = (tip - np.asarray(ts.cube_pos_m))[:2]
        along = float(rel @ self._dir[:2])            # < 0: behind the cube
        cross = abs(float(rel @ np.array([-self._dir[1], self._dir[0]])))
        height = tip[2] - (self._table_z + self.PUSH_HEIGHT_M)
        if cross < 0.015 and -reach - 0.02 <= along <= -half and abs(height) < 0.02:
            return 'push'
        if cross < 0.02 and abs(along + reach) < 0.02 and 0.01 <= height <= 1.5 * self.HOVER_M:
            return 'descend'
        return 'above'

    def _at_push_height(self, p: np.ndarray) -> np.ndarray:
        return np.array([p[0], p[1], self._table_z + self.PUSH_HEIGHT_M])

    def _plan(self, phase: str, q_start: np.ndarray, ts: Any, q_now: np.ndarray
              ) -> JointPath:
        if phase == 'hold' and ts.distance_m > self.RETRY_FRACTION * ts.tolerance_m and \
                self._strokes < self.MAX_STROKES:
            self._aim(ts)               # another stroke from where the cube is now
            self._phase_idx = 0
            phase = self.phases[0]
        half = float(ts.cube_half_size_m)
        reach = half * math.sqrt(2) + self.FINGER_FRONT_M + self.BEHIND_GAP_M
        behind = self._at_push_height(np.asarray(ts.cube_pos_m) - reach * self._dir)
        end = self._at_push_height(np.asarray(ts.goal_pos_m)
                                   - (half + self.FINGER_FRONT_M) * self._dir)
        if phase == 'above':
            # IK from the stroke's end backwards, each nearest the next: the descent and the
            # stroke then stay on one IK branch.
            q_end = self._keyframe(self._ik, self.idx, q_start, end)
            q_behind = self._keyframe(self._ik, self.idx, q_end, behind)
            above = behind + [0.0, 0.0, self.HOVER_M]
            return self._joint_move(q_start, self._keyframe(self._ik, self.idx, q_behind,
                                                            above))
        if phase == 'descend':
            return self._line(self._ik, self.idx, q_start, behind, self.cfg.speed_m_s)
        if phase == 'push':
            return self._line(self._ik, self.idx, q_start, end, self.PUSH_SPEED_M_S)
        if phase == 'retreat':
            up = self._ik.tool_position(q_start[self.idx]) + [0.0, 0.0, self.HOVER_M]
            return self._line(self._ik, self.idx, q_start, up, self.cfg.speed_m_s)
        return hold_path(q_start, self.cfg.min_move_s)

    def _replan(self, phase: str, t_s: float, path: JointPath, ts: Any, q_now: np.ndarray
                ) -> JointPath | None:
        t_in_path_s = t_s - self._path_t0
        if phase != 'push' or not self.REAIM_EVERY_S <= t_in_path_s < path.duration_s:
            return None
        cube, goal = np.asarray(ts.cube_pos_m), np.asarray(ts.goal_pos_m)
        if np.linalg.norm((cube - self._cube_at_aim)[:2]) < 0.005:
            return None                 # not pushing the cube yet
        q_cmd = path.sample(np.array([t_in_path_s]))[0]
        tool = self._ik.tool_position(q_cmd[self.idx])
        rel = (cube - tool)[:2]
        cross = abs(float(rel @ np.array([-self._dir[1], self._dir[0]])))
        if cross > self.LOST_CROSS_M or rel @ self._dir[:2] > self.LOST_ALONG_M:
            return hold_path(q_cmd, self.cfg.path_dt_s)   # lost the cube: end the stroke
        tool_end = self._ik.tool_position(path.q[-1][self.idx])
        if np.linalg.norm(cube[:2] + (tool_end - tool)[:2] - goal[:2]) < self.REAIM_TOL_M:
            return None
        heading = (goal - cube)[:2]
        norm = float(np.linalg.norm(heading))
        if norm < 1e-3 or heading @ self._dir[:2] < math.cos(self.MAX_STEER_RAD) * norm:
            return None                 # would push sideways: leave it to another stroke
        end = tool.copy()
        end[:2] += heading
        return self._line(self._ik, self.idx, q_cmd, end, self.PUSH_SPEED_M_S,
                          law='cruise_stop')


EXPERTS: dict[str, type[PhaseExpert]] = {
    'franka/reach': FrankaReachExpert,
    'franka/push': FrankaPushExpert,
    'g1/reach': G1ReachExpert,
    'g1/reach_left': G1ReachExpert,
    'g1/reach_right': G1ReachExpert,
}


def make_expert(task: str, spec: RobotSpec, cfg: ExpertConfig | None = None) -> PhaseExpert:
    """The scripted expert of sim task `task` (see vidplan_ros.sim.tasks) for robot `spec`."""
    if task not in EXPERTS:
        raise ValueError(f'no scripted expert for task {task!r}; experts: {sorted(EXPERTS)}')
    return EXPERTS[task](spec, cfg)
