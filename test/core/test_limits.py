"""Joint limits as the controller checks them, and the safety filter's guarantee."""

import numpy as np
import pytest

from vidplan_ros.core import limits as lm
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.limits import SafetyFilter, joint_limits_from_spec, limit_ratios
from vidplan_ros.core.robot_spec import load_robot_spec

CASES = [('franka_fr3', 0.001), ('unitree_g1', 0.002)]


def _limits(name, dt, scale=0.5):
    spec = load_robot_spec(name)
    return spec, joint_limits_from_spec(spec, dt, scale, scale, scale)


def test_limits_scale_the_spec_and_pull_positions_in_by_the_margin():
    spec, lim = _limits('franka_fr3', 0.001)
    assert np.allclose(lim.position_max_rad, np.array(spec.position_max_rad) - 0.1)
    assert np.allclose(lim.velocity_max_rad_s, 0.5 * np.array(spec.velocity_max_rad_s))
    assert lim.jerk_max_rad_s3[0] == 2500.0 and lim.position_dependent
    assert not _limits('unitree_g1', 0.002)[1].position_dependent
    with pytest.raises(VidplanError, match='position_margin_rad'):
        joint_limits_from_spec(spec, 0.001, position_margin_rad=2.0)


def test_fr3_position_dependent_velocity_matches_the_franka_formula():
    spec, lim = _limits('franka_fr3', 0.001, scale=1.0)
    j = 1   # joint 2: q_max 1.7837, offset 0.2517, dec 2.585
    for q in (0.0, 1.0, 1.5, 1.7, 1.78):
        q_all = np.array(spec.ready_pose_rad)
        q_all[j] = q
        lo, hi = lim.velocity_bounds(q_all)
        want = min(2.62, max(0.0, -0.2517 + np.sqrt(max(0.0, 2 * 2.585 * (1.7837 - q)))))
        assert hi[j] == pytest.approx(want)
        want_lo = max(-2.62, min(0.0, 0.2517 - np.sqrt(max(0.0, 2 * 2.585 * (q + 1.7837)))))
        assert lo[j] == pytest.approx(want_lo)


def test_limit_ratios_measure_backward_differences():
    _, lim = _limits('unitree_g1', 0.002)
    n = lim.num_joints
    t = np.arange(500)[:, None] * lim.dt_s
    smooth = 0.1 * (1 - np.cos(2 * t)) ** 2 * np.ones(n)   # starts at rest
    ratios = limit_ratios(smooth, lim)
    assert all(r < 1 for r in ratios.values())
    step = smooth.copy()
    step[250:] += 0.01
    assert limit_ratios(step, lim)['jerk'] > 1


@pytest.mark.parametrize('name,dt', CASES)
def test_closed_form_checks_agree_with_simulating_the_stopping_plan(name, dt):
    spec, lim = _limits(name, dt)
    tight = lim.tightened()
    rng = np.random.default_rng(3)
    m = 4000
    cols = rng.integers(0, lim.num_joints, m)
    lo, hi = tight.position_min_rad[cols], tight.position_max_rad[cols]
    q0 = lo + (hi - lo) * rng.uniform(-0.02, 1.02, m)
    v0 = tight.velocity_max_rad_s[cols] * rng.uniform(-1.05, 1.05, m) * rng.choice(
        [1, 0.1, 0.01], m)
    a0 = tight.acceleration_max_rad_s2[cols] * rng.uniform(-1, 1, m) * rng.choice([1, 0.1, 0], m)
    params = lm._stop_params(v0, a0, tight.acceleration_max_rad_s2[cols],
                             tight.jerk_max_rad_s3[cols], dt)
    f = SafetyFilter(lim, np.array(spec.ready_pose_rad))
    k = f._c.table[:, cols]
    exact = f._simulate(q0, v0, a0, params, k)
    safe, unsafe = lm._closed_form_check(f._c, k, q0, v0, a0, params, dt)
    assert not np.any(safe & ~exact), 'closed form called an unsafe state safe'
    quick = f._c.quick_safe(k, q0, v0)
    assert not np.any(quick & ~exact), 'the quick test called an unsafe state safe'
    assert quick.mean() > 0.2
    assert not np.any(unsafe & exact), 'closed form called a safe state unsafe'
    assert 0.1 < exact.mean() < 0.99


def test_stopping_plan_comes_to_rest_within_the_jerk_and_acceleration_limits():
    _, lim = _limits('unitree_g1', 0.002)
    rng = np.random.default_rng(4)
    v0 = rng.uniform(-1, 1, 17) * lim.velocity_max_rad_s
    a0 = rng.uniform(-1, 1, 17) * lim.acceleration_max_rad_s2
    params = lm._stop_params(v0, a0, lim.acceleration_max_rad_s2, lim.jerk_max_rad_s3, 0.002)
    acc = lm._stop_accels(a0, params, int(params[-1].max()) + 5)
    jerk = np.diff(np.vstack([a0, acc]), axis=0) / 0.002
    assert np.all(np.abs(jerk) <= lim.jerk_max_rad_s3 * (1 + 1e-9))
    assert np.all(np.abs(acc) <= lim.acceleration_max_rad_s2 * (1 + 1e-9))
    assert np.allclose(v0 + 0.002 * acc.sum(0), 0, atol=1e-12) and not acc[-1].any()


@pytest.mark.parametrize('name,dt', CASES)
def test_filter_stays_within_limits_under_bang_bang_demands(name, dt):
    spec, lim = _limits(name, dt)
    rng = np.random.default_rng(5)
    f = SafetyFilter(lim, np.array(spec.ready_pose_rad))
    qs = [f.q]
    for k in range(3000):
        if k % 1000 > 900:
            f.brake()
        else:
            sign = 1.0 if (k // 300) % 2 else -1.0
            demand = sign * 1e4 * np.ones(lim.num_joints)
            if k % 7 == 0:
                demand = rng.choice([-1e4, 1e4, np.nan, np.inf], lim.num_joints)
            f.step(demand)
        assert np.all(np.isfinite(f.q))
        qs.append(f.q)
    ratios = limit_ratios(np.array(qs), lim)
    assert max(ratios.values()) <= 1.0, ratios
    assert ratios['position'] > 0.8 and ratios['velocity'] > 0.2


def test_brake_comes_to_rest_and_holds():
    spec, lim = _limits('franka_fr3', 0.001)
    f = SafetyFilter(lim, np.array(spec.ready_pose_rad))
    for _ in range(300):
        f.step(np.full(7, 5.0))
    assert np.all(f.v > 0.5)
    qs = [f.q]
    for _ in range(1000):
        f.brake()
        qs.append(f.q)
    assert f.at_rest and np.all(np.array(qs[-10:]) == qs[-1])


def test_start_inside_the_margin_never_goes_further_out():
    spec, lim = _limits('franka_fr3', 0.001)
    q0 = np.array(spec.ready_pose_rad)
    q0[0] = spec.position_max_rad[0] - 0.05     # inside the 0.1 rad margin
    f = SafetyFilter(lim, q0)
    qs = []
    for _ in range(500):
        f.step(np.full(7, 10.0))
        qs.append(f.q[0])
    assert max(qs) <= q0[0] + 1e-9
