"""Scripted experts: they solve their tasks in the sim, in the planner's action form, in limits.

The 100-seed success rates are measured with `python -m vidplan_ros.sim.rollout` (slow); here a
few seeds per task keep the suite quick on a busy machine.
"""

import numpy as np
import pytest

from vidplan_ros.core.errors import ConfigValueError
from vidplan_ros.sim.env import SimConfig, SimEnv
from vidplan_ros.sim.expert_paths import (ToolIK, cartesian_line, cruise_stop, joint_move,
                                          min_jerk)
from vidplan_ros.sim.experts import EXPERTS, ExpertAction, ExpertConfig, make_expert
from vidplan_ros.sim.rollout import evaluate_expert, main, run_episode
from vidplan_ros.sim.tasks import TASKS, task_robot

CASES = [('franka/reach', (0, 1, 2)), ('franka/push', (0, 38)), ('g1/reach', (0, 1, 2))]


@pytest.fixture(scope='module', params=[c[0] for c in CASES])
def env(request):
    task = request.param
    with SimEnv(SimConfig(robot=task_robot(task), task=task)) as e:
        yield e


def test_every_task_has_an_expert():
    assert set(TASKS) <= set(EXPERTS)
    with pytest.raises(ValueError, match='no scripted expert'):
        make_expert('franka/juggle', SimEnv(SimConfig()).spec)


def test_experts_succeed_with_chunks_in_limits(env):
    task = env.cfg.task
    seeds = dict(CASES)[task]
    spec = env.spec
    expert = make_expert(task, spec)
    lo, hi = np.array(spec.position_min_rad), np.array(spec.position_max_rad)
    vmax = np.array(spec.velocity_max_rad_s)
    seen: list[tuple[float, ExpertAction]] = []
    peak_dq = np.zeros(spec.num_joints)

    def on_step(e, t, action):
        nonlocal peak_dq
        seen.append((t, action))
        peak_dq = np.maximum(peak_dq, np.abs(e.dq()))

    for seed in seeds:
        seen.clear()
        res = run_episode(env, expert, seed, on_step=on_step)
        assert res.success, f'{task} seed {seed}: {res}'
        assert res.success_at_end and res.rejected_actions == 0
        assert res.num_actions == len(seen)
        # Called at the plan rate (10 Hz), with the time the chunk was made at.
        times = np.array([t for t, _ in seen])
        assert np.allclose(np.diff(times), 0.1, atol=1e-9)
        for t, a in seen:
            assert a.stamp_s == t
            assert a.positions.shape == (len(a.times_from_start_s), spec.num_joints)
            assert np.all(np.isfinite(a.positions))
            assert a.times_from_start_s[0] > 0 and np.all(np.diff(a.times_from_start_s) > 0)
            margin = spec.position_margin_rad - 1e-9
            assert np.all(a.positions >= lo + margin) and np.all(a.positions <= hi - margin)
            speeds = np.abs(np.diff(a.positions, axis=0)) / np.diff(a.times_from_start_s)[:, None]
            assert np.all(speeds <= 0.5 * vmax)
            if spec.gripper.width_max_m > 0:
                assert a.gripper_width_m is not None
    # The arm really moves slowly: measured joint speeds well inside the limits.
    assert np.all(peak_dq <= 0.6 * vmax), peak_dq / vmax


def test_g1_expert_moves_only_the_target_arm():
    task = 'g1/reach'
    with SimEnv(SimConfig(robot='unitree_g1', task=task)) as e:
        expert = make_expert(task, e.spec)
        for seed in (0, 1, 2, 3):
            e.reset(seed)
            ts = e.task_state()
            expert.reset(ts, e.q())
            other = 'right' if ts.side == 'left' else 'left'
            still = [i for i, j in enumerate(e.joint_names) if j.startswith(other)]
            assert len(still) == 7
            a = expert.act(0.0, e.q(), ts)
            for _ in range(15):
                a = expert.act(a.stamp_s + 0.1, e.q(), ts)
                assert np.allclose(a.positions[:, still], e.q()[still])


def test_evaluate_expert_reports_success_rate():
    out = evaluate_expert(None, 'franka/reach', [4, 5], progress=False)
    assert out['robot'] == 'franka_fr3' and out['episodes'] == 2
    assert out['success_rate'] == 1.0 and out['failed_seeds'] == []
    assert 0 < out['mean_time_to_success_s'] < 10
    assert [r['seed'] for r in out['results']] == [4, 5]


def test_rollout_cli(capsys):
    assert main(['--task', 'g1/reach_left', '--episodes', '1', '--no-progress']) == 0
    assert 'success 1/1 = 100.0%' in capsys.readouterr().out
    assert main(['--task', 'g1/reach', '--robot', 'franka_fr3', '--episodes', '1']) == 2


def test_expert_config_validation():
    with pytest.raises(ConfigValueError):
        ExpertConfig(velocity_fraction=1.5)
    with pytest.raises(ConfigValueError):
        ExpertConfig(chunk_horizon_s=0.05, chunk_dt_s=0.1)
    with pytest.raises(ConfigValueError):
        ExpertConfig(speed_m_s=0.0)


def test_time_laws():
    s = np.linspace(0, 1, 101)
    for law in (min_jerk, cruise_stop):
        v = law(s)
        assert v[0] == 0 and v[-1] == pytest.approx(1.0) and np.all(np.diff(v) >= 0)
    assert np.gradient(cruise_stop(s), s)[-1] == pytest.approx(0.0, abs=0.02)


def test_joint_move_respects_speed_cap():
    v_cap = np.array([0.5, 1.0])
    path = joint_move(np.zeros(2), np.array([1.0, -0.2]), v_cap, 0.1, 0.01)
    speeds = np.abs(np.diff(path.q, axis=0)) / np.diff(path.times_s)[:, None]
    assert np.all(speeds <= v_cap) and np.allclose(path.q[-1], [1.0, -0.2])
    assert path.duration_s >= 1.875 * 1.0 / 0.5


def test_cartesian_line_is_straight_and_keeps_orientation():
    from vidplan_ros.core.kinematics import franka_fr3_chain
    import torch
    chain = franka_fr3_chain()
    ik = ToolIK(chain, np.diag([1.0, -1.0, -1.0]))
    q0 = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
    p0 = ik.tool_position(q0)
    p1 = p0 + np.array([0.1, 0.15, -0.3])
    path, err = cartesian_line(ik, p0, p1, q0, np.full(7, 1.0), 0.2, 0.02)
    assert err < 1e-3
    poses = chain.fk(torch.as_tensor(path.q)).numpy()
    d = p1 - p0
    rel = poses[:, :3, 3] - p0
    off_line = rel - np.outer(rel @ d / (d @ d), d)
    assert np.max(np.linalg.norm(off_line, axis=1)) < 2e-3
    assert np.allclose(poses[-1, :3, 3], p1, atol=1e-3)
    assert np.allclose(poses[:, :3, :3], np.diag([1.0, -1.0, -1.0]), atol=2e-2)
