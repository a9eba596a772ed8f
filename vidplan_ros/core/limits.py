"""Joint limits as the robot's controller checks them, and the executor's jerk-limited filter.

The controller (Franka FCI; the G1 checks are analogous) differentiates the commanded positions by
backward differences at the control period and rejects any position, velocity, acceleration or
jerk beyond its limits. The filter integrates ``a_k = a_{k-1} + j_k dt, v_k = v_{k-1} + a_k dt,
q_k = q_{k-1} + v_k dt``, so those backward differences are exactly its own ``(v, a, j)``.

Guarantee (per joint; the limits are boxes, so joints are independent): every joint always holds a
*certified stopping plan*, a sequence of accelerations that brings it to rest (v = a = 0) while
position, velocity (with the FR3 position-dependent bound) and acceleration stay inside the limits
and every step is within the jerk limit. Each tick the desired acceleration is clipped to the jerk
and acceleration box; it is taken only if the state it leads to again has a certified stopping plan
(checked by a closed-form sufficient test, else by simulating the plan exactly). Otherwise the
joint follows its certified plan, whose tail stays certified. By induction no tick can leave the
limits, from the first command (measured q at rest) on. Internally the limits are tightened by
1e-6 (relative) so float rounding in the caller's backward differences never shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.robot_spec import RobotSpec

_TIGHTEN = 1.0 - 1e-6
_TIGHTEN_RAD = 1e-9
_INTERVALS = 12       # of the stopping distance, for the position-dependent velocity test
_BLENDS = (0.5, 0.25)  # fractions of the way from the stopping plan to a rejected candidate


@dataclass(frozen=True, eq=False)
class JointLimits:
    """Limits a command stream must meet by backward differences at `dt_s`; arrays are (n,)."""

    dt_s: float
    position_min_rad: np.ndarray        # the robot's limit plus the margin
    position_max_rad: np.ndarray
    velocity_max_rad_s: np.ndarray      # scaled
    acceleration_max_rad_s2: np.ndarray
    jerk_max_rad_s3: np.ndarray
    velocity_scale: float = 1.0
    # Franka FR3 position-dependent velocity bound (empty = none), on the robot's own limits:
    # v <= scale * min(v_max, max(0, -offset + sqrt(2 dec (q_max - q)))), mirrored below.
    velocity_offset_rad_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    deceleration_max_rad_s2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hard_position_min_rad: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hard_position_max_rad: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def num_joints(self) -> int:
        return len(self.position_min_rad)

    @property
    def position_dependent(self) -> bool:
        return len(self.velocity_offset_rad_s) > 0

    @cached_property
    def _consts(self) -> _Consts:
        return _Consts(self)

    def velocity_bounds(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest allowed velocity at positions `q_rad (..., n)`."""
        c = self._consts
        return c.lower(c.table, q_rad), c.upper(c.table, q_rad)

    def tightened(self) -> JointLimits:
        """These limits pulled in by float-rounding headroom (what the filter enforces)."""
        return replace(self, position_min_rad=self.position_min_rad + _TIGHTEN_RAD,
                       position_max_rad=self.position_max_rad - _TIGHTEN_RAD,
                       velocity_max_rad_s=self.velocity_max_rad_s * _TIGHTEN,
                       acceleration_max_rad_s2=self.acceleration_max_rad_s2 * _TIGHTEN,
                       jerk_max_rad_s3=self.jerk_max_rad_s3 * _TIGHTEN,
                       velocity_scale=self.velocity_scale * _TIGHTEN)


def joint_limits_from_spec(spec: RobotSpec, dt_s: float, velocity_scale: float = 1.0,
                           acceleration_scale: float = 1.0, jerk_scale: float = 1.0,
                           position_margin_rad: float | None = None) -> JointLimits:
    """The robot's limits scaled by the given fractions, positions pulled in by the margin."""
    margin = spec.position_margin_rad if position_margin_rad is None else position_margin_rad
    lo, hi = np.array(spec.position_min_rad), np.array(spec.position_max_rad)
    if not (margin >= 0 and np.all(hi - lo > 2 * margin)):
        raise VidplanError(f'{spec.name}: position_margin_rad {margin} must be >= 0 and smaller '
                           'than half of every joint range')
    pdv = bool(spec.velocity_offset_rad_s)
    return JointLimits(
        dt_s=float(dt_s), position_min_rad=lo + margin, position_max_rad=hi - margin,
        velocity_max_rad_s=velocity_scale * np.array(spec.velocity_max_rad_s),
        acceleration_max_rad_s2=acceleration_scale * np.array(spec.acceleration_max_rad_s2),
        jerk_max_rad_s3=jerk_scale * np.array(spec.jerk_max_rad_s3),
        velocity_scale=float(velocity_scale),
        velocity_offset_rad_s=np.array(spec.velocity_offset_rad_s, dtype=float),
        deceleration_max_rad_s2=np.array(spec.deceleration_max_rad_s2, dtype=float),
        hard_position_min_rad=lo if pdv else np.zeros(0),
        hard_position_max_rad=hi if pdv else np.zeros(0))


def limit_ratios(q_rad: np.ndarray, limits: JointLimits,
                 q_before_rad: np.ndarray | None = None) -> dict[str, float]:
    """Peak ratio to each limit of the commands `q_rad (T, n)`, as the robot checks them.

    Velocity, acceleration and jerk are backward differences at `limits.dt_s`, after the three
    commands `q_before_rad (3, n)` (default: the robot at rest at ``q_rad[0]``). 'position' is 1
    at the edge of the margined range; 'velocity' includes the position-dependent bound
    (evaluated at the position reached). <= 1 is legal.
    """
    q = np.asarray(q_rad, dtype=float)
    before = np.repeat(q[:1], 3, axis=0) if q_before_rad is None else q_before_rad[-3:]
    q = np.concatenate([before, q])
    h = limits.dt_s
    v = np.diff(q, axis=0) / h
    a = np.diff(v, axis=0) / h
    j = np.diff(a, axis=0) / h
    mid = 0.5 * (limits.position_max_rad + limits.position_min_rad)
    half = 0.5 * (limits.position_max_rad - limits.position_min_rad)
    lo, hi = limits.velocity_bounds(q[1:])
    bound = np.where(v > 0, hi, -lo)
    with np.errstate(divide='ignore', invalid='ignore'):
        v_ratio = np.where(v == 0, 0.0, np.where(bound > 0, np.abs(v) / bound, np.inf))

    def peak(x: np.ndarray) -> float:
        return float(np.max(x)) if x.size else 0.0

    return {'position': peak(np.abs(q - mid) / half),
            'velocity': peak(v_ratio),
            'acceleration': peak(np.abs(a) / limits.acceleration_max_rad_s2),
            'jerk': peak(np.abs(j) / limits.jerk_max_rad_s3)}


def _stop_params(v0: np.ndarray, a0: np.ndarray, amax: np.ndarray, jmax: np.ndarray,
                 h: float) -> tuple[np.ndarray, ...]:
    """Stopping plan: ramp a to 0 in k1 steps, then a trapezoid of height b (r up, m flat, r down).

    Returns (k1, v1, r, m, b, steps); v1 is the velocity after the ramp, steps the plan length.
    """
    jstep = jmax * h
    k1 = np.ceil(np.abs(a0) / jstep)
    v1 = v0 + h * a0 * (k1 - 1.0) / 2.0          # a0 = 0 <=> k1 = 0
    s = np.abs(v1)
    r = np.ceil(np.minimum(amax, np.sqrt(s * jmax)) / jstep)
    m = np.maximum(0.0, np.ceil(s / (h * amax) - r))
    b = s / (h * np.maximum(r + m, 1.0))
    return k1, v1, r, m, b, k1 + 2.0 * r + m


def _stop_accels(a0: np.ndarray, params: tuple[np.ndarray, ...], length: int) -> np.ndarray:
    """The accelerations `(length, m)` of the stopping plans (zero once at rest)."""
    k1, v1, r, m, b, _ = params
    k = np.arange(1, length + 1, dtype=float)[:, None]
    ramp = np.where(k <= k1, a0 * (1.0 - k / np.maximum(k1, 1.0)), 0.0)
    kk = k - k1
    rr = np.maximum(r, 1.0)
    shape = np.clip(np.minimum(kk / rr, (2.0 * r + m - kk) / rr), 0.0, 1.0)
    return ramp - np.sign(v1) * b * shape


class _Consts:
    """Per-joint constants of (tightened) limits, gathered for a set of columns at once."""

    def __init__(self, lim: JointLimits) -> None:
        n = lim.num_joints
        self.pdv = lim.position_dependent
        self.scale = lim.velocity_scale
        amax, jmax = lim.acceleration_max_rad_s2, lim.jerk_max_rad_s3
        dec = lim.deceleration_max_rad_s2 if self.pdv else np.ones(n)
        self.table = np.stack([
            lim.position_min_rad, lim.position_max_rad, lim.velocity_max_rad_s, amax, jmax,
            lim.hard_position_max_rad if self.pdv else np.zeros(n),
            lim.hard_position_min_rad if self.pdv else np.zeros(n),
            2.0 * dec, lim.velocity_offset_rad_s if self.pdv else np.zeros(n),
            # for quick_safe: the speed stage 1 can add, and distance = speed (speed e1 + e2)
            amax * amax / (2.0 * jmax), 1.0 / (2.0 * amax), 2.0 * amax / jmax + 1.5 * lim.dt_s,
            0.5 / dec])

    def quick_safe(self, k: np.ndarray, q0: np.ndarray, v0: np.ndarray) -> np.ndarray:
        """Cheap sufficient test for the stopping plan from (q0, v0, any |a0| <= a_max): its
        speed stays <= |v0| + a^2 / 2j and it travels at most speed (speed / 2a + 2a/j + 1.5h)
        (bounds on k1, r and m of `_stop_params`); inside the bounds with that speed = safe."""
        speed = np.abs(v0) + k[9]
        reach = speed * (speed * k[10] + k[11])
        lo, hi = k[0], k[1]
        if self.pdv:   # speed <= the position-dependent bound within (q_hard_max - room)
            room = (speed / self.scale + k[8]) ** 2 * k[12]
            lo, hi = np.maximum(lo, k[6] + room), np.minimum(hi, k[5] - room)
        return (q0 + reach <= hi) & (q0 - reach >= lo) & (speed <= k[2])

    def upper(self, k: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Highest allowed velocity at q for the gathered constants `k`."""
        if not self.pdv:
            return k[2]
        room = np.sqrt(np.maximum(0.0, k[7] * (k[5] - q)))
        return np.minimum(k[2], self.scale * np.maximum(0.0, room - k[8]))

    def lower(self, k: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Lowest allowed velocity at q for the gathered constants `k`."""
        if not self.pdv:
            return -k[2]
        room = np.sqrt(np.maximum(0.0, k[7] * (q - k[6])))
        return -np.minimum(k[2], self.scale * np.maximum(0.0, room - k[8]))


def _closed_form_check(c: _Consts, k: np.ndarray, q0: np.ndarray, v0: np.ndarray,
                       a0: np.ndarray, params: tuple[np.ndarray, ...], h: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(surely safe, surely unsafe) from the plans' exact sums; neither = simulate.

    Stage 1 (ramp a to 0) moves q0 -> q_mid, stage 2 (trapezoid) q_mid -> q_end, each with
    monotone velocity, except that stage 1 may bring v through 0 (then bounded by k1 h |v0|).
    In stage 2, |a| <= b gives |v| <= h b + sqrt(2 b d) at distance d before the stop point; the
    position-dependent bound is tested on intervals of d, worst end against worst end. The
    states (q0, v0), (q_mid, v1) and (q_end, 0) lie on the plan, so a limit broken there is
    surely broken.
    """
    k1, v1, r, m, b, _ = params
    q_mid = q0 + h * (k1 * v0 + h * a0 * (k1 * k1 - 1.0) / 3.0)
    q_end = q_mid + h * v1 * (r + m / 2.0 - 1.0)
    q_turn = q0 + np.where(v0 * v1 <= 0.0, h * k1 * v0, 0.0)
    lo3, hi3 = np.minimum(np.minimum(q0, q_mid), q_end), np.maximum(np.maximum(q0, q_mid), q_end)
    lo4, hi4 = np.minimum(lo3, q_turn), np.maximum(hi3, q_turn)
    pmin, pmax = k[0], k[1]
    unsafe = (lo3 < pmin) | (hi3 > pmax)
    pos_safe = (lo4 >= pmin) & (hi4 <= pmax)
    vhi_all, vlo_all = np.maximum(np.maximum(v0, v1), 0.0), np.minimum(np.minimum(v0, v1), 0.0)
    if not c.pdv:
        v_ok = (vhi_all <= k[2]) & (vlo_all >= -k[2])
        return pos_safe & v_ok, unsafe | ~v_ok
    safe = pos_safe & (vhi_all <= c.upper(k, hi4)) & (vlo_all >= c.lower(k, lo4)) & ~unsafe
    i = np.flatnonzero(~(safe | unsafe))
    if i.size:   # near the position-dependent bound: look closer
        k, v0, v1, b, q_mid, q_end = k[:, i], v0[i], v1[i], b[i], q_mid[i], q_end[i]
        q0, q_turn = q0[i], q_turn[i]
        bad = np.zeros(i.size, dtype=bool)
        for q, v in ((q0, v0), (q_mid, v1)):
            bad |= (v < c.lower(k, q)) | (v > c.upper(k, q))
        # stage 1: its velocities (between v0 and v1) against the worst position it reaches
        lo1 = np.minimum(np.minimum(q0, q_mid), q_turn)
        hi1 = np.maximum(np.maximum(q0, q_mid), q_turn)
        ok = (np.maximum(np.maximum(v0, v1), 0.0) <= c.upper(k, hi1))
        ok &= (np.minimum(np.minimum(v0, v1), 0.0) >= c.lower(k, lo1))
        # stage 2: |v| <= h b + sqrt(2 b d) at distance d before the stop point
        frac = (np.arange(_INTERVALS + 1) / _INTERVALS)[:, None] ** 2
        d = np.abs(q_end - q_mid) * frac
        speed = np.minimum(np.abs(v1), h * b + np.sqrt(2.0 * b * d[1:]))
        at = q_end - np.sign(v1) * d[:-1]
        allowed = np.where(v1 > 0, c.upper(k, at), -c.lower(k, at))
        ok &= ((speed <= allowed) | (v1 == 0)).all(axis=0)
        safe[i], unsafe[i] = ok & pos_safe[i] & ~bad, unsafe[i] | bad
    return safe, unsafe


class SafetyFilter:
    """Per-tick jerk-limited command filter with certified stopping plans (see the module doc).

    State `q, v, a` (n,) is the last command. `step(a_des)` advances one control period; `brake()`
    follows the stopping plans (a deceleration to rest within the limits).
    """

    def __init__(self, limits: JointLimits, q0_rad: np.ndarray) -> None:
        self.limits = limits
        lim = limits.tightened()
        q0 = np.array(q0_rad, dtype=float)
        # A start inside the margin (or outside the range) widens that bound to the start.
        self._lim = replace(lim, position_min_rad=np.minimum(lim.position_min_rad, q0),
                            position_max_rad=np.maximum(lim.position_max_rad, q0))
        self._c = self._lim._consts
        self._h = limits.dt_s
        n = limits.num_joints
        self.q, self.v, self.a = q0, np.zeros(n), np.zeros(n)
        self._plan = np.zeros((1, n))           # stored stopping plans (accelerations), 0-padded
        self._stored = np.zeros(n, dtype=bool)  # else the plan from the state itself is certified
        self.clamps = {'jerk': 0, 'acceleration': 0, 'stopping': 0, 'exact_checks': 0}
        self._resting = False   # at rest with every stopping plan done: brake() holds

    @property
    def at_rest(self) -> bool:
        return not (self.v.any() or self.a.any())

    def step(self, a_des: np.ndarray) -> None:
        """Advance one period towards the desired accelerations `a_des (n,)` (rad/s^2)."""
        self._resting = False
        table, h, a = self._c.table, self._h, self.a
        amax, jstep = table[3], table[4] * h
        box_lo = np.maximum(-amax, a - jstep)
        box_hi = np.minimum(amax, a + jstep)
        finite = np.isfinite(a_des)
        if not finite.all():
            a_des = np.where(finite, a_des, a)
        a_new = np.minimum(np.maximum(a_des, box_lo), box_hi)
        if (a_new != a_des).any():
            self.clamps['jerk'] += int((np.abs(a_des - a) > jstep).any())
            self.clamps['acceleration'] += int((np.abs(a_des) > amax).any())
        ok = self._certified(a_new, None) & finite
        if not ok.all():
            follow = np.flatnonzero(~ok)
            self.clamps['stopping'] += 1
            self._materialize(follow)
            a_bk = self._plan[0, follow]
            cands = np.stack([a_bk + f * (a_new[follow] - a_bk) for f in _BLENDS]
                             + [np.minimum(np.maximum(0.0, box_lo[follow]), box_hi[follow])])
            cand_ok = self._certified(cands.ravel(), np.tile(follow, len(cands)))
            cand_ok = cand_ok.reshape(cands.shape) & finite[follow]
            dist = np.where(cand_ok, np.abs(cands - a_new[follow]), np.inf)
            pick = np.argmin(dist, axis=0)
            cols = np.arange(follow.size)
            found = np.isfinite(dist[pick, cols])
            a_new[follow] = np.where(found, cands[pick, cols], a_bk)
            self._advance_plans(follow[~found])
            ok[follow[found]] = True
        self._stored &= ~ok
        self._integrate(a_new)

    def brake(self) -> None:
        """Advance one period along the certified stopping plans (decelerate to rest)."""
        if self._resting:
            return
        cols = np.arange(self.limits.num_joints)
        self._materialize(cols)
        a_new = self._plan[0].copy()
        self._advance_plans(cols)
        self._integrate(a_new)
        if not self._plan.any() and np.all(np.abs(self.v) < 1e-9) and not a_new.any():
            self.v[:] = 0.0   # rest reached up to float rounding of the plan's sums
            self._resting = True

    def _integrate(self, a_new: np.ndarray) -> None:
        self.a = a_new
        self.v = self.v + a_new * self._h
        self.q = self.q + self.v * self._h

    def _advance_plans(self, cols: np.ndarray) -> None:
        if cols.size:
            self._plan[:-1, cols] = self._plan[1:, cols]
            self._plan[-1, cols] = 0.0
            self._stored[cols] = True

    def _materialize(self, cols: np.ndarray) -> None:
        """Store the stopping plan of the current state for joints `cols` that hold none."""
        cols = cols[~self._stored[cols]]
        if not cols.size:
            return
        k, a0 = self._c.table[:, cols], self.a[cols]
        params = _stop_params(self.v[cols], a0, k[3], k[4], self._h)
        length = int(np.max(params[-1]))
        if length > len(self._plan):
            grown = np.zeros((length, self.limits.num_joints))
            grown[:len(self._plan)] = self._plan
            self._plan = grown
        self._plan[:, cols] = 0.0
        self._plan[:length, cols] = _stop_accels(a0, params, length)
        self._stored[cols] = True

    def _certified(self, a_new: np.ndarray, cols: np.ndarray | None) -> np.ndarray:
        """Whether `a_new (m,)` on joints `cols` (None: all) leads to a state with a stopping
        plan: closed form first, exact simulation where that cannot decide."""
        h = self._h
        if cols is None:
            k, q, v = self._c.table, self.q, self.v
        else:
            k, q, v = self._c.table[:, cols], self.q[cols], self.v[cols]
        v0 = v + a_new * h
        q0 = q + v0 * h
        quick = self._c.quick_safe(k, q0, v0)
        if quick.all():
            return quick
        params = _stop_params(v0, a_new, k[3], k[4], h)
        safe, unsafe = _closed_form_check(self._c, k, q0, v0, a_new, params, h)
        hard = np.flatnonzero(~(safe | unsafe))
        if hard.size:
            self.clamps['exact_checks'] += 1
            safe[hard] = self._simulate(q0[hard], v0[hard], a_new[hard],
                                        tuple(p[hard] for p in params), k[:, hard])
        return safe

    def _simulate(self, q0: np.ndarray, v0: np.ndarray, a0: np.ndarray,
                  params: tuple[np.ndarray, ...], k: np.ndarray) -> np.ndarray:
        """Exact check: roll the stopping plans out from `(q0, v0, a0)` and test every step."""
        h = self._h
        acc = _stop_accels(a0, params, int(np.max(params[-1])))
        vel = np.vstack([v0, v0 + h * np.cumsum(acc, axis=0)])
        pos = q0 + h * np.vstack([np.zeros_like(v0), np.cumsum(vel[1:], axis=0)])
        return np.all((pos >= k[0]) & (pos <= k[1]) & (vel >= self._c.lower(k, pos))
                      & (vel <= self._c.upper(k, pos)), axis=0)
