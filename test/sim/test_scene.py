"""Sim scenes and tasks: compile and step cleanly, cameras render, seeds randomise, success checks.

Images are small and step counts short so the whole file runs in a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip('mujoco')

import torch  # noqa: E402

from vidplan_ros.core.errors import ConfigValueError  # noqa: E402
from vidplan_ros.core.kinematics import franka_fr3_chain, g1_arm_chain  # noqa: E402
from vidplan_ros.core.kinematics_ik import IKConfig  # noqa: E402
from vidplan_ros.sim import render  # noqa: E402
from vidplan_ros.sim.env import SimConfig, SimEnv  # noqa: E402
from vidplan_ros.sim.scene import build_model, camera_names, warning_counts  # noqa: E402
from vidplan_ros.sim.tasks import TASKS, PushState, ReachState, task_robot  # noqa: E402

W, H = 64, 48  # not square, to catch a swapped width/height


def make_env(task: str, **kwargs) -> SimEnv:
    return SimEnv(SimConfig(robot=task_robot(task), task=task, image_width=W, image_height=H,
                            **kwargs))


@pytest.fixture(scope='module')
def envs():
    made = {task: make_env(task) for task in ('franka/reach', 'franka/push', 'g1/reach')}
    yield made
    for env in made.values():
        env.close()


def test_headless_backend_chosen():
    assert render.gl_backend() in ('egl', 'osmesa'), render.gl_backend_reason()


@pytest.mark.parametrize('robot', ['franka_fr3', 'unitree_g1'])
def test_bare_scene_compiles_with_cameras_and_actuators(robot):
    import mujoco
    model = build_model(robot)
    names = [model.camera(i).name for i in range(model.ncam)]
    assert sorted(names) == sorted(camera_names(robot))
    data = mujoco.MjData(model)
    mujoco.mj_step(model, data, 50)
    assert warning_counts(data) == {}


@pytest.mark.parametrize('task', sorted(TASKS))
def test_every_task_scene_steps_without_warnings(task):
    with make_env(task) as env:
        env.reset(7)
        q0 = env.q()
        env.step(100)                                   # hold the ready pose
        env.set_joint_command(q0 + 0.2)                 # then move every joint
        env.step(150)
        assert warning_counts(env.data) == {}
        assert np.all(np.isfinite(env.data.qpos))
        if env.spec.name == 'franka_fr3':
            assert np.max(np.abs(env.q() - (q0 + 0.2))) < 0.01


@pytest.mark.parametrize('task', ['franka/reach', 'g1/reach'])
def test_cameras_render_non_constant_images_of_the_configured_size(envs, task):
    env = envs[task]
    assert env.camera_names == camera_names(env.spec.name)
    for camera in env.camera_names:
        image = env.render(camera)
        assert image.shape == (H, W, 3) and image.dtype == np.uint8
        assert image.std() > 5.0, camera


def test_camera_subset_and_unknown_camera():
    with SimEnv(SimConfig(cameras=('wrist',), image_width=W, image_height=H)) as env:
        assert env.camera_names == ('wrist',)
        with pytest.raises(ValueError, match='no camera'):
            env.render('front')
    with pytest.raises(ConfigValueError):
        SimConfig(cameras=('head',))


def test_config_rejects_a_task_of_another_robot():
    with pytest.raises(ConfigValueError, match='task'):
        SimConfig(robot='unitree_g1', task='franka/reach')
    with pytest.raises(ConfigValueError):
        SimConfig(image_width=0)


def _state_vector(state) -> np.ndarray:
    if isinstance(state, ReachState):
        return state.target_pos_m
    return np.concatenate([state.cube_pos_m, state.goal_pos_m, state.cube_quat_wxyz])


@pytest.mark.parametrize('task', ['franka/reach', 'franka/push', 'g1/reach'])
def test_tasks_are_randomised_by_the_seed_and_deterministic(envs, task):
    env = envs[task]
    env.reset(11)
    first = _state_vector(env.task_state())
    env.reset(12)
    other = _state_vector(env.task_state())
    env.reset(11)
    again = _state_vector(env.task_state())
    np.testing.assert_array_equal(first, again)
    assert np.linalg.norm(first - other) > 1e-3
    with make_env(task) as fresh:                       # also across env instances
        fresh.reset(11)
        np.testing.assert_array_equal(_state_vector(fresh.task_state()), first)


def test_g1_reach_draws_both_sides_and_fixed_variants_keep_theirs(envs):
    env = envs['g1/reach']
    sides = set()
    for seed in range(12):
        env.reset(seed)
        state = env.task_state()
        sides.add(state.side)
        assert state.tip_link == f'{state.side}_rubber_hand'
        assert np.sign(state.target_pos_m[1]) in (0.0, 1.0 if state.side == 'left' else -1.0)
    assert sides == {'left', 'right'}
    with make_env('g1/reach_right') as right:
        for seed in range(3):
            right.reset(seed)
            assert right.task_state().side == 'right'


def _franka_ik(targets: np.ndarray) -> torch.Tensor:
    """Hand-down IK (ready-pose orientation) for target points (K, 3)."""
    chain = franka_fr3_chain()
    ready = torch.tensor([[0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4]],
                         dtype=torch.float64)
    poses = chain.fk(ready).repeat(len(targets), 1, 1)
    poses[:, :3, 3] = torch.as_tensor(targets)
    result = chain.ik(poses, ready.repeat(len(targets), 1), IKConfig(num_seeds=8))
    assert bool(result.success.all()), targets[~result.success.numpy()]
    return result.q


def test_franka_reach_targets_are_reachable_hand_down(envs):
    env = envs['franka/reach']
    targets = []
    for seed in range(25):
        env.reset(seed)
        targets.append(env.task_state().target_pos_m)
    _franka_ik(np.array(targets))


def test_franka_reach_success_false_at_reset_true_at_the_target(envs):
    env = envs['franka/reach']
    env.reset(3)
    assert not env.success()
    state = env.task_state()
    assert state.distance_m > state.tolerance_m
    q = _franka_ik(state.target_pos_m[None])[0].numpy()
    env.set_joint_positions(q)
    assert env.success()
    np.testing.assert_allclose(env.tcp_pose()[:3, 3], state.target_pos_m, atol=2e-3)
    env.step(20)                                      # and it holds there under PD
    assert env.success()


def _g1_ik(env: SimEnv, side: str, targets: np.ndarray) -> np.ndarray:
    """Arm IK (waist at 0) for base-frame points (K, 3); returns full spec-order q (K, 17)."""
    chain = g1_arm_chain(side)
    torso = env.tcp_pose('torso_link')
    local = (targets - torso[:3, 3]) @ torso[:3, :3]
    poses = torch.eye(4, dtype=torch.float64).repeat(len(targets), 1, 1)
    poses[:, :3, 3] = torch.as_tensor(local)
    result = chain.ik(poses, torch.zeros(len(targets), chain.dof, dtype=torch.float64),
                      IKConfig(num_seeds=8, position_only=True))
    assert bool(result.success.all()), targets[~result.success.numpy()]
    q = np.tile(np.array(env.spec.ready_pose_rad), (len(targets), 1))
    index = [env.joint_names.index(name) for name in chain.joint_names]
    q[:, index] = result.q.numpy()
    return q


def test_g1_reach_targets_reachable_and_success(envs):
    env = envs['g1/reach']
    for side in ('left', 'right'):
        seeds, targets = [], []
        for seed in range(40):
            env.reset(seed)
            if env.task_state().side == side:
                seeds.append(seed)
                targets.append(env.task_state().target_pos_m)
        assert len(seeds) >= 5
        qs = _g1_ik(env, side, np.array(targets))
        env.reset(seeds[0])
        assert not env.success()
        env.set_joint_positions(qs[0])
        assert env.success(), env.task_state()


def test_franka_push_success_when_the_cube_is_at_the_goal(envs):
    env = envs['franka/push']
    env.reset(5)
    state = env.task_state()
    assert isinstance(state, PushState)
    assert not env.success()
    assert 0.1 - 1e-9 <= np.linalg.norm(state.goal_pos_m[:2] - state.start_pos_m[:2]) <= 0.2
    np.testing.assert_allclose(np.linalg.norm(state.push_dir), 1.0)
    goal_centre = state.goal_pos_m + [0, 0, state.cube_half_size_m]
    env.task.set_cube_pose(env.data, goal_centre + [0.02, 0, 0])
    env.step(50)                                           # settles on the table
    assert env.success(), env.task_state()
    env.task.set_cube_pose(env.data, goal_centre + [0.04, 0, 0])
    env.step(1)
    assert not env.success()


def test_intrinsics_and_pose_project_the_target_onto_its_pixels():
    with SimEnv(SimConfig(image_width=120, image_height=90)) as env:
        for seed in range(3):
            env.reset(seed)
            target = env.task_state().target_pos_m
            for camera in ('front', 'side'):
                pose, k = env.camera_pose(camera), env.camera_intrinsics(camera)
                p_cam = pose[:3, :3].T @ (target - pose[:3, 3])
                u, v = (k @ (p_cam / p_cam[2]))[:2]
                image = env.render(camera).astype(int)
                pixel = image[int(round(v)), int(round(u))]
                assert pixel[0] > 150 and pixel[1] < 90 and pixel[2] < 90, (camera, pixel)


def test_domain_randomization_changes_looks_not_the_task():
    with make_env('franka/push', domain_randomization=True) as env, \
            make_env('franka/push') as plain:
        env.reset(1)
        a, state_a = env.render('front'), _state_vector(env.task_state())
        env.reset(2)
        b = env.render('front')
        env.reset(1)
        np.testing.assert_array_equal(env.render('front'), a)
        plain.reset(1)
        np.testing.assert_array_equal(_state_vector(plain.task_state()), state_a)
        assert np.abs(a.astype(int) - b.astype(int)).mean() > 2.0
        assert np.abs(plain.render('front').astype(int) - a.astype(int)).mean() > 2.0
