"""SimEnv control: tracking with the default gains, command validation, effort limits, gripper."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('mujoco')

from vidplan_ros.sim.env import SimConfig, SimEnv  # noqa: E402
from vidplan_ros.sim.scene import warning_counts  # noqa: E402

FRANKA_TCP_READY_M = (0.3069, 0.0, 0.4869)     # robots.md 1.6 (derived)


@pytest.fixture(scope='module')
def franka():
    env = SimEnv(SimConfig(image_width=32, image_height=32))
    yield env
    env.close()


@pytest.fixture(scope='module')
def g1():
    env = SimEnv(SimConfig(robot='unitree_g1', task='g1/reach', image_width=32,
                           image_height=32))
    yield env
    env.close()


def track_sine(env: SimEnv, omega_rad_s: float, amplitude_rad: float, duration_s: float,
               **gains: np.ndarray) -> np.ndarray:
    """Feed q_des/dq_des of a sine on every joint around the ready pose each physics step;
    return the per-joint RMS error (rad) after the first 0.25 s."""
    env.reset(0)
    q0, errors = env.q(), []
    for _ in range(int(round(duration_s / env.physics_dt_s))):
        t = env.time_s
        env.set_joint_command(q0 + amplitude_rad * np.sin(omega_rad_s * t),
                              np.full(len(q0), amplitude_rad * omega_rad_s *
                                      np.cos(omega_rad_s * t)), **gains)
        env.step()
        if env.time_s > 0.25:
            errors.append(env.q() - (q0 + amplitude_rad * np.sin(omega_rad_s * env.time_s)))
    assert warning_counts(env.data) == {}
    return np.sqrt(np.mean(np.square(errors), axis=0))


@pytest.mark.parametrize('omega, amplitude', [(1.0, 0.3), (4.0, 0.25)])
def test_franka_tracks_a_sine_within_1_mrad_rms(franka, omega, amplitude):
    # (1 rad/s frequency) and (1 rad/s peak velocity, 4 rad/s^2 peak acceleration)
    rms = track_sine(franka, omega, amplitude, duration_s=1.5)
    assert np.sqrt(np.mean(rms ** 2)) <= 1e-3, rms
    assert np.all(rms <= 1.5e-3), rms


def test_g1_tracks_reasonably_with_its_spec_gains(g1):
    # Plain PD without gravity compensation, like the real motors: the error is mostly sag.
    np.testing.assert_array_equal(g1.default_kp, g1.spec.kp)
    rms = track_sine(g1, 1.0, 0.3, duration_s=1.5)
    assert np.sqrt(np.mean(rms ** 2)) <= 0.03, rms


def test_reset_state_and_shapes(franka):
    franka.reset(1)
    n = len(franka.spec.joint_names)
    assert franka.joint_names == franka.spec.joint_names
    assert franka.time_s == 0.0
    np.testing.assert_allclose(franka.q(), franka.spec.ready_pose_rad)
    assert franka.q().shape == franka.dq().shape == franka.effort().shape == (n,)
    # the task decides the fingers at reset (reach / push: closed, as the experts push)
    width = franka.task.gripper_width_m
    np.testing.assert_allclose(franka.gripper_width(), franka.spec.gripper.width_max_m
                               if width is None else width, atol=1e-6)
    franka.step(5)
    assert franka.time_s == pytest.approx(5 * 0.002)
    pose = franka.tcp_pose()
    np.testing.assert_allclose(pose[:3, 3], FRANKA_TCP_READY_M, atol=1e-3)
    np.testing.assert_allclose(pose[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-3)  # down
    np.testing.assert_allclose(franka.tcp_pose('fr3_link0'), np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match='no link'):
        franka.tcp_pose('nope')


def test_franka_holds_the_ready_pose_under_gravity(franka):
    franka.reset(2)
    franka.step(500)
    assert np.max(np.abs(franka.q() - franka.spec.ready_pose_rad)) < 1e-4
    assert np.abs(franka.effort()[1]) > 1.0               # the shoulder carries the arm


@pytest.mark.parametrize('field', ['q_des', 'dq_des', 'kp', 'kd', 'tau_ff'])
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_commands_are_rejected_and_change_nothing(franka, field, bad):
    franka.reset(0)
    q_hold = franka.q() + 0.05
    franka.set_joint_command(q_hold)
    values = {'q_des': q_hold.copy(), 'dq_des': np.zeros(7), 'kp': franka.default_kp.copy(),
              'kd': franka.default_kd.copy(), 'tau_ff': np.zeros(7)}
    values[field][3] = bad
    with pytest.raises(ValueError, match='finite'):
        franka.set_joint_command(**values)
    franka.step(300)
    assert np.all(np.isfinite(franka.data.qpos))
    assert np.max(np.abs(franka.q() - q_hold)) < 1e-3     # the previous command still holds


def test_malformed_commands_are_rejected(franka):
    franka.reset(0)
    with pytest.raises(ValueError, match='shape'):
        franka.set_joint_command(np.zeros(6))
    with pytest.raises(ValueError, match='shape'):
        franka.set_joint_command(franka.q(), dq_des=np.zeros((7, 1)))
    with pytest.raises(ValueError, match='>= 0'):
        franka.set_joint_command(franka.q(), kp=-franka.default_kp)
    with pytest.raises(ValueError, match='numbers'):
        franka.set_joint_command(['a'] * 7)


@pytest.mark.parametrize('env_name', ['franka', 'g1'])
def test_effort_is_clipped_to_the_spec_limits(request, env_name):
    env = request.getfixturevalue(env_name)
    env.reset(0)
    limit = np.array(env.spec.effort_max_nm)
    lo, hi = np.array(env.spec.position_min_rad), np.array(env.spec.position_max_rad)
    env.set_joint_command(np.clip(env.q() + 1.0, lo, hi), tau_ff=np.full(len(limit), 1e4))
    env.step(1)
    np.testing.assert_allclose(env.effort(), limit)       # saturated at +limit on every joint
    np.testing.assert_allclose(env.data.actuator_force[:len(limit)], limit)
    for _ in range(20):
        env.step(5)
        assert np.all(np.abs(env.effort()) <= limit + 1e-9)


def test_gripper_opens_and_closes_at_its_speed(franka):
    franka.reset(0)
    width_max = franka.spec.gripper.width_max_m
    speed = franka.spec.gripper.speed_max_m_s
    franka.set_gripper_width(width_max)
    franka.step(500)
    assert franka.gripper_width() == pytest.approx(width_max, abs=1e-3)
    franka.set_gripper_width(0.0)
    franka.step(50)                                        # 0.1 s
    moved = width_max - franka.gripper_width()
    assert 0.5 * speed * 0.1 < moved <= speed * 0.1 + 2e-3
    franka.step(500)
    assert franka.gripper_width() < 1e-3
    finger1, finger2 = franka.data.qpos[franka._finger_qadr]
    assert abs(finger1 - finger2) < 1e-3                   # the mimic keeps them together
    franka.set_gripper_width(0.05)
    franka.step(500)
    assert franka.gripper_width() == pytest.approx(0.05, abs=1e-3)
    for bad in (-0.01, 0.09, float('nan')):
        with pytest.raises(ValueError):
            franka.set_gripper_width(bad)


def test_g1_has_no_gripper(g1):
    assert g1.gripper_width() == 0.0
    with pytest.raises(ValueError, match='no gripper'):
        g1.set_gripper_width(0.02)


def test_close_then_render_reopens(franka):
    franka.render('front')
    franka.close()
    franka.close()                                         # idempotent
    assert franka.render('wrist').shape == (32, 32, 3)


def test_bench_functions_run_small():
    from vidplan_ros.sim.bench import bench_physics, bench_render, to_markdown
    physics = bench_physics(steps=20, repeats=1)
    assert set(physics) == {'franka/reach', 'franka/push', 'g1/reach'}
    assert all(r['env_steps_per_s'] > 0 and r['mj_steps_per_s'] > 0 for r in physics.values())
    frames = bench_render(sizes=(16,), frames=2, repeats=1)
    assert frames['franka_fr3']['wrist']['16x16'] > 0
    table = to_markdown({'physics': physics, 'render': {'egl': frames}})
    assert '| franka_fr3 | wrist |' in table


@pytest.mark.parametrize('robot,task', [('franka_fr3', 'franka/push'), ('unitree_g1', 'g1/reach')])
def test_a_copy_takes_the_episode_with_its_task_and_then_runs_on_its_own(robot, task):
    """copy_state_from copies what the episode drew outside MjData too (target, goal, arm):
    an expert acting in the copy works on the episode's task, not the copy's last reset."""
    cfg = SimConfig(robot=robot, task=task, cameras=('front',), image_width=32,
                    image_height=32)
    a, b = SimEnv(cfg), SimEnv(cfg)
    try:
        a.reset(20007)
        a.step(25)
        b.reset(3)
        b.copy_state_from(a)
        sa, sb = a.task_state(), b.task_state()
        assert type(sa) is type(sb)
        for field in vars(sa):
            va, vb = getattr(sa, field), getattr(sb, field)
            if isinstance(va, np.ndarray):
                np.testing.assert_array_equal(va, vb, err_msg=field)
            else:
                assert va == vb, field
        np.testing.assert_array_equal(a.q(), b.q())
        np.testing.assert_array_equal(a.render('front'), b.render('front'))
        b.step(50)                       # the copy moves on; the original does not
        assert b.time_s > a.time_s
        assert a.task_state().tip_pos_m.tolist() == sa.tip_pos_m.tolist()
    finally:
        a.close()
        b.close()
