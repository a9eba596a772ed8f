"""TrajectoryFollower: JTC replacement semantics and C1 cubic Hermite interpolation."""

import numpy as np
import pytest

from vidplan_ros.sim.trajectory import TrajectoryError, TrajectoryFollower

NAMES = ('j1', 'j2', 'j3')
N = len(NAMES)


def _follower(**kw) -> TrajectoryFollower:
    return TrajectoryFollower(NAMES, np.zeros(N), **kw)


def _numeric_derivative(f, t, h=1e-6):
    return (f(t + h) - f(t - h)) / (2 * h)


def test_holds_initial_position_before_any_trajectory():
    fol = TrajectoryFollower(NAMES, np.array([0.1, -0.2, 0.3]))
    q, dq, acc = fol.sample(5.0)
    assert np.allclose(q, [0.1, -0.2, 0.3]) and not dq.any() and not acc.any()
    assert not fol.has_trajectory and fol.is_done(5.0)


@pytest.mark.parametrize('with_velocities', [True, False])
def test_hits_every_waypoint_at_its_time(with_velocities):
    fol = _follower()
    times = np.array([0.2, 0.5, 0.9, 1.4])
    pos = np.array([[0.1, 0.0, -0.1], [0.3, 0.2, -0.4], [0.2, 0.5, -0.2], [0.0, 0.6, 0.1]])
    vel = np.array([[0.5, 0.5, -1.0], [0.2, 0.8, 0.0], [-0.4, 0.3, 0.6], [0.0, 0.0, 0.0]])
    kept = fol.set_trajectory(10.0, times, pos, vel if with_velocities else None,
                              now_s=10.0, q_now=np.zeros(N), dq_now=np.zeros(N))
    assert kept == 4
    for t, p, v in zip(times, pos, vel):
        q, dq, _ = fol.sample(10.0 + t)
        assert np.allclose(q, p, atol=1e-12)
        if with_velocities:
            assert np.allclose(dq, v, atol=1e-9)
    assert fol.end_time_s == pytest.approx(11.4)


def test_starts_from_current_state_without_jump():
    fol = _follower()
    q_now, dq_now = np.array([0.3, -0.1, 0.2]), np.array([0.5, 0.0, -0.2])
    fol.set_trajectory(0.0, np.array([0.5]), np.ones((1, N)), None, now_s=2.0,
                       q_now=q_now, dq_now=dq_now)
    q, dq, _ = fol.sample(2.0)
    assert np.allclose(q, q_now) and np.allclose(dq, dq_now)
    q, dq, _ = fol.sample(2.5)  # the only point, velocity 0 at the end
    assert np.allclose(q, 1.0) and np.allclose(dq, 0.0)


def test_holds_last_point_after_the_end():
    fol = _follower()
    fol.set_trajectory(0.0, np.array([0.3, 0.6]), np.array([[0.1] * N, [0.4] * N]),
                       np.array([[0.5] * N, [0.2] * N]), now_s=0.0, q_now=np.zeros(N))
    for t in (0.6, 0.61, 3.0, 100.0):
        q, dq, acc = fol.sample(t)
        assert np.allclose(q, 0.4) and not dq.any() and not acc.any()
    assert fol.is_done(0.6) and not fol.is_done(0.59)


@pytest.mark.parametrize('from_desired', [False, True])
def test_replacement_mid_motion_is_continuous(from_desired):
    fol = _follower(interpolate_from_desired_state=from_desired)
    fol.set_trajectory(0.0, np.array([0.5, 1.0]), np.array([[0.5] * N, [1.0] * N]), None,
                       now_s=0.0, q_now=np.zeros(N))
    t_switch = 0.37
    q_before, dq_before, _ = fol.sample(t_switch)
    # The measured state lags the reference a little (tracking error).
    q_meas, dq_meas = q_before - 0.01, dq_before * 0.9
    fol.set_trajectory(0.0, np.array([0.4, 0.8]), np.array([[-0.2] * N, [0.3] * N]), None,
                       now_s=t_switch, q_now=q_meas, dq_now=dq_meas)
    q_after, dq_after, _ = fol.sample(t_switch)
    expected_q, expected_dq = (q_before, dq_before) if from_desired else (q_meas, dq_meas)
    assert np.allclose(q_after, expected_q, atol=1e-12)
    assert np.allclose(dq_after, expected_dq, atol=1e-12)
    # No jump just after the splice either: the reference moves at most |v| dt + O(dt^2).
    q_next, _, _ = fol.sample(t_switch + 1e-3)
    assert np.max(np.abs(q_next - q_after)) < 1e-2


def test_past_points_are_dropped():
    fol = _follower()
    # Stamped 1 s ago: the points at 0.2 s and 0.9 s from start are past, 1.5 s is 0.5 s ahead.
    times = np.array([0.2, 0.9, 1.5])
    pos = np.array([[9.0] * N, [9.0] * N, [0.7] * N])
    kept = fol.set_trajectory(4.0, times, pos, None, now_s=5.0, q_now=np.zeros(N))
    assert kept == 1
    t_knots, q_knots, _ = fol.knots()
    assert np.allclose(t_knots, [5.0, 5.5]) and np.allclose(q_knots[-1], 0.7)
    qs = np.array([fol.sample(t)[0] for t in np.linspace(5.0, 5.5, 51)])
    assert np.all(qs <= 0.7 + 1e-12)  # the dropped 9.0 waypoints never influence the path


def test_future_start_defers_points():
    fol = _follower()
    fol.set_trajectory(3.0, np.array([0.5]), np.ones((1, N)), None, now_s=1.0,
                       q_now=np.zeros(N))
    assert fol.end_time_s == pytest.approx(3.5)
    assert np.allclose(fol.sample(3.5)[0], 1.0)


def test_all_points_in_the_past_rejected_and_old_kept():
    fol = _follower()
    fol.set_trajectory(0.0, np.array([1.0]), np.ones((1, N)), None, now_s=0.0,
                       q_now=np.zeros(N))
    before = fol.knots()
    with pytest.raises(TrajectoryError, match='before now'):
        fol.set_trajectory(1.0, np.array([0.1, 0.2]), np.zeros((2, N)), None, now_s=2.0,
                           q_now=np.zeros(N))
    for a, b in zip(before, fol.knots()):
        assert np.array_equal(a, b)


def test_empty_trajectory_stops_and_holds_current_position():
    fol = _follower()
    fol.set_trajectory(0.0, np.array([1.0]), np.ones((1, N)), None, now_s=0.0,
                       q_now=np.zeros(N))
    q_now = fol.sample(0.4)[0]
    kept = fol.set_trajectory(0.0, np.zeros(0), np.zeros((0, N)), None, now_s=0.4,
                              q_now=q_now, dq_now=np.ones(N))
    assert kept == 0 and not fol.has_trajectory
    for t in (0.4, 0.5, 10.0):
        q, dq, _ = fol.sample(t)
        assert np.allclose(q, q_now) and not dq.any()


BAD_INPUTS = {
    'nan position': dict(positions=np.array([[0.1, np.nan, 0.0], [0.2, 0.2, 0.2]])),
    'inf velocity': dict(velocities=np.array([[0.0, 0.0, np.inf], [0.0, 0.0, 0.0]])),
    'nan time': dict(times_from_start_s=np.array([0.1, np.nan])),
    'equal times': dict(times_from_start_s=np.array([0.3, 0.3])),
    'decreasing times': dict(times_from_start_s=np.array([0.5, 0.3])),
    'negative time': dict(times_from_start_s=np.array([-0.1, 0.3])),
    'wrong joint count': dict(positions=np.zeros((2, N + 1))),
    'wrong point count': dict(positions=np.zeros((3, N))),
    'wrong velocity shape': dict(velocities=np.zeros((2, N - 1))),
    '2-D times': dict(times_from_start_s=np.array([[0.1, 0.3]])),
    'nan q_now': dict(q_now=np.array([0.0, np.nan, 0.0])),
    'short q_now': dict(q_now=np.zeros(N - 1)),
    'nan dq_now': dict(dq_now=np.array([np.nan, 0.0, 0.0])),
    'inf now': dict(now_s=float('inf')),
    'nan start': dict(start_time_s=float('nan')),
}


@pytest.mark.parametrize('case', sorted(BAD_INPUTS))
def test_bad_input_rejected_and_old_trajectory_kept(case):
    fol = _follower()
    fol.set_trajectory(0.0, np.array([0.5, 1.0]), np.array([[0.5] * N, [1.0] * N]), None,
                       now_s=0.0, q_now=np.zeros(N))
    before = fol.knots()
    samples = [fol.sample(t) for t in (0.1, 0.7, 2.0)]
    args = dict(start_time_s=0.0, times_from_start_s=np.array([0.1, 0.3]),
                positions=np.full((2, N), 0.2), velocities=np.zeros((2, N)), now_s=0.2,
                q_now=np.zeros(N), dq_now=np.zeros(N))
    args.update(BAD_INPUTS[case])
    with pytest.raises(ValueError):
        fol.set_trajectory(**args)
    for a, b in zip(before, fol.knots()):
        assert np.array_equal(a, b)
    for t, old in zip((0.1, 0.7, 2.0), samples):
        assert all(np.array_equal(x, y) for x, y in zip(fol.sample(t), old))


def test_bad_hold_q_rejected():
    with pytest.raises(TrajectoryError):
        TrajectoryFollower(NAMES, np.array([0.0, np.nan, 0.0]))
    with pytest.raises(TrajectoryError):
        TrajectoryFollower(NAMES, np.zeros(N + 1))


@pytest.mark.parametrize('seed', range(25))
def test_random_trajectories_are_c1_and_hit_waypoints(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    names = tuple(f'j{i}' for i in range(n))
    fol = TrajectoryFollower(names, rng.normal(size=n),
                             interpolate_from_desired_state=bool(rng.integers(2)))
    now = float(rng.uniform(0, 10))
    for _ in range(3):  # a few replacements mid-motion
        t_len = int(rng.integers(1, 10))
        times = np.cumsum(rng.uniform(0.02, 0.4, size=t_len))
        pos = rng.uniform(-2, 2, size=(t_len, n))
        vel = rng.uniform(-1, 1, size=(t_len, n)) if rng.integers(2) else None
        q_meas, dq_meas = fol.sample(now)[0] + rng.normal(0, 0.01, n), rng.normal(0, 0.1, n)
        q_ref_before, dq_ref_before, _ = fol.sample(now)
        start = now - float(rng.uniform(0, 0.3)) if rng.integers(2) else 0.0
        abs_t = (start if start > 0 else now) + times
        if not np.any(abs_t > now):
            with pytest.raises(TrajectoryError):
                fol.set_trajectory(start, times, pos, vel, now, q_meas, dq_meas)
            continue
        fol.set_trajectory(start, times, pos, vel, now, q_meas, dq_meas)
        q0, dq0, _ = fol.sample(now)
        if fol.interpolate_from_desired_state:
            assert np.allclose(q0, q_ref_before) and np.allclose(dq0, dq_ref_before)
        else:
            assert np.allclose(q0, q_meas) and np.allclose(dq0, dq_meas)
        # Every kept waypoint is hit at its time (with its velocity when given).
        for k in np.flatnonzero(abs_t > now + 1e-9):
            q, dq, _ = fol.sample(abs_t[k])
            assert np.allclose(q, pos[k], atol=1e-9)
            if vel is not None and k < t_len - 1:
                assert np.allclose(dq, vel[k], atol=1e-7)
        # C1: velocity is the derivative of position; both are continuous (also at knots).
        t_grid = np.linspace(now, fol.end_time_s, 60)[1:-1]
        for t in t_grid:
            dq_num = _numeric_derivative(lambda x: fol.sample(x)[0], t)
            assert np.allclose(fol.sample(t)[1], dq_num, atol=1e-4 * (1 + np.abs(dq_num)))
        knots_t = fol.knots()[0][1:-1]
        for t in knots_t:
            a, b = fol.sample(t - 1e-9), fol.sample(t + 1e-9)
            jump_bound = 2e-9 * (np.abs(a[2]) + np.abs(b[2])) + 1e-9  # |acc| dt
            assert np.allclose(a[0], b[0], atol=1e-6)
            assert np.all(np.abs(a[1] - b[1]) <= jump_bound)
        assert all(np.all(np.isfinite(x)) for x in fol.sample(now + 0.05))
        if vel is None:  # comes to rest at the end and holds
            q_end, dq_end, _ = fol.sample(fol.end_time_s)
            assert np.allclose(q_end, pos[-1]) and not dq_end.any()
            _, dq_pre, acc_pre = fol.sample(fol.end_time_s - 1e-7)
            assert np.all(np.abs(dq_pre) <= 1.1e-7 * np.abs(acc_pre) + 1e-12)
        now += float(rng.uniform(0.01, 0.5))


def test_position_only_interior_segments_do_not_overshoot():
    fol = _follower()
    times = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    pos = np.array([[0.0, 1.0, 0.0, 1.0, 0.0]] * N).T
    fol.set_trajectory(0.0, times, pos, None, now_s=0.0, q_now=np.zeros(N))
    qs = np.array([fol.sample(t)[0] for t in np.linspace(0.1, 0.5, 401)])
    assert qs.min() >= -1e-12 and qs.max() <= 1.0 + 1e-12
