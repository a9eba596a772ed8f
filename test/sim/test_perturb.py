"""Recovery perturbations (sim.perturb): the object push, and the cube nudge it drives."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip('mujoco')

from vidplan_ros.core.config import ConfigValueError  # noqa: E402
from vidplan_ros.core.robot_spec import load_robot_spec  # noqa: E402
from vidplan_ros.sim.env import SimConfig, SimEnv  # noqa: E402
from vidplan_ros.sim.experts import make_expert  # noqa: E402
from vidplan_ros.sim.perturb import NoiseConfig, Perturber  # noqa: E402
from vidplan_ros.sim.rollout import run_episode  # noqa: E402

ARM = dict(start_rad=0.2, noise_rad=0.03, detour_prob=0.3, detour_rad=0.2)


@pytest.fixture(scope='module')
def push_env():
    env = SimEnv(SimConfig(robot='franka_fr3', task='franka/push', cameras=('top',),
                           image_width=32, image_height=32))
    yield env
    env.close()


def test_an_object_push_comes_once_in_its_window_and_within_its_size():
    spec = load_robot_spec('franka_fr3')
    cfg = NoiseConfig(**ARM, object_push_prob=1.0, object_push_m=0.05,
                      object_push_start_s=(1.0, 2.0))
    for seed in range(20):
        p = Perturber(spec, cfg, np.random.default_rng(seed))
        assert p.object_push_due(0.99) is None
        due = [t for t in np.arange(0.0, 3.0, 0.1) if p.object_push_due(t) is not None]
        assert len(due) == 1 and 1.0 - 0.1 < due[0] <= 2.0 + 0.1
    p = Perturber(spec, cfg, np.random.default_rng(0))
    offset, dyaw = p.object_push_due(5.0)
    assert 0.25 * 0.05 - 1e-12 <= np.linalg.norm(offset) <= 0.05 and abs(dyaw) <= 0.5


def test_without_object_pushes_the_arm_perturbations_draw_as_before():
    """Probability 0 draws nothing: episodes recorded before the option replay unchanged."""
    spec = load_robot_spec('franka_fr3')
    a = Perturber(spec, NoiseConfig(**ARM), np.random.default_rng(7))
    b = Perturber(spec, NoiseConfig(**ARM, object_push_m=0.1), np.random.default_rng(7))
    np.testing.assert_array_equal(a.start_pose(), b.start_pose())
    np.testing.assert_array_equal(a.offset_at(1.0), b.offset_at(1.0))
    assert b.object_push_due(100.0) is None


@pytest.mark.parametrize('field, value', [('object_push_prob', 1.5),
                                          ('object_push_m', math.nan),
                                          ('object_push_m', -0.01),
                                          ('object_push_start_s', (3.0, 1.0))])
def test_bad_object_push_settings_are_rejected(field, value):
    with pytest.raises(ConfigValueError, match=field):
        NoiseConfig(**{field: value})


def test_a_nudge_moves_the_cube_flat_and_never_into_the_robot(push_env):
    env = push_env
    env.reset(3)
    c0 = env.task_state().cube_pos_m.copy()
    assert env.nudge_object(np.array([0.02, -0.01]), 0.3)
    np.testing.assert_allclose(env.task_state().cube_pos_m - c0, [0.02, -0.01, 0.0], atol=1e-9)
    c1 = env.task_state().cube_pos_m.copy()
    # onto the robot's base at the origin: refused, nothing moved
    assert not env.nudge_object(-c1[:2], 0.0)
    np.testing.assert_allclose(env.task_state().cube_pos_m, c1, atol=1e-12)
    with pytest.raises(ValueError, match='finite'):
        env.nudge_object(np.array([np.nan, 0.0]))


def test_a_reach_has_no_object_to_nudge():
    env = SimEnv(SimConfig(robot='franka_fr3', task='franka/reach', cameras=('top',),
                           image_width=32, image_height=32))
    try:
        assert not env.nudge_object(np.array([0.01, 0.0]))
    finally:
        env.close()


def test_the_expert_finishes_a_push_after_the_cube_is_shoved(push_env):
    env = push_env
    cfg = NoiseConfig(**ARM, object_push_prob=1.0, object_push_m=0.05)
    result = run_episode(env, make_expert('franka/push', env.spec), 40000, noise=cfg)
    assert result.object_pushes == 1
    assert result.success and result.final_distance_m <= 0.03
