"""Executor behaviours: timing, splicing, staleness, gates, e-stop, limits, preview."""

from pathlib import Path

import numpy as np
import pytest

from vidplan_ros.core.config import load_config
from vidplan_ros.core.errors import ConfigValueError
from vidplan_ros.core.executor import Executor, ExecutorConfig, GroundedPlan
from vidplan_ros.core.limits import limit_ratios
from vidplan_ros.core.robot_spec import load_robot_spec

CONFIG = Path(__file__).resolve().parents[2] / 'config' / 'executor.yaml'
DT = 0.001


def make(robot='franka_fr3', **overrides):
    spec = load_robot_spec(robot)
    ex = Executor(spec, ExecutorConfig(control_dt_s=DT, **overrides))
    q0 = np.array(spec.ready_pose_rad)
    ex.on_state(q0, np.zeros(len(q0)), 0.0)
    return ex, q0


def ramp_plan(q0, stamp, joint=0, speed=0.5, horizon=1.0, dt=0.05, residual=0.0, t_from=0.0):
    """Positions moving joint `joint` at `speed` rad/s from q0 at absolute time t_from."""
    times = np.arange(0.0, horizon, dt)
    pos = np.tile(q0, (len(times), 1))
    pos[:, joint] += speed * np.maximum(stamp + times - t_from, 0.0)
    return GroundedPlan(stamp, times, pos, None, residual, 1.0, 'test')


def run(ex, t0, t1, feed_state=True):
    cmds = []
    for t in np.arange(t0, t1, DT):
        if feed_state:
            ex.on_state(cmds[-1].q_rad if cmds else ex._filter.q, None, t)
        cmds.append(ex.step(t))
    return cmds


def qs(cmds):
    return np.array([c.q_rad for c in cmds])


def test_config_file_matches_defaults_and_bad_values_fail():
    assert load_config(ExecutorConfig, CONFIG, prefix='executor.') == ExecutorConfig()
    with pytest.raises(ConfigValueError, match='velocity_scale'):
        ExecutorConfig(velocity_scale=1.5)
    with pytest.raises(ConfigValueError, match='stale_plan_s'):
        ExecutorConfig(stale_plan_s=0.0)


def test_idle_before_state_then_first_command_is_measured_q_at_rest():
    spec = load_robot_spec('franka_fr3')
    ex = Executor(spec, ExecutorConfig(control_dt_s=DT))
    assert ex.step(0.0).mode == 'idle' and ex.preview(0.0, 0.1, 0.01)[1].shape == (0, 7)
    assert not ex.on_plan(ramp_plan(np.array(spec.ready_pose_rad), 0.0)).accepted
    q = np.array(spec.ready_pose_rad) + 0.01
    assert not ex.on_state(np.full(7, np.nan), None, 0.0)
    assert ex.on_state(q, None, 0.0)
    first = ex.step(0.001)
    assert np.array_equal(first.q_rad, q) and not first.dq_rad_s.any()
    assert first.mode == 'hold'


def test_tracks_a_plan_timed_from_its_stamp():
    ex, q0 = make(stale_plan_s=2.0)
    run(ex, 0.0, 0.01)
    stamp = 0.005   # made from an observation 5 ms before now
    assert ex.on_plan(ramp_plan(q0, stamp, speed=0.5, t_from=0.2, horizon=2.0)).accepted
    cmds = run(ex, 0.01, 1.0)
    t = np.arange(0.01, 1.0, DT)
    want = q0[0] + 0.5 * np.maximum(t - 0.2, 0.0)
    err = np.abs(qs(cmds)[:, 0] - want)
    assert err[t > 0.5].max() < 2e-3
    assert {c.mode for c in cmds} == {'track'}


def test_past_points_are_dropped():
    ex, q0 = make()
    run(ex, 0.0, 0.3)
    plan = ramp_plan(q0, 0.25, speed=0.0, dt=0.01)   # points at 0.25, 0.26, ... now is ~0.3
    assert ex.on_plan(plan).accepted
    assert ex.status()['counts']['points_dropped'] == 5
    assert ex._ref.times_s[0] == pytest.approx(0.299) and ex._ref.times_s[1] > 0.2995


def test_stale_plan_stops_within_stale_time_plus_two_periods():
    ex, q0 = make(stale_plan_s=0.2)
    assert ex.on_plan(ramp_plan(q0, 0.0, speed=0.8, horizon=3.0)).accepted
    cmds = run(ex, 0.001, 1.0)
    first = next(i for i, c in enumerate(cmds) if i and c.mode != 'track')
    assert cmds[first].stamp_s <= 0.2 + 2 * DT and cmds[first].reason == 'stale_plan'
    assert cmds[first].mode == 'decelerate' and cmds[-1].mode == 'hold'
    assert not cmds[-1].dq_rad_s.any() and max(limit_ratios(qs(cmds), ex.limits).values()) <= 1


def test_stale_observation_stops_and_drops_the_plan():
    ex, q0 = make(stale_observation_s=0.05)
    assert ex.on_plan(ramp_plan(q0, 0.0, speed=0.8, horizon=3.0)).accepted
    cmds = run(ex, 0.001, 0.2) + run(ex, 0.2, 0.8, feed_state=False)
    stop = next(c for c in cmds[1:] if c.mode != 'track')
    assert stop.reason == 'stale_observation' and stop.stamp_s <= 0.25 + 2 * DT
    assert cmds[-1].mode == 'hold' and not ex.status()['has_plan']
    assert max(limit_ratios(qs(cmds), ex.limits).values()) <= 1


def test_dynamics_residual_gate_rejects_and_keeps_the_current_plan():
    ex, q0 = make(max_dynamics_residual=0.1)
    good = ramp_plan(q0, 0.0, speed=0.3, horizon=2.0)
    assert ex.on_plan(good).accepted
    run(ex, 0.001, 0.1)
    bad = ramp_plan(q0, 0.09, speed=-0.3, horizon=2.0, residual=0.5)
    decision = ex.on_plan(bad)
    assert not decision.accepted and decision.reason == 'dynamics_residual'
    cmds = run(ex, 0.1, 0.3)
    assert cmds[-1].mode == 'track' and cmds[-1].q_rad[0] > q0[0] + 0.05
    assert ex.status()['rejected'] == {'dynamics_residual': 1}


def test_start_deviation_and_splice_velocity_rejects():
    ex, q0 = make()
    run(ex, 0.0, 0.05)
    far = q0.copy()
    far[2] += 0.5
    decision = ex.on_plan(ramp_plan(far, 0.04, speed=0.0))
    assert decision.reason == 'start_deviation'
    times = np.arange(0.0, 0.5, 0.05)
    pos = np.tile(q0, (len(times), 1))
    pos[:, 0] += 2.0 * (0.04 + times - 0.049)        # passes the command now, at 2 rad/s
    vel = np.zeros_like(pos)
    vel[:, 0] = 2.0
    fast = GroundedPlan(0.04, times, pos, vel, 0.0, 1.0, 'fast')
    assert ex.on_plan(fast).reason == 'splice_velocity'


def test_a_late_plan_is_checked_where_the_robot_was_at_its_stamp():
    """A plan made while the robot held still, starting where it was, that arrives 0.5 s
    later (a loaded live graph) moving at 0.9 rad/s, is by then 0.45 rad ahead of the command:
    accepted and blended in within the limits (checked now, it was refused, and the robot held
    on, so every later plan was refused too); a plan that did not start where the robot was at
    its stamp is still refused, even if it passes the command now."""
    ex, q0 = make()
    cmds = run(ex, 0.0, 0.8)
    late = ramp_plan(q0, 0.3, joint=3, speed=0.9, horizon=1.5, t_from=0.3)
    assert ex.on_plan(late).accepted
    cmds += run(ex, 0.8, 1.25)          # the plan goes stale at 1.3 s
    assert cmds[-1].mode == 'track' and cmds[-1].q_rad[3] - q0[3] > 0.3
    assert max(limit_ratios(qs(cmds), ex.limits).values()) <= 1
    ex, q0 = make()
    run(ex, 0.0, 0.8)
    elsewhere = ramp_plan(q0 - np.eye(7)[3] * 0.45, 0.3, joint=3, speed=0.9, horizon=1.5,
                          t_from=0.3)
    assert ex.on_plan(elsewhere).reason == 'start_deviation'    # passes q0 at 0.8 s


def test_a_robot_moved_away_from_the_command_is_not_pulled_back():
    """The robot jumps 0.5 rad away from the command (a sim reset, a hand): the plan is
    dropped, the command comes to rest within the limits, then restarts at the measured state
    (not pulled back) and a plan made from there is accepted; small tracking errors do not."""
    ex, q0 = make()
    assert ex.on_plan(ramp_plan(q0, 0.0, speed=0.3, horizon=3.0)).accepted
    cmds = []
    for t in np.arange(0.0, 0.5, DT):    # lagging 0.1 rad behind: tracked on
        ex.on_state(ex._filter.q - 0.1 * np.eye(7)[0], None, t)
        cmds.append(ex.step(t))
    assert cmds[-1].mode == 'track'
    moved = q0 + 0.5 * np.eye(7)[2]
    for t in np.arange(0.5, 1.5, DT):
        ex.on_state(moved, None, t)
        cmds.append(ex.step(t))
    reasons = [c.reason for c in cmds]
    stop = reasons.index('tracking_error')
    restart = reasons.index('resync')
    assert 500 <= stop < restart
    assert max(limit_ratios(qs(cmds[:restart]), ex.limits).values()) <= 1
    assert np.allclose(cmds[restart].q_rad, moved) and not cmds[restart].dq_rad_s.any()
    assert np.allclose(cmds[-1].q_rad, moved) and cmds[-1].mode == 'hold'
    assert ex.status()['counts']['resync'] == 1
    assert ex.on_plan(ramp_plan(moved, 1.49, speed=0.2)).accepted


def test_estop_decelerates_within_limits_and_latches():
    ex, q0 = make()
    assert ex.on_plan(ramp_plan(q0, 0.0, speed=1.0, horizon=2.0)).accepted
    cmds = run(ex, 0.001, 0.4)
    ex.set_estop(True)
    cmds += run(ex, 0.4, 1.0)
    assert {c.mode for c in cmds[399:]} == {'estop'} and not cmds[-1].dq_rad_s.any()
    assert not ex.on_plan(ramp_plan(cmds[-1].q_rad, 0.99, speed=0.1)).accepted
    ex.set_estop(False)
    cmds += run(ex, 1.0, 1.2)
    assert cmds[-1].mode == 'hold' and cmds[-1].reason == 'estop_released'
    assert np.array_equal(cmds[-1].q_rad, cmds[-200].q_rad)   # released: still holding
    assert ex.on_plan(ramp_plan(cmds[-1].q_rad, 1.19, speed=0.1, t_from=1.3)).accepted
    cmds += run(ex, 1.2, 1.5)
    assert cmds[-1].mode == 'track'
    assert max(limit_ratios(qs(cmds), ex.limits).values()) <= 1


def test_replans_splice_without_jumps():
    ex, q0 = make()
    rng = np.random.default_rng(0)
    cmds = []
    for k in range(20):
        t = k * 0.05
        plan = ramp_plan(q0 + rng.normal(0, 0.005, 7), t - 0.03, joint=k % 7,
                         speed=rng.uniform(-0.5, 0.5), t_from=t - 0.03)
        ex.on_plan(plan)
        cmds += run(ex, t, t + 0.05)
    q = qs(cmds)
    assert ex.status()['splices'] >= 15
    assert np.all(np.abs(np.diff(q, axis=0)) <= ex.limits.velocity_max_rad_s * DT + 1e-12)
    assert max(limit_ratios(q, ex.limits).values()) <= 1


def test_fr3_position_dependent_velocity_limit_near_the_limit():
    ex, q0 = make(velocity_scale=1.0, acceleration_scale=1.0, jerk_scale=1.0, stale_plan_s=3.0)
    target = q0.copy()
    target[1] = 1.78   # joint 2 towards its 1.7837 limit (margin band ends at 1.6837)
    times = np.array([0.0, 1.0])
    plan = GroundedPlan(0.0, times, np.vstack([q0, target]), np.zeros((2, 7)), 0.0, 1.0, 'push')
    assert ex.on_plan(plan).accepted
    cmds = run(ex, 0.001, 2.0)
    q = qs(cmds)
    v = np.diff(q[:, 1]) / DT
    assert q[-1, 1] == pytest.approx(1.6837, abs=1e-6) and cmds[-1].mode == 'hold'
    assert q[:, 1].max() <= 1.6837 + 1e-9
    assert max(limit_ratios(q, ex.limits).values()) <= 1
    _, vhi = ex.limits.velocity_bounds(q[1:])
    near = q[1:, 1] > 1.2
    assert np.all(v[near] <= vhi[near, 1] + 1e-9)
    assert v[near].max() < 2.62 * 0.9 and v.max() > 1.0   # the bound, not v_max, bit


def test_malformed_plans_are_rejected_with_reasons():
    ex, q0 = make()
    run(ex, 0.0, 0.01)
    t = np.array([0.0, 0.1])
    p = np.vstack([q0, q0])
    cases = {
        'malformed': GroundedPlan(0.0, t, p[:, :3], None, 0.0, 1.0, 'x'),
        'non_finite': GroundedPlan(0.0, t, np.where(p == p[0, 0], np.nan, p), None, 0, 1, 'x'),
        'times_not_increasing': GroundedPlan(0.0, t[::-1].copy(), p, None, 0.0, 1.0, 'x'),
        'future_stamp': GroundedPlan(5.0, t, p, None, 0.0, 1.0, 'x'),
        'stale': GroundedPlan(-5.0, t, p, None, 0.0, 1.0, 'x'),
        'expired': GroundedPlan(-0.2, t, p, None, 0.0, 1.0, 'x'),
        'out_of_limits': GroundedPlan(0.0, t, p + 10.0, None, 0.0, 1.0, 'x'),
        'horizon_too_long': GroundedPlan(0.0, np.array([0.0, 1e6]), p, None, 0.0, 1.0, 'x'),
        'velocity_out_of_limits': GroundedPlan(0.0, t, p, p * 0 + 9.0, 0.0, 1.0, 'x'),
    }
    for reason, plan in cases.items():
        assert ex.on_plan(plan).reason == reason
    assert sum(ex.status()['rejected'].values()) == len(cases)
    run(ex, 0.01, 0.2, feed_state=False)
    assert ex.on_plan(GroundedPlan(0.19, t, p, None, 0.0, 1.0, 'x')).reason == 'stale_observation'


def test_preview_is_what_step_will_do_and_within_limits():
    ex, q0 = make()
    assert ex.on_plan(ramp_plan(q0, 0.0, speed=0.6, horizon=2.0)).accepted
    run(ex, 0.001, 0.2, feed_state=False)
    times, q, dq = ex.preview(0.2, 0.3, 0.01)
    assert q.shape == (30, 7) and times[0] == pytest.approx(0.21)
    cmds = run(ex, 0.2 + DT, 0.5 + DT / 2, feed_state=False)
    assert np.allclose(qs(cmds)[9::10], q) and np.allclose(cmds[9].dq_rad_s, dq[0])
    assert ex.status()['counts']['mode_track'] > 0
