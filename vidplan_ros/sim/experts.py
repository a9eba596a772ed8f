"""Scripted experts for the sim tasks: IK on Cartesian waypoints, streamed as trajectory chunks.

An expert acts like the learned planner: `act(t_s, q_now, task_state)` is called at the plan
rate and returns an `ExpertAction`, a short joint trajectory chunk (the next ~0.6 s, points every
0.1 s, in robot spec joint order) that the trajectory follower (JTC semantics) executes, plus an
optional gripper width. Recorded demonstrations therefore carry the same action form as the
learned stack's output.

How a plan is made: the expert keeps a phase (e.g. above the target, then at it) and, entering a
phase, plans a path from where the last one ended: Cartesian straight lines of the tool point
with a min-jerk time law and a fixed tool orientation (or position only), solved by batched IK
(warm-started from the previous path point, the nearest solution kept), then slowed down so
every joint stays below `velocity_fraction` of its spec velocity limit. Joint-space moves
(min-jerk) bring the arm to the first Cartesian pose. Chunks are samples of that dense path.
Targets come from the task state (world frame = robot base frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.kinematics import KinematicChain
from vidplan_ros.core.kinematics_ik import IKConfig, TorchIKSolver
from vidplan_ros.core.robot_spec import RobotSpec

__all__ = ['EXPERTS', 'Expert', 'ExpertAction', 'ExpertConfig', 'FrankaPushExpert',
           'FrankaReachExpert', 'G1ReachExpert', 'JointPath', 'make_expert']

MIN_JERK_PEAK = 1.875  # peak / mean speed of the min-jerk profile 10s^3 - 15s^4 + 6s^5


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


@dataclass(frozen=True)
class ExpertConfig:
    """Timing and speed of the scripted experts."""

    chunk_dt_s: float = 0.1            # spacing of the points of a chunk
    chunk_horizon_s: float = 0.6       # time one chunk covers
    path_dt_s: float = 0.02            # spacing of the dense planned path
    speed_m_s: float = 0.2             # mean tool speed of a Cartesian move
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


# --- joint paths ------------------------------------------------------------------------------

def min_jerk(s: np.ndarray) -> np.ndarray:
    """Min-jerk time law on s in [0, 1] (zero velocity and acceleration at both ends)."""
    s = np.clip(s, 0.0, 1.0)
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


def cruise_stop(s: np.ndarray) -> np.ndarray:
    """Time law on s in [0, 1] that starts at its full speed (1.5 / duration) and slows down
    to rest at the end (cubic, monotone): for re-planned motions that are already moving."""
    s = np.clip(s, 0.0, 1.0)
    return 1.5 * s - 0.5 * s * s * s


# (law, peak of d law / ds)
TIME_LAWS = {'min_jerk': (min_jerk, MIN_JERK_PEAK), 'cruise_stop': (cruise_stop, 1.5)}


@dataclass(frozen=True)
class JointPath:
    """A dense joint path: times_s (K,) s from the path start, q (K, n) rad; K >= 2."""

    times_s: np.ndarray
    q: np.ndarray

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1])

    def sample(self, t_s: np.ndarray) -> np.ndarray:
        """Positions (len(t_s), n) at times `t_s` from the path start, held outside it."""
        t = np.clip(np.asarray(t_s, dtype=np.float64), 0.0, self.duration_s)
        out = np.empty((len(t), self.q.shape[1]))
        for j in range(self.q.shape[1]):
            out[:, j] = np.interp(t, self.times_s, self.q[:, j])
        return out


def _retime(q: np.ndarray, s_of: np.ndarray, duration_s: float, v_cap: np.ndarray,
            dt_s: float, law: str = 'min_jerk') -> JointPath:
    """Path q (K, n) at path parameters `s_of` (K,) in [0, 1], moved along time law `law` in
    at least `duration_s`, slowed down until no joint's speed exceeds `v_cap` (n,) rad/s."""
    fn, peak = TIME_LAWS[law]
    dq_ds = np.abs(np.gradient(q, s_of, axis=0)) if len(s_of) > 1 else np.zeros_like(q)
    # Joint speed = |dq/ds| ds/dt, and ds/dt peaks at `peak` / duration.
    need = float(np.max(dq_ds / v_cap[None, :])) * peak if q.size else 0.0
    duration = max(duration_s, need * 1.05)
    steps = max(2, int(math.ceil(duration / dt_s)) + 1)
    times = np.linspace(0.0, duration, steps)
    s = fn(times / duration)
    out = np.empty((steps, q.shape[1]))
    for j in range(q.shape[1]):
        out[:, j] = np.interp(s, s_of, q[:, j])
    return JointPath(times, out)


def joint_move(q0: np.ndarray, q1: np.ndarray, v_cap: np.ndarray, cfg: ExpertConfig
               ) -> JointPath:
    """Min-jerk straight line in joint space from q0 to q1 (n,), speeds below v_cap (n,)."""
    q = np.vstack([q0, q1]).astype(np.float64)
    return _retime(q, np.array([0.0, 1.0]), cfg.min_move_s, v_cap, cfg.path_dt_s)


def concat(paths: list[JointPath]) -> JointPath:
    """The paths one after the other (each starts where the previous one ended)."""
    times, qs, t0 = [paths[0].times_s[:1]], [paths[0].q[:1]], 0.0
    for p in paths:
        times.append(p.times_s[1:] + t0)
        qs.append(p.q[1:])
        t0 += p.duration_s
    return JointPath(np.concatenate(times), np.vstack(qs))


def hold_path(q: np.ndarray, duration_s: float) -> JointPath:
    return JointPath(np.array([0.0, max(duration_s, 1e-3)]), np.vstack([q, q]))


# --- IK on Cartesian paths -------------------------------------------------------------------

class ToolIK:
    """IK of one tool point on `chain` (root = world frame unless `root_pose` maps it).

    `rotation` (3, 3): the fixed tool orientation in the world frame, or None for position-only
    targets. Works on chain-order joint vectors (chain.dof,).
    """

    def __init__(self, chain: KinematicChain, rotation: np.ndarray | None, cfg: ExpertConfig,
                 pos_tol_m: float = 1e-3) -> None:
        self.chain = chain
        self.rotation = None if rotation is None else np.asarray(rotation, dtype=np.float64)
        common = dict(pos_tol_m=pos_tol_m, rot_tol_rad=1e-2,
                      position_only=rotation is None, max_iters=150)
        self._keyframe = TorchIKSolver(chain, IKConfig(num_seeds=cfg.ik_seeds, **common))
        self._track = TorchIKSolver(chain, IKConfig(num_seeds=1, stall_iters=0, **common))

    def poses(self, points: np.ndarray) -> torch.Tensor:
        """(K, 4, 4) target poses of the tool at points (K, 3) m."""
        pts = np.atleast_2d(points)
        t = np.tile(np.eye(4), (len(pts), 1, 1))
        if self.rotation is not None:
            t[:, :3, :3] = self.rotation
        t[:, :3, 3] = pts
        return torch.as_tensor(t, dtype=torch.float64)

    def solve_keyframe(self, point: np.ndarray, q_prefer: np.ndarray) -> tuple[np.ndarray, float]:
        """(q (dof,), position error m) reaching `point`, the solution nearest `q_prefer`."""
        q_init = torch.as_tensor(q_prefer, dtype=torch.float64)[None]
        res = self._keyframe.solve(self.poses(point), q_init)
        return res.q[0].numpy(), float(res.pos_err_m[0])

    def solve_path(self, points: np.ndarray, q_start: np.ndarray) -> tuple[np.ndarray, float]:
        """(q (K, dof), worst position error m) along points (K, 3), warm-started point by
        point in blocks from `q_start` so the solutions stay on one branch."""
        out = np.empty((len(points), self.chain.dof))
        q_prev, worst = np.asarray(q_start, dtype=np.float64), 0.0
        block = 8
        for i in range(0, len(points), block):
            pts = points[i:i + block]
            init = torch.as_tensor(np.tile(q_prev, (len(pts), 1)), dtype=torch.float64)
            res = self._track.solve(self.poses(pts), init)
            out[i:i + len(pts)] = res.q.numpy()
            worst = max(worst, float(res.pos_err_m.max()))
            q_prev = out[i + len(pts) - 1]
        return out, worst

    def tool_position(self, q: np.ndarray) -> np.ndarray:
        """(3,) tool point of chain-order q (dof,)."""
        pose = self.chain.fk(torch.as_tensor(q, dtype=torch.float64)[None])
        return pose[0, :3, 3].numpy()


def cartesian_line(ik: ToolIK, p0: np.ndarray, p1: np.ndarray, q_start: np.ndarray,
                   v_cap: np.ndarray, cfg: ExpertConfig, speed_m_s: float | None = None,
                   law: str = 'min_jerk') -> tuple[JointPath, float]:
    """A straight tool line p0 -> p1 (3,) m from chain-order `q_start` at mean speed
    `speed_m_s` (default cfg.speed_m_s; with law 'cruise_stop' the starting speed), slower if
    a joint would exceed v_cap. Returns (path in chain order, worst IK position error m)."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    dist = float(np.linalg.norm(p1 - p0))
    n_pts = max(2, int(math.ceil(dist / 0.005)) + 1)          # a point every <= 5 mm
    s = np.linspace(0.0, 1.0, n_pts)
    pts = p0[None, :] + s[:, None] * (p1 - p0)[None, :]
    q, err = ik.solve_path(pts[1:], q_start)
    q = np.vstack([q_start, q])
    speed = speed_m_s or cfg.speed_m_s
    duration = dist / speed * (TIME_LAWS[law][1] if law == 'cruise_stop' else 1.0)
    if law == 'min_jerk':
        duration = max(cfg.min_move_s, duration)
    return _retime(q, s, max(duration, cfg.path_dt_s), v_cap, cfg.path_dt_s, law), err


# --- experts ----------------------------------------------------------------------------------

class PhaseExpert:
    """Base of the scripted experts: a list of phases, each planned when it starts.

    Subclasses implement `_plan(phase, q_start, task_state, q_now)` returning a JointPath in
    spec order (or None to skip the phase) and may override `_replan` for closed-loop phases.
    """

    phases: tuple[str, ...] = ()

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        self.spec = spec
        self.cfg = cfg or ExpertConfig()
        vmax = np.asarray(spec.velocity_max_rad_s, dtype=np.float64)
        self.v_cap = np.minimum(vmax * self.cfg.velocity_fraction, self.cfg.joint_speed_cap_rad_s)
        lo = np.asarray(spec.position_min_rad) + spec.position_margin_rad
        hi = np.asarray(spec.position_max_rad) - spec.position_margin_rad
        self.q_lo, self.q_hi = lo, hi
        self._chunk_times = np.arange(1, int(round(self.cfg.chunk_horizon_s /
                                                    self.cfg.chunk_dt_s)) + 1) * self.cfg.chunk_dt_s
        self.reset_state(np.asarray(spec.ready_pose_rad, dtype=np.float64))

    def reset_state(self, q_now: np.ndarray) -> None:
        self._phase_idx = 0
        self._path: JointPath | None = None
        self._path_t0 = 0.0
        self._q_end = np.asarray(q_now, dtype=np.float64).copy()
        self.gripper_width_m: float | None = None

    @property
    def phase(self) -> str:
        return self.phases[min(self._phase_idx, len(self.phases) - 1)]

    @property
    def done(self) -> bool:
        """True once the last phase has been entered (it holds its end pose)."""
        return self._phase_idx >= len(self.phases) - 1 and self._path is not None

    def reset(self, task_state: Any, q_now: np.ndarray) -> None:
        self.reset_state(q_now)

    def act(self, t_s: float, q_now: np.ndarray, task_state: Any) -> ExpertAction:
        q_now = np.asarray(q_now, dtype=np.float64)
        if self._path is None:
            self._start_phase(t_s, q_now, task_state)
        elif t_s >= self._path_t0 + self._path.duration_s + self.cfg.settle_s and \
                self._phase_idx < len(self.phases) - 1:
            self._q_end = self._path.q[-1].copy()
            self._phase_idx += 1
            self._start_phase(t_s, q_now, task_state)
        else:
            new = self._replan(self.phase, t_s - self._path_t0, self._path, task_state, q_now)
            if new is not None:
                self._path, self._path_t0 = new, t_s
        positions = self._path.sample(t_s - self._path_t0 + self._chunk_times)
        positions = np.clip(positions, self.q_lo, self.q_hi)
        return ExpertAction(float(t_s), self._chunk_times.copy(), positions,
                            self.gripper_width_m, self.phase)

    def _start_phase(self, t_s: float, q_now: np.ndarray, task_state: Any) -> None:
        while True:
            path = self._plan(self.phase, self._q_end, task_state, q_now)
            if path is not None or self._phase_idx >= len(self.phases) - 1:
                break
            self._phase_idx += 1
        self._path = path if path is not None else hold_path(self._q_end, self.cfg.min_move_s)
        self._path_t0 = t_s

    def _plan(self, phase: str, q_start: np.ndarray, task_state: Any, q_now: np.ndarray
              ) -> JointPath | None:
        raise NotImplementedError

    def _replan(self, phase: str, t_in_path_s: float, path: JointPath, task_state: Any,
                q_now: np.ndarray) -> JointPath | None:
        """A new path replacing `path` from now on (time 0 = now), or None to keep it."""
        return None


def _rot_z(yaw_rad: float) -> np.ndarray:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


HAND_DOWN = np.diag([1.0, -1.0, -1.0])   # Franka TCP pointing down, hand x = base x


class ReachExpert(PhaseExpert):
    """Tool point to a target: joint move to a pre-pose, straight approach, then hold while
    correcting the remaining tool error (PD sag) by shifting the IK target."""

    phases = ('pre', 'approach', 'hold')

    def __init__(self, spec: RobotSpec, ik: ToolIK, joint_idx: np.ndarray,
                 cfg: ExpertConfig | None = None, approach_m: float = 0.08,
                 approach_speed_m_s: float = 0.1) -> None:
        self.ik = ik
        self.joint_idx = np.asarray(joint_idx)     # spec index of each chain joint
        self.approach_m = approach_m
        self.approach_speed_m_s = approach_speed_m_s
        super().__init__(spec, cfg)

    def reset_state(self, q_now: np.ndarray) -> None:
        super().reset_state(q_now)
        self._correction = np.zeros(3)
        self._target = np.zeros(3)

    def _to_world(self, p_m: np.ndarray) -> np.ndarray:
        """Chain root frame -> base frame is the identity here; subclasses map frames."""
        return p_m

    def _to_chain(self, p_m: np.ndarray) -> np.ndarray:
        return p_m

    def _pre_point(self, target: np.ndarray) -> np.ndarray:
        return target + np.array([0.0, 0.0, self.approach_m])

    def _full(self, q_chain: np.ndarray, q_base: np.ndarray) -> np.ndarray:
        q = np.tile(q_base, (len(q_chain), 1)) if q_chain.ndim == 2 else q_base.copy()
        q[..., self.joint_idx] = q_chain
        return q

    def _plan(self, phase: str, q_start: np.ndarray, ts: Any, q_now: np.ndarray
              ) -> JointPath | None:
        self._target = np.asarray(ts.target_pos_m, dtype=np.float64)
        qc = q_start[self.joint_idx]
        if phase == 'pre':
            q_pre, _ = self.ik.solve_keyframe(self._to_chain(self._pre_point(self._target)), qc)
            return joint_move(q_start, self._full(q_pre, q_start), self.v_cap, self.cfg)
        if phase == 'approach':
            p0 = self.ik.tool_position(qc)
            path, _ = cartesian_line(self.ik, p0, self._to_chain(self._target), qc,
                                     self.v_cap[self.joint_idx], self.cfg,
                                     self.approach_speed_m_s)
            return JointPath(path.times_s, self._full(path.q, q_start))
        return hold_path(q_start, self.cfg.min_move_s)

    def _replan(self, phase: str, t_in_path_s: float, path: JointPath, ts: Any,
                q_now: np.ndarray) -> JointPath | None:
        if phase != 'hold' or t_in_path_s < path.duration_s + 0.2:
            return None
        err = self._target - np.asarray(ts.tip_pos_m)
        if np.linalg.norm(err) < 0.25 * ts.tolerance_m:
            return None
        self._correction = self._correction + 0.8 * err
        q_start = path.q[-1]
        goal = self._to_chain(self._target + self._correction)
        q_goal, _ = self.ik.solve_keyframe(goal, q_start[self.joint_idx])
        return joint_move(q_start, self._full(q_goal, q_start), self.v_cap, self.cfg)


class FrankaReachExpert(ReachExpert):
    """FR3 TCP to the target, hand pointing down (gripper kept closed)."""

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        from vidplan_ros.core.kinematics import franka_fr3_chain
        cfg = cfg or ExpertConfig()
        chain = franka_fr3_chain()
        idx = np.array([spec.joint_names.index(j) for j in chain.joint_names])
        super().__init__(spec, ToolIK(chain, HAND_DOWN, cfg), idx, cfg)

    def reset_state(self, q_now: np.ndarray) -> None:
        super().reset_state(q_now)
        self.gripper_width_m = 0.0


class G1ReachExpert(ReachExpert):
    """G1 hand (`<side>_rubber_hand`) to the target with that arm (7 joints, position only);
    the waist and the other arm hold their pose at reset."""

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        self._spec_for_chains = spec
        self._cfg_for_chains = cfg or ExpertConfig()
        self._iks: dict[str, tuple[ToolIK, np.ndarray, KinematicChain]] = {}
        ik, idx = self._side('left')
        super().__init__(spec, ik, idx, self._cfg_for_chains, approach_m=0.06)
        self._torso_rot, self._torso_pos = np.eye(3), np.zeros(3)

    def _side(self, side: str) -> tuple[ToolIK, np.ndarray]:
        from vidplan_ros.core.kinematics import g1_arm_chain
        if side not in self._iks:
            spec = self._spec_for_chains
            arm = g1_arm_chain(side)
            waist = g1_arm_chain(side, include_waist=True)
            idx = np.array([spec.joint_names.index(j) for j in arm.joint_names])
            self._iks[side] = (ToolIK(arm, None, self._cfg_for_chains, pos_tol_m=2e-3), idx,
                               waist)
        ik, idx, _ = self._iks[side]
        return ik, idx

    def reset(self, task_state: Any, q_now: np.ndarray) -> None:
        super().reset(task_state, q_now)
        side = task_state.side or 'left'
        self.ik, self.joint_idx = self._side(side)
        waist = self._iks[side][2]
        spec = self._spec_for_chains
        q_w = np.asarray(q_now, dtype=np.float64)[[spec.joint_names.index(j)
                                                  for j in waist.joint_names]]
        torso = waist.fk_links(torch.as_tensor(q_w, dtype=torch.float64)[None])['torso_link']
        self._torso_rot = torso[0, :3, :3].numpy()
        self._torso_pos = torso[0, :3, 3].numpy()

    def _to_chain(self, p_m: np.ndarray) -> np.ndarray:
        return self._torso_rot.T @ (np.asarray(p_m) - self._torso_pos)

    def _pre_point(self, target: np.ndarray) -> np.ndarray:
        """Approach forwards: the pre-pose is `approach_m` nearer the body (base -x)."""
        return target - np.array([self.approach_m, 0.0, 0.0])


class FrankaPushExpert(PhaseExpert):
    """Push the cube to the goal with the closed fingers as a flat pusher (3.6 cm wide).

    The hand points down with its x axis along the push direction (the finger pads across
    it). Above the point behind the cube, down to pushing height, straight through to where
    the cube centre is at the goal, then up. While pushing, when the cube has drifted off the
    line to the goal, the rest of the push is re-planned from the cube's current position.
    """

    phases = ('above', 'descend', 'push', 'retreat', 'hold')
    PUSH_HEIGHT_M = 0.02        # TCP above the table top while pushing (finger tips ~3 mm lower)
    HOVER_M = 0.10              # above the pushing height before descending
    FINGER_FRONT_M = 0.01       # TCP to the front face of the finger pads
    BEHIND_GAP_M = 0.03         # free space behind the (possibly rotated) cube before pushing
    PUSH_SPEED_M_S = 0.08
    REAIM_EVERY_S = 0.2         # steer the push at most this often
    REAIM_TOL_M = 0.006         # re-aim when the predicted cube end is this far off the goal
    MAX_STEER_RAD = 0.35        # largest angle between a re-aimed push and the hand's axis
    LOST_CROSS_M = 0.03         # cube centre this far beside the pad centre: stroke ends
    LOST_ALONG_M = 0.08         # cube centre this far ahead of the TCP: stroke ends
    RETRY_FRACTION = 0.5        # another stroke when the cube ends farther than this x tol
    MAX_ATTEMPTS = 3

    def __init__(self, spec: RobotSpec, cfg: ExpertConfig | None = None) -> None:
        from vidplan_ros.core.kinematics import franka_fr3_chain
        cfg = cfg or ExpertConfig()
        self.chain = franka_fr3_chain()
        self.joint_idx = np.array([spec.joint_names.index(j) for j in self.chain.joint_names])
        self.cfg_ = cfg
        self._iks: dict[int, ToolIK] = {}
        super().__init__(spec, cfg)

    def reset_state(self, q_now: np.ndarray) -> None:
        super().reset_state(q_now)
        self.gripper_width_m = 0.0
        self._dir = np.array([1.0, 0.0, 0.0])
        self._ik: ToolIK | None = None
        self._table_z = 0.0

    def reset(self, task_state: Any, q_now: np.ndarray) -> None:
        super().reset(task_state, q_now)
        self._table_z = float(task_state.goal_pos_m[2])
        self._attempts = 0
        self._aim(task_state)

    def _aim(self, ts: Any) -> None:
        """Push direction cube -> goal, and the hand yaw for it."""
        self._attempts += 1
        d = (np.asarray(ts.goal_pos_m) - np.asarray(ts.cube_pos_m))[:2]
        self._dir = np.array([*(d / max(np.linalg.norm(d), 1e-9)), 0.0])
        self._cube_at_aim = np.asarray(ts.cube_pos_m, dtype=np.float64).copy()
        yaw = math.atan2(self._dir[1], self._dir[0])
        if yaw > math.pi / 2:        # hand x = +-dir: keep the wrist near its ready angle
            yaw -= math.pi
        elif yaw < -math.pi / 2:
            yaw += math.pi
        self._ik = ToolIK(self.chain, _rot_z(yaw) @ HAND_DOWN, self.cfg_)

    def _behind(self, cube: np.ndarray, direction: np.ndarray) -> np.ndarray:
        reach = CUBE_DIAGONAL * 0.5 + self.FINGER_FRONT_M + self.BEHIND_GAP_M
        p = np.asarray(cube, dtype=np.float64) - reach * direction
        return np.array([p[0], p[1], self._table_z + self.PUSH_HEIGHT_M])

    def _push_end(self, goal: np.ndarray, direction: np.ndarray, half: float) -> np.ndarray:
        p = np.asarray(goal, dtype=np.float64) - (half + self.FINGER_FRONT_M) * direction
        return np.array([p[0], p[1], self._table_z + self.PUSH_HEIGHT_M])

    def _line(self, q_start: np.ndarray, p1: np.ndarray, speed: float,
              law: str = 'min_jerk') -> JointPath:
        assert self._ik is not None
        qc = q_start[self.joint_idx]
        p0 = self._ik.tool_position(qc)
        path, _ = cartesian_line(self._ik, p0, p1, qc, self.v_cap[self.joint_idx], self.cfg,
                                 speed, law)
        q = np.tile(q_start, (len(path.times_s), 1))
        q[:, self.joint_idx] = path.q
        return JointPath(path.times_s, q)

    def _plan(self, phase: str, q_start: np.ndarray, ts: Any, q_now: np.ndarray
              ) -> JointPath | None:
        assert self._ik is not None
        if phase == 'hold' and ts.distance_m > self.RETRY_FRACTION * ts.tolerance_m and \
                self._attempts < self.MAX_ATTEMPTS:
            self._aim(ts)               # another stroke from where the cube is now
            self._phase_idx = 0
            phase = self.phases[0]
        behind = self._behind(ts.cube_pos_m, self._dir)
        if phase == 'above':
            q_goal, _ = self._ik.solve_keyframe(behind + [0, 0, self.HOVER_M],
                                                q_start[self.joint_idx])
            q1 = q_start.copy()
            q1[self.joint_idx] = q_goal
            return joint_move(q_start, q1, self.v_cap, self.cfg)
        if phase == 'descend':
            return self._line(q_start, behind, self.cfg.speed_m_s)
        if phase == 'push':
            end = self._push_end(ts.goal_pos_m, self._dir, ts.cube_half_size_m)
            return self._line(q_start, end, self.PUSH_SPEED_M_S)
        if phase == 'retreat':
            p = self._ik.tool_position(q_start[self.joint_idx]) + [0, 0, self.HOVER_M]
            return self._line(q_start, p, self.cfg.speed_m_s)
        return hold_path(q_start, self.cfg.min_move_s)

    def _replan(self, phase: str, t_in_path_s: float, path: JointPath, ts: Any,
                q_now: np.ndarray) -> JointPath | None:
        """Steer the push: once the cube moves, aim the rest of the stroke so that, carried
        along rigidly, the cube would end at the goal; re-aim when that prediction is off."""
        assert self._ik is not None
        if phase != 'push' or t_in_path_s < self.REAIM_EVERY_S or \
                t_in_path_s >= path.duration_s:
            return None
        cube, goal = np.asarray(ts.cube_pos_m), np.asarray(ts.goal_pos_m)
        if np.linalg.norm((cube - self._cube_at_aim)[:2]) < 0.005:
            return None                 # not in contact yet
        q_cmd = path.sample(np.array([t_in_path_s]))[0]
        tool = self._ik.tool_position(q_cmd[self.joint_idx])
        rel = (cube - tool)[:2]
        cross = abs(rel @ np.array([-self._dir[1], self._dir[0]]))
        if cross > self.LOST_CROSS_M or rel @ self._dir[:2] > self.LOST_ALONG_M:
            return hold_path(q_cmd, self.cfg.path_dt_s)   # lost the cube: end this stroke
        tool_end = self._ik.tool_position(path.q[-1][self.joint_idx])
        predicted = cube[:2] + (tool_end - tool)[:2]
        if np.linalg.norm(predicted - goal[:2]) < self.REAIM_TOL_M:
            return None
        end = tool.copy()
        end[:2] += (goal - cube)[:2]
        heading = end[:2] - tool[:2]
        if np.linalg.norm(heading) < 1e-3 or \
                heading @ self._dir[:2] < math.cos(self.MAX_STEER_RAD) * np.linalg.norm(heading):
            return None                 # would push sideways: leave it to another stroke
        return self._line(q_cmd, end, self.PUSH_SPEED_M_S, law='cruise_stop')


CUBE_DIAGONAL = 2 * 0.025 * math.sqrt(2)   # a 5 cm cube's diagonal (it may start rotated)


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
