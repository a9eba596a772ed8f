"""Fuzz: 10,000 random and adversarial plans (5,000 per robot) never produce a bad command.

Every command the executor emits is checked for finiteness and, by backward differences at the
control period exactly as the Franka FCI checks them, for position (margined), velocity (with the
FR3 position-dependent bound), acceleration and jerk; every tick's |dq| <= v_max dt (no jump at
a splice). The gates that would keep adversarial plans away from the filter (start deviation,
splice velocity) are opened wide so that max-magnitude, sign-flipping and step plans reach it.
Also injected: NaN/Inf in every plan field, bad shapes and times, stale and future stamps,
single-point plans, observation dropouts and NaN states, e-stops, clock jitter and a NaN clock.
"""

import time
from dataclasses import replace

import numpy as np

from vidplan_ros.core.executor import MODES, Executor, ExecutorConfig, GroundedPlan
from vidplan_ros.core.limits import limit_ratios
from vidplan_ros.core.robot_spec import load_robot_spec

PLANS_PER_ROBOT = 5000
BAD = (np.nan, np.inf, -np.inf)


class Fuzzer:
    def __init__(self, robot, cfg, seed):
        self.spec = load_robot_spec(robot)
        self.ex = Executor(self.spec, cfg)
        self.rng = np.random.default_rng(seed)
        self.n = self.spec.num_joints
        self.dt = cfg.control_dt_s
        self.lo = np.array(self.spec.position_min_rad)
        self.hi = np.array(self.spec.position_max_rad)
        self.vmax = self.ex.limits.velocity_max_rad_s
        self.now = 0.0
        self.q = np.array(self.spec.ready_pose_rad)
        self.commands = []
        self.dropout_until = -1.0
        self.estop_until = -1.0
        self.accepted_ticks = []
        self.modes = set()
        self.emitted = []
        self.block_u, self.block_noise, self.block_i = np.zeros((0, 5)), None, 0

    # --- plans ----------------------------------------------------------------------------

    def plan(self):
        r, n = self.rng, self.n
        kind = r.choice(['nominal', 'nominal', 'max', 'flip', 'step', 'edge', 'single',
                         'poison', 'times', 'stamp', 'shape', 'residual', 'fast_vel'])
        latency = r.choice([0.0, r.uniform(0, 0.05), r.uniform(0, 0.6)])
        stamp = self.now - latency
        h = int(r.choice([1, 2, r.integers(3, 40)]))
        dt_plan = r.choice([0.01, 0.05, 0.1, r.uniform(0.002, 0.3)])
        times = np.arange(h) * dt_plan + r.choice([0.0, latency, r.uniform(0, 0.2)])
        base = self.q + r.normal(0, 0.01, n)
        pos = base + np.cumsum(r.normal(0, 0.1, (h, n)) * self.vmax * dt_plan, axis=0)
        vel = None if r.random() < 0.5 else r.normal(0, 0.3, (h, n)) * self.vmax
        residual, alignment = r.uniform(0, 0.09), r.uniform(0, 1)
        if kind == 'max':      # every joint at a hard limit, flipping sides
            pos = np.where(r.random((h, n)) < 0.5, self.lo, self.hi)
            pos[0] = base
        elif kind == 'flip':   # sign flips around the current command at max amplitude
            sign = np.where(np.arange(h) % 2 == 0, 1.0, -1.0)[:, None]
            pos = np.clip(base + sign * r.uniform(0.1, 3.0), self.lo, self.hi)
        elif kind == 'step':   # a step to a random pose one plan point from now
            pos = np.tile(self.lo + (self.hi - self.lo) * r.random(n), (h, 1))
            pos[0] = base
        elif kind == 'edge':   # targets just inside / just outside the hard limits
            side = np.where(r.random(n) < 0.5, self.lo, self.hi)
            pos = np.tile(side + r.choice([-1, 1]) * r.uniform(0, 0.02, n), (h, 1))
        elif kind == 'single':
            times = times[:1] + r.choice([-0.5, 0.0, 0.01, 0.5])
            pos, vel = pos[:1], None if vel is None else vel[:1]
        elif kind == 'poison':  # NaN / Inf in one field
            field = r.choice(['stamp', 'times', 'pos', 'vel', 'residual', 'alignment'])
            bad = r.choice(BAD)
            if field == 'stamp':
                stamp = bad
            elif field == 'times':
                times = times.copy()
                times[r.integers(h)] = bad
            elif field == 'pos':
                pos[r.integers(h), r.integers(n)] = bad
            elif field == 'vel':
                vel = np.zeros((h, n))
                vel[r.integers(h), r.integers(n)] = bad
            elif field == 'residual':
                residual = bad
            else:
                alignment = bad
        elif kind == 'times':
            times = r.choice([times[::-1].copy(), np.zeros(h), times * 1e9, times - 1e3,
                              times + r.normal(0, 0.05, h), np.arange(h) * 1e-9])
        elif kind == 'stamp':
            stamp = self.now + r.choice([-1e6, -5.0, 0.01, 5.0, 1e9])
        elif kind == 'shape':
            choice = r.integers(5)
            if choice == 0:
                pos = pos[:, :-1]
            elif choice == 1:
                pos, times = pos[:0], times[:0]
            elif choice == 2:
                vel = np.zeros((h + 1, n))
            elif choice == 3:
                pos = pos[:, 0]
            else:
                times = np.arange(10001) * 1e-3
                pos = np.tile(base, (10001, 1))
                vel = None
        elif kind == 'residual':
            residual = r.choice([0.2, 1e3])
        elif kind == 'fast_vel':
            vel = r.choice([-1, 1], (h, n)) * np.array(self.spec.velocity_max_rad_s)
            vel *= r.choice([1.0, 1e6])   # at the robot's limit (accepted) or absurd
        return GroundedPlan(stamp, times, pos, vel, residual, alignment, kind)

    # --- the loop ---------------------------------------------------------------------------

    def draws(self):
        """Per-tick random numbers, drawn in blocks (the loop is the test's cost)."""
        if self.block_i >= len(self.block_u):
            self.block_u = self.rng.random((4096, 5))
            self.block_noise = self.rng.normal(0, 1e-4, (4096, self.n))
            self.block_i = 0
        self.block_i += 1
        return self.block_u[self.block_i - 1], self.block_noise[self.block_i - 1]

    def tick(self):
        ex = self.ex
        u, noise = self.draws()
        self.now += self.dt
        if self.now < self.dropout_until:
            pass
        elif u[0] < 0.0005:
            self.dropout_until = self.now + 0.3 * u[1]
        elif u[0] < 0.0025:
            ex.on_state(np.full(self.n, BAD[int(u[1] * 3)]), None, self.now)
        else:
            ex.on_state(self.q + noise, None, self.now - 0.005 * u[1])
        if self.estop_until > 0 and self.now >= self.estop_until:
            ex.set_estop(False)
            self.estop_until = -1.0
        clock = self.now + (u[2] - 0.5) * 0.6 * self.dt
        if u[3] < 1e-4:
            clock = np.nan if u[4] < 0.5 else self.now - 1.0
        cmd = ex.step(clock)
        self.modes.add(cmd.mode)
        self.emitted.append((cmd.q_rad, cmd.dq_rad_s, cmd.ddq_rad_s2, cmd.stamp_s))
        if cmd.mode != 'idle':
            self.commands.append(cmd.q_rad)
            self.q = cmd.q_rad

    def run(self, plans):
        r = self.rng
        decisions = {}
        for _ in range(plans):
            for _ in range(int(r.choice([0, 1, r.integers(2, 10), r.integers(10, 40)]))):
                self.tick()
            if r.random() < 0.002 and self.estop_until < 0:
                self.ex.set_estop(True)
                self.estop_until = self.now + r.uniform(0, 0.2)
            decision = self.ex.on_plan(self.plan())
            decisions[decision.reason] = decisions.get(decision.reason, 0) + 1
            if decision.accepted:
                self.accepted_ticks.append(len(self.commands))
            if r.random() < 0.003 and len(self.commands) > 3:
                self.check_preview(int(r.choice([1, 5, 10])))
        for _ in range(300):
            self.tick()
        return decisions

    def check_preview(self, every):
        times, q, dq = self.ex.preview(self.now, 0.1, every * self.dt)
        assert np.all(np.isfinite(q)) and np.all(np.isfinite(dq)) and len(times)
        history = np.array(self.commands[-1 - 2 * every::every])
        if len(history) == 3:
            # At a coarser period the differences are averages of the fine ones: within the
            # box limits; the position-dependent bound holds per control period (every = 1).
            lim = self.ex.limits
            if every > 1:
                lim = replace(lim, dt_s=every * self.dt, velocity_offset_rad_s=np.zeros(0),
                              deceleration_max_rad_s2=np.zeros(0))
            assert max(limit_ratios(q, lim, history).values()) <= 1.0


def fuzz(robot, cfg, seed):
    start = time.perf_counter()
    f = Fuzzer(robot, cfg, seed)
    decisions = f.run(PLANS_PER_ROBOT)
    assert f.modes <= set(MODES)
    for i, values in enumerate(zip(*f.emitted)):
        assert np.all(np.isfinite(np.array(values))), ('q', 'dq', 'ddq', 'stamp')[i]
    q = np.array(f.commands)
    ratios = limit_ratios(q, f.ex.limits)
    jumps = np.abs(np.diff(q, axis=0)) / (f.vmax * cfg.control_dt_s)
    splice = jumps[np.clip(np.array(f.accepted_ticks) - 1, 0, len(jumps) - 1)]
    seconds = time.perf_counter() - start
    print(f'\n{robot}: {PLANS_PER_ROBOT} plans, {len(q)} commands in {seconds:.1f} s; '
          f'peak ratios {ratios}; peak |dq| / (v_max dt) {jumps.max():.3f} '
          f'(at splices {splice.max():.3f}); decisions {decisions}; '
          f'status {f.ex.status()["clamps"]}')
    assert max(ratios.values()) <= 1.0, ratios
    assert jumps.max() <= 1.0
    assert decisions.get('accepted', 0) > PLANS_PER_ROBOT // 5
    expected = {'non_finite', 'malformed', 'times_not_increasing', 'stale', 'future_stamp',
                'dynamics_residual', 'out_of_limits', 'expired', 'horizon_too_long',
                'velocity_out_of_limits', 'estop'}
    assert expected <= set(decisions), decisions
    assert ratios['position'] > 0.95 and ratios['jerk'] > 0.95   # the limits were reached
    return ratios


def test_fuzz_franka_fr3_at_full_robot_limits_1khz():
    cfg = ExecutorConfig(control_dt_s=0.001, velocity_scale=1.0, acceleration_scale=1.0,
                         jerk_scale=1.0, max_start_deviation_rad=10.0,
                         max_splice_velocity_change_rad_s=1e3)
    fuzz('franka_fr3', cfg, seed=1)


def test_fuzz_unitree_g1_default_scales_500hz():
    cfg = ExecutorConfig(control_dt_s=0.002, max_start_deviation_rad=10.0,
                         max_splice_velocity_change_rad_s=1e3)
    fuzz('unitree_g1', cfg, seed=2)
