"""A ROS-free joint-trajectory follower with JointTrajectoryController (JTC) semantics.

The sim node runs one `TrajectoryFollower` at the physics rate: a received trajectory
(`trajectory_msgs/JointTrajectory`, converted to arrays in spec joint order by
`transport.convert.joint_trajectory_arrays`) goes to `set_trajectory`, and every physics step
calls `sample(t_s)` for the PD reference.

Semantics (ros2_controllers JTC, topic interface; reference/robots.md §1.4, safety.md §1.3):

- A new trajectory replaces the active one. A start time <= 0 (an unset header stamp) means
  "now"; any other start time is honoured: a past one (a plan stamped with the observation it
  was made from) makes its early points past, a future one defers the points.
- Points whose absolute time (start + time_from_start) is at or before `now_s` are dropped; if
  no point is left the trajectory is rejected (the active one is kept), as JTC rejects a
  trajectory whose points are all in the past.
- The first segment runs from the current state at `now_s` to the first kept point, so the
  reference never jumps. "Current state" is the measured `(q_now, dq_now)` by default, like JTC;
  with `interpolate_from_desired_state` it is the follower's own reference at `now_s` (JTC's
  option for MPC-style streams: continuous reference, hides tracking error).
- An empty trajectory stops: hold the current position with zero velocity.
- After the last point the reference holds the last position with zero velocity.
- Invalid input (wrong shapes, non-finite values, times not strictly increasing or negative)
  raises `TrajectoryError` (a `ValueError`) and leaves the active trajectory untouched. Unlike
  JTC, non-finite values are checked (JTC only checks sizes).

Interpolation: piecewise cubic Hermite in time, C1 (continuous position and velocity).
- With velocities: the given velocities at each point (JTC's cubic spline for pos+vel points).
- Without velocities: monotone (PCHIP, Fritsch-Butland) velocity estimates at interior points:
  the weighted harmonic mean of the neighbouring slopes, 0 where the path turns, so the
  reference never overshoots a waypoint between waypoints; the last point gets velocity 0 (the
  trajectory comes to rest at its end). This differs from JTC, which interpolates position-only
  points linearly (discontinuous velocity).
Accelerations are the cubic's second derivative (piecewise linear, may jump at points).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vidplan_ros.core.errors import VidplanError

__all__ = ['TrajectoryError', 'TrajectoryFollower', 'hermite_sample', 'pchip_velocities']

_EPS_S = 1e-9


class TrajectoryError(VidplanError, ValueError):
    """A trajectory was rejected; the active trajectory is unchanged."""


@dataclass(frozen=True)
class _Spline:
    """Knots of a C1 cubic Hermite spline: times (K,) s, positions (K, n), velocities (K, n)."""

    times_s: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray


def pchip_velocities(times_s: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Monotone (Fritsch-Butland) velocity estimates (K, n) at the interior knots.

    Rows 0 and K-1 are left at 0; callers set the end velocities they want.
    """
    k = len(times_s)
    vel = np.zeros_like(positions)
    if k < 3:
        return vel
    h = np.diff(times_s)[:, None]                        # (K-1, 1)
    slope = np.diff(positions, axis=0) / h              # (K-1, n)
    s0, s1 = slope[:-1], slope[1:]
    h0, h1 = h[:-1], h[1:]
    w0, w1 = 2.0 * h1 + h0, h1 + 2.0 * h0
    same_sign = s0 * s1 > 0.0
    with np.errstate(divide='ignore', invalid='ignore'):
        harmonic = (w0 + w1) / (w0 / s0 + w1 / s1)
    vel[1:-1] = np.where(same_sign, harmonic, 0.0)
    return vel


def hermite_sample(spline: _Spline, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q (n,), dq (n,), ddq (n,)) of `spline` at `t_s`; holds the end knots outside its span."""
    times = spline.times_s
    n = spline.positions.shape[1]
    if t_s >= times[-1]:
        return spline.positions[-1].copy(), np.zeros(n), np.zeros(n)
    if t_s <= times[0]:
        t_s = float(times[0])
    i = int(np.searchsorted(times, t_s, side='right')) - 1
    i = min(max(i, 0), len(times) - 2)
    h = float(times[i + 1] - times[i])
    s = (t_s - float(times[i])) / h
    p0, p1 = spline.positions[i], spline.positions[i + 1]
    m0, m1 = spline.velocities[i] * h, spline.velocities[i + 1] * h
    s2, s3 = s * s, s * s * s
    q = ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * m0
         + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * m1)
    dq = ((6 * s2 - 6 * s) * p0 + (3 * s2 - 4 * s + 1) * m0
          + (-6 * s2 + 6 * s) * p1 + (3 * s2 - 2 * s) * m1) / h
    ddq = ((12 * s - 6) * p0 + (6 * s - 4) * m0
           + (-12 * s + 6) * p1 + (6 * s - 2) * m1) / (h * h)
    return q, dq, ddq


class TrajectoryFollower:
    """Follows joint trajectories with JTC replacement semantics (see the module docstring).

    `joint_names` fixes the joint order of every array (spec order); `hold_q` (n,) rad is the
    position held before the first trajectory (JTC holds the current position on activation).
    """

    def __init__(self, joint_names: Sequence[str], hold_q: np.ndarray,
                 interpolate_from_desired_state: bool = False) -> None:
        self.joint_names = tuple(joint_names)
        n = len(self.joint_names)
        if n == 0:
            raise TrajectoryError('TrajectoryFollower needs at least one joint name')
        self.interpolate_from_desired_state = bool(interpolate_from_desired_state)
        self._spline = self._hold_spline(self._vector(hold_q, 'hold_q'), 0.0)
        self._active = False

    # --- queries -----------------------------------------------------------------------------

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def end_time_s(self) -> float:
        """Time of the last point of the active trajectory (of the hold start when holding)."""
        return float(self._spline.times_s[-1])

    @property
    def has_trajectory(self) -> bool:
        """True once a non-empty trajectory was accepted and no stop/hold came after it."""
        return self._active

    def is_done(self, t_s: float) -> bool:
        """True when holding, or when `t_s` is at or past the last point."""
        return (not self._active) or t_s >= self.end_time_s

    def knots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The active spline's (times_s (K,), positions (K, n), velocities (K, n)), copies."""
        s = self._spline
        return s.times_s.copy(), s.positions.copy(), s.velocities.copy()

    def sample(self, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reference (q_des (n,) rad, dq_des (n,) rad/s, acc (n,) rad/s^2) at time `t_s`."""
        return hermite_sample(self._spline, float(t_s))

    # --- commands ----------------------------------------------------------------------------

    def hold(self, q: np.ndarray, now_s: float = 0.0) -> None:
        """Stop: hold position `q` (n,) with zero velocity from `now_s` on."""
        self._spline = self._hold_spline(self._vector(q, 'q'), self._time(now_s, 'now_s'))
        self._active = False

    def set_trajectory(self, start_time_s: float, times_from_start_s: np.ndarray,
                       positions: np.ndarray, velocities: np.ndarray | None, now_s: float,
                       q_now: np.ndarray, dq_now: np.ndarray | None = None) -> int:
        """Replace the active trajectory; returns the number of points kept (0 = stop/hold).

        times_from_start_s (T,) s from `start_time_s` (<= 0 = now), positions (T, n)
        rad, velocities (T, n) rad/s or None, the measured state q_now (n,) rad and dq_now (n,)
        rad/s (None = at rest) at `now_s`. Raises `TrajectoryError` for invalid input, or when
        every point is at or before `now_s`; the active trajectory is then unchanged.
        """
        now = self._time(now_s, 'now_s')
        start = self._time(start_time_s, 'start_time_s')
        q0 = self._vector(q_now, 'q_now')
        dq0 = np.zeros(self.num_joints) if dq_now is None else self._vector(dq_now, 'dq_now')
        times, pos, vel = self._check_points(times_from_start_s, positions, velocities)
        if self.interpolate_from_desired_state:
            q0, dq0, _ = self.sample(now)
        if len(times) == 0:
            self._spline = self._hold_spline(q0, now)
            self._active = False
            return 0
        if start <= 0.0:
            start = now
        abs_times = start + times
        keep = abs_times > now + _EPS_S
        if not np.any(keep):
            raise TrajectoryError(
                f'every trajectory point is at or before now ({now:.6f} s; last point at '
                f'{abs_times[-1]:.6f} s); rejected, the active trajectory is kept')
        k_times = np.concatenate([[now], abs_times[keep]])
        k_pos = np.vstack([q0, pos[keep]])
        if vel is not None:
            k_vel = np.vstack([dq0, vel[keep]])
        else:
            k_vel = pchip_velocities(k_times, k_pos)
            k_vel[0] = dq0
            k_vel[-1] = 0.0
        self._spline = _Spline(k_times, k_pos, k_vel)
        self._active = True
        return int(np.count_nonzero(keep))

    # --- helpers -----------------------------------------------------------------------------

    def _hold_spline(self, q: np.ndarray, t_s: float) -> _Spline:
        zeros = np.zeros((2, self.num_joints))
        return _Spline(np.array([t_s - 1.0, t_s]), np.vstack([q, q]), zeros)

    def _vector(self, value: np.ndarray, name: str) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (self.num_joints,):
            raise TrajectoryError(f'{name} has shape {arr.shape}; expected ({self.num_joints},) '
                                  f'for joints {list(self.joint_names)}')
        if not np.all(np.isfinite(arr)):
            raise TrajectoryError(f'{name} has non-finite values {arr.tolist()}; rejected')
        return arr.copy()

    @staticmethod
    def _time(value: float, name: str) -> float:
        t = float(value)
        if not np.isfinite(t):
            raise TrajectoryError(f'{name} = {value!r} is not a finite time in s; rejected')
        return t

    def _check_points(self, times_from_start_s: np.ndarray, positions: np.ndarray,
                      velocities: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        n = self.num_joints
        times = np.asarray(times_from_start_s, dtype=np.float64)
        pos = np.asarray(positions, dtype=np.float64)
        if times.ndim != 1:
            raise TrajectoryError(f'times_from_start_s has shape {times.shape}; expected (T,)')
        t_len = len(times)
        if t_len == 0 and pos.size == 0:
            pos = pos.reshape(0, n)
        if pos.shape != (t_len, n):
            raise TrajectoryError(f'positions has shape {pos.shape}; expected ({t_len}, {n}) '
                                  f'(T points x joints {list(self.joint_names)})')
        vel = None
        if velocities is not None:
            vel = np.asarray(velocities, dtype=np.float64)
            if t_len == 0 and vel.size == 0:
                vel = vel.reshape(0, n)
            if vel.shape != (t_len, n):
                raise TrajectoryError(f'velocities has shape {vel.shape}; expected '
                                      f'({t_len}, {n}) or None')
        for name, arr in (('times_from_start_s', times), ('positions', pos),
                          ('velocities', vel)):
            if arr is not None and not np.all(np.isfinite(arr)):
                raise TrajectoryError(f'{name} has non-finite values; rejected')
        if t_len and (times[0] < 0.0 or np.any(np.diff(times) <= 0.0)):
            raise TrajectoryError('times_from_start_s must be >= 0 and strictly increasing '
                                  f'(got {times.tolist()}); rejected')
        return times, pos, vel
