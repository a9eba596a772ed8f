"""Baselines behind the grounding interface, on the synthetic models of test_grounding."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from test_grounding import A_MAX, AffineWorldModel, make_problem, rollout_error, true_rollout
from vidplan_ros.core.baselines import (METHODS, CemConfig, GdConfig, GrounderConfig, WavConfig,
                                        make_grounder)
from vidplan_ros.core.errors import ConfigValueError, VidplanError
from vidplan_ros.core.grounding import GroundingConfig
from vidplan_ros.core.grounding_types import GroundingProblem, NormalizedInverseDynamics
from vidplan_ros.nn.model_config import InverseDynamicsConfig


class NoisePlanner:
    """Imagines the model's rollout of actions read from the noise, plus noise-sized garbage."""

    def __init__(self, wm, garbage=0.05):
        self.wm, self.garbage, self.calls = wm, garbage, 0

    def noise_shape(self, horizon):
        return (horizon, *self.wm.latent_shape)

    def sample(self, z0, q0, noise, num_steps):
        self.calls += 1
        B, H = noise.shape[:2]
        acts = 0.8 * A_MAX * torch.tanh(noise.reshape(B, H, -1)[..., :self.wm.action_dim])
        z, q, plan = z0, q0, []
        for t in range(H):
            z, q = self.wm.step(z, q, acts[:, t])
            plan.append(z)
        return torch.stack(plan, 1) + self.garbage * noise


@pytest.fixture(scope='module')
def wm():
    return AffineWorldModel()


def grounders(wm, cfg=None):
    inv = wm.inverse
    return {m: make_grounder(m, wm, cfg, planner=NoisePlanner(wm), inverse_dynamics=inv)
            for m in METHODS}


def test_every_method_returns_a_well_formed_result(wm):
    problem, actions = make_problem(wm, H=4, corrupt=0.2, a_max=0.2, q_lim=0.5)
    problem = replace(problem, action_prior=actions.numpy())
    b = problem.bounds
    cfg = GrounderConfig(mpc_cem=CemConfig(samples=32, elites=4, iterations=3),
                         mpc_gd=GdConfig(steps=10), wav=WavConfig(samples=6, elites=2))
    for method, g in grounders(wm, cfg).items():
        r = g(problem)
        assert g.name == method and r.method == method
        assert r.actions.shape == (4, wm.action_dim)
        assert r.latents.shape == (5, *wm.latent_shape) and r.q_pred.shape == (5, 3)
        np.testing.assert_array_equal(r.latents[0], problem.z0)
        assert all(np.isfinite(x).all() for x in (r.actions, r.latents, r.q_pred))
        assert np.all(r.actions >= b.action_min - 1e-6)
        assert np.all(r.actions <= b.action_max + 1e-6)
        assert -1 <= r.alignment <= 1 and -1 <= r.rollout_alignment <= 1
        assert r.dynamics_residual >= 0 and r.compute_time_s > 0 and r.iterations >= 1


def test_cem_and_gd_reach_the_final_latent_on_an_easy_problem(wm):
    g = torch.Generator().manual_seed(5)
    z0, q0 = torch.randn(wm.latent_shape, generator=g) + 1.0, torch.zeros(3)
    actions = torch.full((3, wm.action_dim), 0.1)               # a short, constant push
    plan, _ = true_rollout(wm, z0, q0, actions)
    problem = GroundingProblem(z0.numpy(), q0.numpy(), plan.numpy(),
                               make_problem(wm)[0].bounds)
    gap = float((plan[-1] - z0).norm())
    cfg = GrounderConfig(mpc_cem=CemConfig(samples=256, elites=16, iterations=8, std_init=0.3),
                         mpc_gd=GdConfig(steps=150, lr=0.05))
    for method in ('mpc_cem', 'mpc_gd'):
        r = make_grounder(method, wm, cfg)(problem)
        final = torch.as_tensor(r.latents[-1]).flatten()
        assert float((final - plan[-1].flatten()).norm()) < 0.2 * gap, method
        assert r.dynamics_residual < 1e-5                        # shooting: a true rollout


def test_inverse_dynamics_commits_to_the_plan(wm):
    problem, actions = make_problem(wm, H=5)
    r = make_grounder('inverse_dynamics', wm, inverse_dynamics=wm.inverse)(problem)
    np.testing.assert_allclose(r.actions, actions.numpy(), atol=1e-4)   # exact inverse
    assert r.dynamics_residual < 1e-4 and r.rollout_alignment > 0.9999
    bad, _ = make_problem(wm, H=5, corrupt=0.4)
    r_bad = make_grounder('inverse_dynamics', wm, inverse_dynamics=wm.inverse)(bad)
    assert r_bad.dynamics_residual > 0.1               # the plan's teleport shows as a defect
    assert r_bad.alignment == pytest.approx(1.0)       # it commits to the plan itself


def test_inverse_dynamics_step_gain_scales_the_steps_inside_the_box(wm):
    problem, actions = make_problem(wm, H=5)
    b = problem.bounds
    unit = SimpleNamespace(q_mean=np.zeros(wm.num_joints), q_std=np.ones(wm.num_joints),
                           action_mean=np.zeros(wm.action_dim), action_std=np.ones(wm.action_dim))
    inv = NormalizedInverseDynamics(wm.inverse, unit, step_gain=2.0)   # the model set's gain
    r = make_grounder('inverse_dynamics', wm, inverse_dynamics=inv)(problem)
    # the first step sees the same frames and joints: exactly twice the exact inverse, clipped
    want = np.clip(2.0 * actions.numpy()[0], b.action_min, b.action_max)
    np.testing.assert_allclose(r.actions[0], want, atol=1e-4)
    assert np.all(r.actions >= b.action_min - 1e-6) and np.all(r.actions <= b.action_max + 1e-6)
    warm = make_grounder('gvp_wm', wm, inverse_dynamics=inv)(problem)
    assert warm.iterations > 1      # its cold start is off the exact inverse now
    with pytest.raises(ConfigValueError, match='step_gain'):
        InverseDynamicsConfig(step_gain=0.0)


def test_actions_only_and_collocation(wm):
    problem, actions = make_problem(wm, H=5)
    r = make_grounder('actions_only', wm)(problem)
    assert r.dynamics_residual < 0.02 and r.alignment == pytest.approx(1.0)
    err, _, _ = rollout_error(wm, problem, r.actions)
    assert err < 0.1
    c = make_grounder('collocation', wm)(problem)
    assert c.method == 'collocation' and np.isfinite(c.dynamics_residual)


def test_gvp_wm_cold_start_from_inverse_dynamics(wm):
    problem, actions = make_problem(wm, H=5)
    r = make_grounder('gvp_wm', wm, inverse_dynamics=wm.inverse)(problem)
    # seeded with the exact inverse on a feasible plan: feasible at the first evaluation
    assert r.iterations == 1 and r.dynamics_residual < 1e-4
    np.testing.assert_allclose(r.actions, actions.numpy(), atol=1e-4)


def test_gvp_wm_anchored_to_the_prior_source(wm):
    problem, actions = make_problem(wm, H=5, corrupt=0.3)
    reading = make_grounder('inverse_dynamics', wm, inverse_dynamics=wm.inverse)(problem).actions

    def gvp(source, p):
        cfg = GrounderConfig(prior_source=source, gvp_wm=GroundingConfig(prior_weight=50.0))
        return make_grounder('gvp_wm', wm, cfg, inverse_dynamics=wm.inverse)(p).actions

    def dist(a, b):
        return float(np.abs(a - np.asarray(b)).max())

    # no head's prior on this problem: 'head' leaves GVP-WM free, 'inverse_dynamics' and
    # 'auto' hold it near inverse dynamics' reading of the corrupted plan
    free, anchored = gvp('head', problem), gvp('inverse_dynamics', problem)
    assert dist(anchored, reading) < 0.2 * dist(free, reading)
    np.testing.assert_allclose(gvp('auto', problem), anchored, atol=1e-6)
    # where the problem carries the head's prior (here the true actions) 'auto' keeps it
    with_head = replace(problem, action_prior=actions.numpy())
    assert dist(gvp('auto', with_head), actions) < 0.5 * dist(gvp('inverse_dynamics', with_head),
                                                               actions)
    with pytest.raises(ConfigValueError, match='prior_source'):
        GrounderConfig(prior_source='policy')


def test_wav_searches_the_planner_noise(wm):
    planner = NoisePlanner(wm, garbage=0.3)
    problem, _ = make_problem(wm, H=4, corrupt=0.3)
    cfg = GrounderConfig(wav=WavConfig(samples=8, elites=2, iterations=3, seed=1))
    g = make_grounder('wav', wm, cfg, planner=planner, inverse_dynamics=wm.inverse)
    a, b = g(problem), g(problem)
    assert planner.calls == 6
    np.testing.assert_array_equal(a.actions, b.actions)     # seeded
    assert a.dynamics_residual < 1e-5                        # commits to the model's rollout
    nominal = make_grounder('inverse_dynamics', wm, inverse_dynamics=wm.inverse)(problem)
    assert a.rollout_alignment >= nominal.rollout_alignment - 1e-6


def test_factory_and_config_errors(wm):
    with pytest.raises(VidplanError, match='unknown grounding method'):
        make_grounder('rrt', wm)
    with pytest.raises(VidplanError, match='inverse dynamics'):
        make_grounder('inverse_dynamics', wm)
    with pytest.raises(VidplanError, match='planner'):
        make_grounder('wav', wm, inverse_dynamics=wm.inverse)
    for bad in (lambda: GrounderConfig(method='rrt'), lambda: CemConfig(elites=500),
                lambda: GdConfig(video_weight=0.0, goal_weight=0.0), lambda: WavConfig(samples=0)):
        with pytest.raises(ConfigValueError):
            bad()


def test_cem_is_deterministic_and_uses_the_warm_start(wm):
    problem, actions = make_problem(wm, H=4)
    g = make_grounder('mpc_cem', wm, GrounderConfig(
        mpc_cem=CemConfig(samples=16, elites=4, iterations=2)))
    np.testing.assert_array_equal(g(problem).actions, g(problem).actions)
    from vidplan_ros.core.grounding_types import WarmStart
    truth = WarmStart(actions.numpy(), np.zeros((5, *wm.latent_shape)), np.zeros((5, 3)))
    r = g(problem, truth)                    # the warm mean is sample 0: the exact answer
    assert r.rollout_alignment > 0.9999


def test_policy_executes_the_action_prior_and_needs_one(wm):
    problem, actions = make_problem(wm, H=5, corrupt=0.3)
    policy = make_grounder('policy', wm)
    with pytest.raises(VidplanError, match='action_prior: true'):
        policy(problem)
    # a prior outside the box is clipped into it; the rest is executed as proposed
    prior = actions.numpy().copy()
    prior[0, 0] = 10.0
    r = policy(replace(problem, action_prior=prior))
    b = problem.bounds
    assert r.actions[0, 0] == pytest.approx(b.action_max[0])
    np.testing.assert_allclose(r.actions[1:], actions.numpy()[1:], atol=1e-6)
    # the committed latents are the model's own rollout: feasible, and not the corrupted plan
    assert r.dynamics_residual < 1e-5
    _, z_roll, _ = rollout_error(wm, problem, r.actions)
    np.testing.assert_allclose(r.latents.reshape(6, -1), z_roll.numpy(), atol=1e-5)
    with pytest.raises(VidplanError, match='action_prior must be finite'):
        replace(problem, action_prior=prior[:3])
    prior[2, 1] = np.nan
    with pytest.raises(VidplanError, match='action_prior must be finite'):
        replace(problem, action_prior=prior)
