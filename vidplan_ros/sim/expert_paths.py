"""Joint paths for the scripted experts: time laws, joint moves, IK along Cartesian lines.

A `JointPath` is a dense (every `dt_s`) joint path from its start; experts sample it to make
trajectory chunks. Tool points and orientations are in the kinematic chain's root frame (m);
joint vectors are in the chain's joint order unless said otherwise.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidplan_ros.core.kinematics import KinematicChain
from vidplan_ros.core.kinematics_ik import IKConfig, TorchIKSolver

__all__ = ['TIME_LAWS', 'JointPath', 'ToolIK', 'cartesian_line', 'cruise_stop', 'hold_path',
           'joint_move', 'min_jerk', 'retime']


def min_jerk(s: np.ndarray) -> np.ndarray:
    """Min-jerk time law on s in [0, 1]: zero velocity and acceleration at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


def cruise_stop(s: np.ndarray) -> np.ndarray:
    """Time law on s in [0, 1] that starts at full speed (1.5 / duration) and slows to rest at
    the end (cubic, monotone): for re-planned motions that are already moving."""
    s = np.clip(s, 0.0, 1.0)
    return 1.5 * s - 0.5 * s * s * s


# name -> (law, peak of d law / ds); the peak speed is peak * mean speed.
TIME_LAWS = {'min_jerk': (min_jerk, 1.875), 'cruise_stop': (cruise_stop, 1.5)}


@dataclass(frozen=True)
class JointPath:
    """A dense joint path: times_s (K,) s from the path start, q (K, n) rad; K >= 2."""

    times_s: np.ndarray
    q: np.ndarray

    @property
    def duration_s(self) -> float:
        return float(self.times_s[-1])

    def sample(self, t_s: np.ndarray) -> np.ndarray:
        """Positions (len(t_s), n) at times `t_s` (s from the path start), held outside it."""
        t = np.clip(np.asarray(t_s, dtype=np.float64), 0.0, self.duration_s)
        out = np.empty((len(t), self.q.shape[1]))
        for j in range(self.q.shape[1]):
            out[:, j] = np.interp(t, self.times_s, self.q[:, j])
        return out


def retime(q: np.ndarray, segment_s: np.ndarray, v_cap: np.ndarray, dt_s: float,
           law: str = 'min_jerk', min_duration_s: float = 0.0) -> JointPath:
    """Time a geometric path q (K, n) along time law `law`, sampled every `dt_s`.

    Each segment k -> k+1 gets a pace: the longer of `segment_s[k]` (K-1,) (e.g. its length
    over the tool speed) and the time its fastest joint needs at `v_cap` (n,) rad/s. The law
    runs on the accumulated pace, so where the law is fastest every segment goes at its pace
    (5 % under): no joint exceeds v_cap, slow stretches (a joint working hard) slow down
    locally, and the path starts and ends as the law does (at rest for min-jerk).
    """
    fn, peak = TIME_LAWS[law]
    q = np.asarray(q, dtype=np.float64)
    dq = np.abs(np.diff(q, axis=0))
    pace = np.maximum(np.asarray(segment_s, dtype=np.float64),
                      np.max(dq / v_cap[None, :], axis=1))
    u_knots = np.concatenate([[0.0], np.cumsum(pace)])
    total = float(u_knots[-1])
    duration = max(peak * total * 1.05, min_duration_s, dt_s)
    steps = int(math.ceil(duration / dt_s)) + 1
    times = np.linspace(0.0, duration, steps)
    if total <= 0.0:
        return JointPath(times, np.tile(q[-1], (steps, 1)))
    u = total * fn(times / duration)
    out = np.empty((steps, q.shape[1]))
    for j in range(q.shape[1]):
        out[:, j] = np.interp(u, u_knots, q[:, j])
    return JointPath(times, out)


def joint_move(q0: np.ndarray, q1: np.ndarray, v_cap: np.ndarray, min_duration_s: float,
               dt_s: float) -> JointPath:
    """Min-jerk straight line in joint space q0 -> q1 (n,), joint speeds below v_cap (n,)."""
    q = np.vstack([q0, q1]).astype(np.float64)
    return retime(q, np.zeros(1), v_cap, dt_s, min_duration_s=min_duration_s)


def hold_path(q: np.ndarray, duration_s: float) -> JointPath:
    """Stay at q (n,) for `duration_s`."""
    q = np.asarray(q, dtype=np.float64)
    return JointPath(np.array([0.0, max(duration_s, 1e-3)]), np.vstack([q, q]))


class ToolIK:
    """IK of the tip of `chain` to points, with a fixed orientation `rotation` (3, 3) in the
    chain's root frame, or position only when it is None. Solutions stay `margin_rad` inside
    the chain's joint limits."""

    def __init__(self, chain: KinematicChain, rotation: np.ndarray | None,
                 keyframe_seeds: int = 24, pos_tol_m: float = 1e-3,
                 margin_rad: float = 0.0) -> None:
        if margin_rad > 0:
            chain = copy.copy(chain)            # the caller's chain keeps its limits
            chain.lower = chain.lower + margin_rad
            chain.upper = chain.upper - margin_rad
        self.chain = chain
        self.rotation = None if rotation is None else np.asarray(rotation, dtype=np.float64)
        common = dict(pos_tol_m=pos_tol_m, rot_tol_rad=1e-2, position_only=rotation is None,
                      max_iters=150)
        self._keyframe = TorchIKSolver(chain, IKConfig(num_seeds=keyframe_seeds, **common))
        self._track = TorchIKSolver(chain, IKConfig(num_seeds=1, stall_iters=0, **common))

    def __deepcopy__(self, memo: dict[int, Any]) -> ToolIK:
        return self     # no episode state: copies of an expert (eval's look-ahead) share it

    def poses(self, points: np.ndarray) -> torch.Tensor:
        """(K, 4, 4) tool poses at points (K, 3) m."""
        pts = np.atleast_2d(points)
        t = np.tile(np.eye(4), (len(pts), 1, 1))
        if self.rotation is not None:
            t[:, :3, :3] = self.rotation
        t[:, :3, 3] = pts
        return torch.as_tensor(t, dtype=torch.float64)

    def solve_keyframe(self, point: np.ndarray, q_prefer: np.ndarray
                       ) -> tuple[np.ndarray, float]:
        """(q (dof,), position error m) reaching `point` (3,); of the seeds that succeed, the
        solution nearest `q_prefer` (dof,)."""
        q_init = torch.as_tensor(q_prefer, dtype=torch.float64)[None]
        res = self._keyframe.solve(self.poses(point), q_init)
        return res.q[0].numpy(), float(res.pos_err_m[0])

    def solve_path(self, points: np.ndarray, q_start: np.ndarray
                   ) -> tuple[np.ndarray, float]:
        """(q (K, dof), worst position error m) along points (K, 3), warm-started in blocks
        from the previous solution (starting at `q_start`) so they stay on one branch."""
        out = np.empty((len(points), self.chain.dof))
        q_prev, worst, block = np.asarray(q_start, dtype=np.float64), 0.0, 8
        for i in range(0, len(points), block):
            pts = points[i:i + block]
            init = torch.as_tensor(np.tile(q_prev, (len(pts), 1)), dtype=torch.float64)
            res = self._track.solve(self.poses(pts), init)
            out[i:i + len(pts)] = res.q.numpy()
            worst = max(worst, float(res.pos_err_m.max()))
            q_prev = out[i + len(pts) - 1]
        return out, worst

    def tool_position(self, q: np.ndarray) -> np.ndarray:
        """(3,) tool point at q (dof,)."""
        pose = self.chain.fk(torch.as_tensor(q, dtype=torch.float64)[None])
        return pose[0, :3, 3].numpy()


def cartesian_line(ik: ToolIK, p0: np.ndarray, p1: np.ndarray, q_start: np.ndarray,
                   v_cap: np.ndarray, speed_m_s: float, dt_s: float,
                   min_duration_s: float = 0.0, law: str = 'min_jerk'
                   ) -> tuple[JointPath, float]:
    """The tool along the straight line p0 -> p1 (3,) m from q_start (dof,), its speed at most
    `speed_m_s` (reached where the law peaks; 'cruise_stop' starts at it), slower where a
    joint would exceed v_cap (dof,). Returns (path, worst IK position error m)."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    dist = float(np.linalg.norm(p1 - p0))
    n_pts = max(2, int(math.ceil(dist / 0.005)) + 1)          # a point every <= 5 mm
    s = np.linspace(0.0, 1.0, n_pts)
    q, err = ik.solve_path(p0[None, :] + s[1:, None] * (p1 - p0)[None, :], q_start)
    q = np.vstack([q_start, q])
    segment_s = np.full(n_pts - 1, dist / (n_pts - 1) / speed_m_s)
    return retime(q, segment_s, v_cap, dt_s, law, min_duration_s), err
