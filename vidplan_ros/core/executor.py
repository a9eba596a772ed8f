"""MPC executor core (ROS-free): grounded plans in, one safe joint command per control period out.

Receding horizon: the freshest valid :class:`GroundedPlan` is timed from the stamp of the
observation it was made from (``t = stamp_s + times_from_stamp_s``); points already in the past are
dropped and the rest is spliced onto the command being executed (position and velocity blended
in over ``splice_blend_s``), so the reference never jumps. A cascaded tracking law turns the
reference into a desired acceleration and :class:`~vidplan_ros.core.limits.SafetyFilter` makes it
a command whose backward differences are inside the position / velocity / acceleration / jerk
limits, always (see ``limits.py``). A stale observation, a stale plan or an e-stop brings the robot
to rest along the filter's certified stopping plans; a plan the world model could not make
feasible (dynamics residual above threshold) is rejected, keeping the current one.

A plan starts where the robot was at its stamp, so its start is checked against the command
of that moment (a short history), not against the command now: a plan that arrives 0.15 s late
has moved on from where the robot still is, by as much as its first step, and is blended in
from the command now like any other.

The command runs open loop on the measured state, as a trajectory controller's reference does.
When the robot is further than ``max_tracking_error_rad`` from it (moved by hand, reset by a
simulator, a controller that stopped following), the plan is dropped and the command brought
to rest, and a command at rest that far from the robot restarts at the measured state: it
would otherwise pull the robot back, and every plan made from where the robot is would fail
the start check.

One clock: plan stamps, observation stamps and ``now_s`` must come from the same clock.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import numpy as np

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.limits import JointLimits, SafetyFilter, joint_limits_from_spec
from vidplan_ros.core.robot_spec import RobotSpec

MODES = ('idle', 'track', 'hold', 'decelerate', 'estop')
_MIN_DT_S = 1e-6          # plan points closer in time than this are rejected


@dataclass(frozen=True, eq=False)
class GroundedPlan:
    """A timed joint plan from grounding; arrays in the robot spec's joint order."""

    stamp_s: float                        # stamp of the observation the plan was made from
    times_from_stamp_s: np.ndarray        # (H,) strictly increasing
    positions_rad: np.ndarray             # (H, n)
    velocities_rad_s: np.ndarray | None   # (H, n) or None (then estimated from positions)
    dynamics_residual: float
    alignment: float
    source: str = ''


@dataclass(frozen=True)
class PlanDecision:
    accepted: bool
    reason: str


@dataclass(frozen=True, eq=False)
class Command:
    """One control period's command; `mode` is one of MODES ('idle': send nothing)."""

    q_rad: np.ndarray          # (n,)
    dq_rad_s: np.ndarray       # (n,)
    ddq_rad_s2: np.ndarray     # (n,)
    mode: str
    reason: str
    stamp_s: float = 0.0


@dataclass(frozen=True)
class ExecutorConfig:
    """Executor parameters (config/executor.yaml). Scales are fractions of the robot's limits."""

    control_dt_s: float = 0.002
    velocity_scale: float = 0.5
    acceleration_scale: float = 0.5
    jerk_scale: float = 0.5
    position_margin_rad: float = -1.0     # < 0: the robot spec's (ROS parameters cannot be null)
    stale_plan_s: float = 1.0             # plan older than this (from its stamp) -> stop
    stale_observation_s: float = 0.1
    max_future_stamp_s: float = 0.25      # stamps further ahead of now: clock mismatch
    max_dynamics_residual: float = 0.1
    min_alignment: float = -1.0           # cosine alignment gate; -1 = off
    max_start_deviation_rad: float = 0.4
    max_tracking_error_rad: float = 0.3   # measured vs command -> stop, then restart there
    max_splice_velocity_change_rad_s: float = 1.0
    splice_blend_s: float = 0.2
    tracking_time_constant_s: float = 0.05
    max_plan_points: int = 10000
    max_plan_horizon_s: float = 30.0

    def __post_init__(self) -> None:
        require_positive(self, 'control_dt_s', 'stale_plan_s', 'stale_observation_s',
                         'max_future_stamp_s', 'max_dynamics_residual', 'max_start_deviation_rad',
                         'max_tracking_error_rad',
                         'max_splice_velocity_change_rad_s', 'splice_blend_s',
                         'tracking_time_constant_s', 'max_plan_horizon_s')
        for name in ('velocity_scale', 'acceleration_scale', 'jerk_scale'):
            value = getattr(self, name)
            require(0 < value <= 1, name, value, 'a fraction of the robot limit in (0, 1]')
        require(np.isfinite(self.position_margin_rad), 'position_margin_rad',
                self.position_margin_rad, 'a finite margin (< 0: use the robot spec margin)')
        require(-1 <= self.min_alignment <= 1, 'min_alignment', self.min_alignment,
                'a cosine in [-1, 1]')
        require(self.max_plan_points >= 1, 'max_plan_points', self.max_plan_points, '>= 1')


class _Reference:
    """A plan in absolute time (cubic Hermite), plus an offset (dq, dv) at t0_s fading out over
    blend_s, so that it starts exactly on what was being executed."""

    def __init__(self, times_s: np.ndarray, pos: np.ndarray, vel: np.ndarray, stamp_s: float,
                 t0_s: float, dq: np.ndarray, dv: np.ndarray, blend_s: float) -> None:
        self.times_s, self.pos, self.stamp_s = times_s, pos, stamp_s
        self.t0_s, self.blend_s = t0_s, blend_s
        self._seg = np.stack([pos[:-1] - pos[1:], vel[:-1], vel[1:]], axis=1)  # (K-1, 3, n)
        self._fade = np.stack([dq, dv])
        self._rest = np.vstack([pos[-1], np.zeros((2, pos.shape[1]))])

    def sample(self, t: float) -> np.ndarray:
        """Rows: position, velocity, acceleration at `t` (at rest on the last point after)."""
        times = self.times_s
        if t >= times[-1] or len(times) == 1:
            out = self._rest.copy()
        else:
            i = max(0, int(np.searchsorted(times, t, side='right')) - 1)
            T = times[i + 1] - times[i]
            out = _cubic(max(0.0, (t - times[i]) / T), T) @ self._seg[i]
            out[0] += self.pos[i + 1]
        s = (t - self.t0_s) / self.blend_s
        if 0.0 <= s < 1.0:
            out += _cubic(s, self.blend_s)[:, :2] @ self._fade
        return out


def _cubic(s: float, T: float) -> np.ndarray:
    """Cubic Hermite weights at s in [0, 1] of a segment of duration T: rows position,
    velocity, acceleration; columns (p0 - p1, v0, v1) (add p1 to the position)."""
    s2, s3 = s * s, s * s * s
    return np.array([[2 * s3 - 3 * s2 + 1, (s3 - 2 * s2 + s) * T, (s3 - s2) * T],
                     [(6 * s2 - 6 * s) / T, 3 * s2 - 4 * s + 1, 3 * s2 - 2 * s],
                     [(12 * s - 6) / T**2, (6 * s - 4) / T, (6 * s - 2) / T]])


def _finite(*values: object) -> bool:
    return all(bool(np.isfinite(v).all()) for v in values if v is not None)


class _History:
    """The emitted commands of the last `span_s` (a ring), looked up by time."""

    def __init__(self, span_s: float, dt_s: float, n: int) -> None:
        size = int(np.ceil(span_s / dt_s)) + 2
        self.times_s = np.full(size, -np.inf)
        self.q = np.zeros((size, n))
        self._i = 0

    def push(self, t_s: float, q: np.ndarray) -> None:
        j = self._i % len(self.times_s)
        self.times_s[j], self.q[j] = t_s, q
        self._i += 1

    def at(self, t_s: float) -> np.ndarray | None:
        """The last command emitted at or before `t_s`; None if the history starts later."""
        past = np.where(self.times_s <= t_s, self.times_s, -np.inf)
        j = int(np.argmax(past))
        return self.q[j] if np.isfinite(past[j]) else None


class Executor:
    """Receding-horizon executor for one robot. Call `step(now_s)` once per control period."""

    def __init__(self, spec: RobotSpec, cfg: ExecutorConfig | None = None) -> None:
        self.spec, self.cfg = spec, cfg or ExecutorConfig()
        margin = None if self.cfg.position_margin_rad < 0 else self.cfg.position_margin_rad
        self.limits: JointLimits = joint_limits_from_spec(
            spec, self.cfg.control_dt_s, self.cfg.velocity_scale, self.cfg.acceleration_scale,
            self.cfg.jerk_scale, margin)
        self._n = spec.num_joints
        self._tau_p = self.cfg.tracking_time_constant_s
        self._tau_v = max(self._tau_p / 4.0, 2.0 * self.cfg.control_dt_s)
        self._counts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """Forget the command state and plan; the next observation restarts at rest."""
        self._filter: SafetyFilter | None = None
        self._ref: _Reference | None = None
        self._history = _History(self.cfg.stale_plan_s, self.cfg.control_dt_s, self._n)
        self._obs_stamp_s = -np.inf
        self._q_meas: np.ndarray | None = None
        self._now_s = -np.inf
        self._cmd_time_s = -np.inf
        self._first_pending = False
        self._estop = False
        self._stop_reason = 'no_plan'

    # --- inputs -------------------------------------------------------------------------

    def on_state(self, q_rad: np.ndarray, dq_rad_s: np.ndarray | None, stamp_s: float) -> bool:
        """A measured joint state (spec order, dq may be None). False (ignored) if invalid."""
        try:
            q = np.asarray(q_rad, dtype=float).reshape(-1)
            dq = q if dq_rad_s is None else np.asarray(dq_rad_s, dtype=float).reshape(-1)
            stamp = float(stamp_s)
        except (TypeError, ValueError):
            q = dq = np.zeros(0)
            stamp = np.nan
        reason = ('malformed' if q.shape != (self._n,) or dq.shape != (self._n,) else
                  'non_finite' if not _finite(stamp, q, dq) else
                  'out_of_order' if stamp < self._obs_stamp_s else '')
        self._counts[f'observation_{reason or "ok"}'] += 1
        if reason:
            return False
        self._obs_stamp_s = stamp
        self._q_meas = q
        if self._filter is None:   # first command = measured q, at rest
            self._filter = SafetyFilter(self.limits, q)
            self._cmd_time_s = stamp
            self._first_pending = True
        return True

    def set_estop(self, active: bool) -> None:
        """Latched: decelerate to rest; no plan runs until released and a new plan arrives."""
        if active and not self._estop:
            self._counts['estops'] += 1
            self._drop_plan('estop')
        elif self._estop and not active:
            self._stop_reason = 'estop_released'
        self._estop = bool(active)

    def on_plan(self, plan: GroundedPlan) -> PlanDecision:
        """Validate `plan` and splice it onto the current command, or reject it (keeping the
        current plan) with the reason."""
        reason = self._check(plan)
        if reason:
            self._rejected[reason] += 1
            return PlanDecision(False, reason)
        self._counts['accepted'] += 1
        return PlanDecision(True, 'accepted')

    def _check(self, plan: GroundedPlan) -> str:  # noqa: C901 - a flat list of rejections
        cfg, n = self.cfg, self._n
        try:
            times = np.asarray(plan.times_from_stamp_s, dtype=float)
            pos = np.asarray(plan.positions_rad, dtype=float)
            vel = None if plan.velocities_rad_s is None else np.asarray(plan.velocities_rad_s,
                                                                        dtype=float)
            stamp, residual = float(plan.stamp_s), float(plan.dynamics_residual)
            alignment = float(plan.alignment)
        except (TypeError, ValueError, AttributeError):
            return 'malformed'
        if (times.ndim != 1 or not 1 <= len(times) <= cfg.max_plan_points
                or pos.shape != (len(times), n) or (vel is not None and vel.shape != pos.shape)):
            return 'malformed'
        if not _finite(stamp, residual, alignment, times, pos, vel):
            return 'non_finite'
        if np.any(np.diff(times) < _MIN_DT_S):
            return 'times_not_increasing'
        if times[-1] - min(times[0], 0.0) > cfg.max_plan_horizon_s:
            return 'horizon_too_long'
        now = max(self._now_s, self._obs_stamp_s)
        spec = self.spec
        reason = ('estop' if self._estop else
                  'no_state' if self._filter is None else
                  'stale_observation' if now - self._obs_stamp_s > cfg.stale_observation_s else
                  'future_stamp' if stamp > now + cfg.max_future_stamp_s else
                  'stale' if now - stamp > cfg.stale_plan_s else
                  'dynamics_residual' if residual > cfg.max_dynamics_residual else
                  'alignment' if alignment < cfg.min_alignment else
                  'out_of_limits' if np.any(pos < spec.position_min_rad)
                  or np.any(pos > spec.position_max_rad) else
                  'velocity_out_of_limits' if vel is not None
                  and np.any(np.abs(vel) > spec.velocity_max_rad_s) else '')
        if reason or self._filter is None:
            return reason
        t_abs = stamp + times
        t0 = self._cmd_time_s
        future = np.flatnonzero(t_abs > t0)
        if not future.size:
            return 'expired'
        if vel is None:
            vel = np.gradient(pos, times, axis=0) if len(times) > 1 else np.zeros_like(pos)
        q = self._filter.q
        # Splice onto what is being executed: the current reference, else the command itself.
        a_q, a_v = (self._filter.q, self._filter.v) if self._ref is None else \
            self._ref.sample(t0)[:2]
        i = int(future[0])
        if i > 0 or t_abs[0] - t0 < _MIN_DT_S:   # the plan covers now: blend from it
            # its start against the command of that moment (the robot it was made for)
            then = self._history.at(t_abs[0])
            if np.max(np.abs(pos[0] - (q if then is None else then))) > \
                    cfg.max_start_deviation_rad:
                return 'start_deviation'
            p_at, v_at, _ = _Reference(t_abs, pos, vel, stamp, np.inf, q, q, 1.0).sample(t0)
            if np.max(np.abs(v_at - a_v)) > cfg.max_splice_velocity_change_rad_s:
                return 'splice_velocity'
            i = int(np.searchsorted(t_abs, t0 + _MIN_DT_S, side='right'))
            start, dq, dv = (p_at, v_at), a_q - p_at, a_v - v_at
        else:                                   # the plan starts later: lead in from here
            if np.max(np.abs(pos[0] - q)) > cfg.max_start_deviation_rad:
                return 'start_deviation'
            start, dq, dv = (a_q, a_v), np.zeros(n), np.zeros(n)
        times_s = np.concatenate([[t0], t_abs[i:]])
        pts = np.concatenate([start[0][None], pos[i:]])
        vls = np.concatenate([start[1][None], vel[i:]])
        self._counts['points_dropped'] += i
        self._counts['splices'] += int(self._ref is not None)
        self._ref = _Reference(times_s, pts, vls, stamp, t0, dq, dv, cfg.splice_blend_s)
        return ''

    def _drop_plan(self, reason: str) -> None:
        if self._ref is not None:
            self._counts[f'plans_dropped_{reason}'] += 1
        self._ref = None
        self._stop_reason = reason

    # --- output -------------------------------------------------------------------------

    def step(self, now_s: float) -> Command:
        """The command for time `now_s` (one control period after the previous one)."""
        f = self._filter
        if f is None:
            return Command(np.array(self.spec.ready_pose_rad), np.zeros(self._n),
                           np.zeros(self._n), 'idle', 'no_observation',
                           float(now_s) if np.isfinite(now_s) else 0.0)
        finite = bool(np.isfinite(now_s))
        now = float(now_s) if finite else self._cmd_time_s + self.cfg.control_dt_s
        bad_clock = not finite or now < self._now_s
        self._now_s = max(self._now_s, now)
        if self._first_pending:
            self._first_pending = False
            return self._emit('hold', 'start', now)
        mode, reason = self._decide(now, bad_clock)
        if mode == 'hold' and f.at_rest and self._astray():
            self._counts['resync'] += 1
            self._filter = SafetyFilter(self.limits, self._q_meas)
            return self._emit('hold', 'resync', now)
        q_prev, v_prev, a_prev = f.q, f.v, f.a
        tracking = mode == 'track'
        if tracking:
            f.step(self._tracking(now))
        else:
            f.brake()
        if not np.isfinite(f.q.sum() + f.v.sum() + f.a.sum()):   # cannot happen; never out
            self._counts['nonfinite_fallback'] += 1
            f.q, f.v, f.a = q_prev, v_prev, a_prev
            self._drop_plan('nonfinite')
            return self._emit('hold', 'nonfinite', now)
        if not tracking:
            mode = 'estop' if self._estop else 'hold' if f.at_rest else 'decelerate'
        elif reason == 'plan_end':
            mode = 'hold'
        return self._emit(mode, reason, now)

    def _decide(self, now: float, bad_clock: bool) -> tuple[str, str]:
        cfg = self.cfg
        obs_age = now - self._obs_stamp_s
        cause = ('estop' if self._estop else
                 'bad_clock' if bad_clock else
                 'stale_observation' if obs_age > cfg.stale_observation_s else
                 'clock_mismatch' if obs_age < -cfg.max_future_stamp_s else '')
        ref = self._ref
        if not cause and ref is not None:
            age = now - ref.stamp_s
            cause = ('stale_plan' if age > cfg.stale_plan_s else
                     'clock_mismatch' if age < -cfg.max_future_stamp_s else '')
        if not cause and ref is not None and self._astray():
            cause = 'tracking_error'
        if cause:
            self._drop_plan(cause)
            return 'decelerate', cause
        if ref is None:
            return 'hold', self._stop_reason
        return 'track', 'plan_end' if now >= ref.times_s[-1] else 'tracking'

    def _astray(self) -> bool:
        """The robot is further than max_tracking_error_rad from the command on some joint."""
        q, f = self._q_meas, self._filter
        return q is not None and f is not None and \
            float(np.max(np.abs(q - f.q))) > self.cfg.max_tracking_error_rad

    def _tracking(self, now: float) -> np.ndarray:
        """Desired acceleration: reference feed-forward plus a cascaded P (position) / P
        (velocity) loop with sqrt-shaped approach so the limits rarely have to intervene."""
        assert self._ref is not None and self._filter is not None
        lim, f = self.limits, self._filter
        r, dr, ddr = self._ref.sample(now)
        amax, jmax = lim.acceleration_max_rad_s2, lim.jerk_max_rad_s3
        r_c = np.minimum(np.maximum(r, lim.position_min_rad), lim.position_max_rad)
        e = r_c - (f.q + f.v * self.cfg.control_dt_s)   # vs where the command is heading
        ae = np.abs(e)
        v_star = dr + np.sign(e) * np.minimum(ae / self._tau_p, np.sqrt(amax * ae))
        vlo, vhi = lim.velocity_bounds(f.q)
        v_c = np.minimum(np.maximum(v_star, vlo), vhi)
        if (r_c != r).any():
            self._counts['clamp_position'] += 1
        if (v_c != v_star).any():
            self._counts['clamp_velocity'] += 1
        ev = v_c - f.v
        cap = np.sqrt(jmax * np.abs(ev))
        a_fb = np.minimum(np.maximum(ev / self._tau_v, -cap), cap)
        return np.minimum(np.maximum(ddr + a_fb, -amax), amax)

    def _emit(self, mode: str, reason: str, now: float) -> Command:
        f = self._filter
        assert f is not None
        self._cmd_time_s = now
        self._history.push(now, f.q)
        self._counts[f'mode_{mode}'] += 1
        return Command(f.q.copy(), f.v.copy(), f.a.copy(), mode, reason, now)

    def preview(self, now_s: float, horizon_s: float, dt_s: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The commands of the next `horizon_s` (capped at max_plan_horizon_s) if nothing
        changes, every `dt_s` rounded to whole control periods: times (T,) from now_s + dt_s,
        q (T, n), dq (T, n). Differences at that period stay within the box limits."""
        h = self.cfg.control_dt_s
        every = max(1, int(round(dt_s / h))) if np.isfinite(dt_s) and dt_s > 0 else 1
        horizon = min(horizon_s, self.cfg.max_plan_horizon_s) if horizon_s > 0 else 0.0
        count = int(horizon / (every * h)) if np.isfinite(horizon) else 0
        if self._filter is None:
            count = 0
        shared = (self.spec, self.cfg, self.limits, self._ref)   # never mutated
        sim = copy.deepcopy(self, {id(x): x for x in shared})
        times, qs, dqs = [], [], []
        for k in range(1, count * every + 1):
            cmd = sim.step(now_s + k * h)
            if k % every == 0:
                times.append(now_s + k * h)
                qs.append(cmd.q_rad)
                dqs.append(cmd.dq_rad_s)
        shape = (len(times), self._n)
        return (np.array(times), np.array(qs).reshape(shape), np.array(dqs).reshape(shape))

    def status(self) -> dict[str, object]:
        """Counters: accepted, rejected by reason, clamps per limit, splices, modes, ..."""
        f = self._filter
        clamps = {'position': self._counts['clamp_position'],
                  'velocity': self._counts['clamp_velocity']}
        if f is not None:
            clamps.update(f.clamps)
        counts = {k: v for k, v in self._counts.items() if not k.startswith('clamp_')}
        return {'accepted': self._counts['accepted'], 'rejected': dict(self._rejected),
                'clamps': clamps, 'splices': self._counts['splices'],
                'estop': self._estop, 'has_plan': self._ref is not None, 'counts': counts}
