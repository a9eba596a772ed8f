"""The expert's future as a video plan: the episode's own expert, looked ahead in a sim copy."""

import numpy as np
import pytest

from vidplan_ros.eval.closed_loop import make_env
from vidplan_ros.eval.expert_plan import ExpertPlanSource
from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
from vidplan_ros.sim.experts import make_expert
from vidplan_ros.sim.rollout import run_episode

SEED = 1000


@pytest.fixture(scope='module')
def setup():
    pipeline = Pipeline(PipelineConfig(model='franka_reach', threads=1))
    env = make_env(pipeline, 'franka/reach')
    source = ExpertPlanSource(pipeline, env)
    yield pipeline, env, source
    source.close()
    env.close()


def test_the_look_ahead_is_the_experts_own_episode(setup):
    pipeline, env, source = setup
    env.reset(SEED)
    latents = source.plan(env)
    H = pipeline.horizon
    assert latents.shape[0] == H and np.isfinite(latents).all()
    assert source.q_future_rad.shape == (H, len(env.joint_names))
    # the expert acting alone from the same reset for the same time ends where the look-ahead
    # does (a fresh expert per replan restarted each move from rest and fell far behind)
    alone = make_env(pipeline, 'franka/reach')
    try:
        run_episode(alone, make_expert('franka/reach', alone.spec), SEED,
                    max_time_s=H * pipeline.plan_dt_s, stop_on_success=False)
        moved = np.abs(alone.q() - env.q()).max()
        assert moved > 0.05                               # the expert does move in that time
        np.testing.assert_allclose(source.q_future_rad[-1], alone.q(), atol=0.1 * moved)
    finally:
        alone.close()


def test_looking_ahead_leaves_the_episode_untouched(setup):
    _, env, source = setup
    env.reset(SEED)
    q0, t0 = env.q(), env.time_s
    first = source.plan(env).copy()
    assert env.time_s == t0 and np.array_equal(env.q(), q0)
    env.step(50)                                          # time passes, the arm holds
    later = source.plan(env).copy()
    assert not np.allclose(later, first)                  # the expert's clock moved on
    env.reset(SEED)                                       # a new episode: the expert starts over
    np.testing.assert_allclose(source.plan(env), first, atol=1e-5)
