"""GVP-WM grounding on synthetic world models with known dynamics (also used by test_baselines)."""

import math

import numpy as np
import pytest
import torch

from vidplan_ros.core.config import load_config
from vidplan_ros.core.errors import ConfigValueError, VidplanError
from vidplan_ros.core.grounding import GroundingConfig, ground, shift_warm_start
from vidplan_ros.core.grounding_types import (ActionBounds, GroundingProblem, NormalizedWorldModel,
                                              WarmStart, rollout, to_tensors)
from vidplan_ros.core.paths import config_dir
from vidplan_ros.core.robot_spec import load_robot_spec

A_MAX = 0.3  # rad per plan step


class AffineWorldModel(torch.nn.Module):
    """Fixed random dynamics, nonlinear in z, affine in a (so inverse dynamics is exact).

    ``z' = z + 0.1 tanh(W z + b) + B a`` on flat latents; ``q' = q + a[:n]`` (joint deltas).
    """

    def __init__(self, latent_shape=(2, 4, 4), action_dim=4, num_joints=3, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d = math.prod(latent_shape)
        self.latent_shape, self.action_dim, self.num_joints = latent_shape, action_dim, num_joints
        self.register_buffer('W', torch.randn(d, d, generator=g) / math.sqrt(d))
        self.register_buffer('b', torch.randn(d, generator=g) * 0.5)
        self.register_buffer('B', torch.randn(d, action_dim, generator=g))
        self.calls = 0

    def drift(self, z):
        return 0.1 * torch.tanh(z @ self.W.T + self.b)

    def step(self, z, q, a):
        self.calls += 1
        zf = z.reshape(z.shape[0], -1)
        z_next = zf + self.drift(zf) + a @ self.B.T
        return z_next.reshape(z.shape), q + a[:, :self.num_joints]

    def inverse(self, z, z_next, q):
        """Exact inverse dynamics (least squares on B)."""
        zf, nf = z.reshape(z.shape[0], -1), z_next.reshape(z.shape[0], -1)
        return (nf - zf - self.drift(zf)) @ torch.linalg.pinv(self.B).T


def bounds(wm, a_max=A_MAX, q_lim=2.0):
    return ActionBounds(np.full(wm.action_dim, -a_max, np.float32),
                        np.full(wm.action_dim, a_max, np.float32),
                        np.full(wm.num_joints, -q_lim, np.float32),
                        np.full(wm.num_joints, q_lim, np.float32))


def true_rollout(wm, z0, q0, actions):
    z, q, zs, qs = z0[None], q0[None], [], []
    with torch.no_grad():
        for a in actions:
            z, q = wm.step(z, q, a[None])
            zs.append(z[0])
            qs.append(q[0])
    return torch.stack(zs), torch.stack(qs)


def make_problem(wm, H=6, seed=1, corrupt=0.0, **kw):
    """A plan that is the model's own rollout of random in-bounds actions (+ corruption)."""
    g = torch.Generator().manual_seed(seed)
    z0 = (torch.randn(wm.latent_shape, generator=g) + 1.0)
    q0 = torch.zeros(wm.num_joints)
    actions = (torch.rand(H, wm.action_dim, generator=g) * 2 - 1) * 0.8 * A_MAX
    plan, _ = true_rollout(wm, z0, q0, actions)
    if corrupt:  # the middle of the plan teleports
        jump = torch.randn(wm.latent_shape, generator=g)
        plan[H // 3:2 * H // 3] += corrupt * jump * z0.norm() / jump.norm()
    problem = GroundingProblem(z0.numpy(), q0.numpy(), plan.numpy(), bounds(wm, **kw))
    return problem, actions


def rollout_error(wm, problem, actions):
    """max_t ||rollout(actions)_t - plan_t|| / ||z0|| and the rollout latents."""
    pt = to_tensors(problem, torch.device('cpu'))
    with torch.no_grad():
        Z, Q, _ = rollout(wm, pt, torch.as_tensor(actions)[None])
    return float((Z[0, 1:] - pt.plan).norm(dim=-1).max() / pt.z0.norm()), Z[0], Q[0]


ACCURATE = GroundingConfig(outer_iterations=6, inner_steps=8, refine=False)


@pytest.fixture(scope='module')
def wm():
    return AffineWorldModel()


def test_achievable_plan_is_recovered(wm):
    problem, actions = make_problem(wm)
    r = ground(problem, wm, ACCURATE)
    assert r.dynamics_residual <= ACCURATE.tolerance
    assert r.alignment > 0.999
    err, _, _ = rollout_error(wm, problem, r.actions)
    assert err < 0.03                                   # executing the actions gives the plan
    assert np.abs(r.actions - actions.numpy()).max() < 0.03
    assert r.method == 'gvp_wm' and r.iterations <= r.outer_iterations * ACCURATE.inner_steps


def test_result_is_well_formed(wm):
    problem, _ = make_problem(wm, H=5)
    r = ground(problem, wm)
    assert r.actions.shape == (5, wm.action_dim)
    assert r.latents.shape == (6, *wm.latent_shape) and r.q_pred.shape == (6, wm.num_joints)
    np.testing.assert_array_equal(r.latents[0], problem.z0)
    np.testing.assert_array_equal(r.q_pred[0], problem.q0)
    assert all(np.isfinite(x).all() for x in (r.actions, r.latents, r.q_pred))
    assert 0 < r.compute_time_s < 5 and r.outer_iterations <= GroundingConfig().outer_iterations


def test_infeasible_plan_gives_a_feasible_result_with_lower_alignment(wm):
    clean, _ = make_problem(wm, H=6)
    problem, _ = make_problem(wm, H=6, corrupt=0.4)
    cfg = GroundingConfig(outer_iterations=10, inner_steps=8, refine=False)
    r_clean, r = ground(clean, wm, cfg), ground(problem, wm, cfg)
    assert r.dynamics_residual < 0.005                  # feasible under the model ...
    assert r.alignment < r_clean.alignment - 0.005      # ... so it cannot follow the teleport
    assert abs(r.rollout_alignment - r.alignment) < 0.002
    err, Z, _ = rollout_error(wm, problem, r.actions)
    # the committed latents are (nearly) what the model predicts for the actions
    lat = torch.as_tensor(r.latents).reshape(7, -1)
    assert float((lat - Z).norm(dim=-1).max() / lat[0].norm()) < 0.05


def test_penalty_grows_geometrically(wm):
    problem, _ = make_problem(wm)
    cfg = GroundingConfig(outer_iterations=5, inner_steps=2, tolerance=1e-9,
                          proprio_tolerance_rad=1e-9, penalty_init=0.5, penalty_growth=3.0,
                          penalty_max=20.0)
    r = ground(problem, wm, cfg)
    assert r.penalties == pytest.approx((0.5, 1.5, 4.5, 13.5, 20.0))
    assert r.outer_iterations == 5 and r.iterations == 10


def test_bounds_are_respected_by_projection(wm):
    # the plan needs up to 0.24 rad per step; the box allows 0.1, the joints +-0.15 rad
    problem, _ = make_problem(wm, a_max=0.1, q_lim=0.15)
    b, n = problem.bounds, wm.num_joints
    for cfg in (ACCURATE, GroundingConfig(outer_iterations=2, inner_steps=6, refine_samples=8,
                                           refine_std=2.0)):
        r = ground(problem, wm, cfg)
        assert np.all(r.actions >= b.action_min - 1e-6)
        assert np.all(r.actions <= b.action_max + 1e-6)
        assert np.all(np.abs(r.q_pred) <= 0.15 + 1e-5)
        targets = r.q_pred[:-1] + r.actions[:, :n]      # commanded joint targets
        assert np.all(np.abs(targets) <= 0.15 + 1e-5)
        assert np.abs(r.actions).max() > 0.09           # the bound is active somewhere


def test_shift_warm_start_drops_executed_steps_and_pads(wm):
    problem, _ = make_problem(wm, H=5)
    r = ground(problem, wm)
    w = shift_warm_start(r, 2)
    assert w.valid_steps == 3
    np.testing.assert_array_equal(w.actions[:3], r.actions[2:])
    np.testing.assert_array_equal(w.actions[3:], np.repeat(r.actions[-1:], 2, axis=0))
    np.testing.assert_array_equal(w.latents[:4], r.latents[2:])
    np.testing.assert_array_equal(w.q[-1], r.q_pred[-1])
    assert w.latents.shape == r.latents.shape and w.q.shape == r.q_pred.shape
    assert shift_warm_start(r, 9).valid_steps == 0     # past the end: hold the last row


def test_shifted_warm_start_needs_fewer_iterations(wm):
    H, k = 6, 2
    problem, actions = make_problem(wm, H=H + k)
    first = GroundingProblem(problem.z0, problem.q0, problem.video_plan[:H], problem.bounds)
    cfg = GroundingConfig(outer_iterations=8, inner_steps=4, tolerance=5e-3)
    r1 = ground(first, wm, cfg)
    # execute k steps of the grounded actions on the "real" system (the model itself)
    z, q = true_rollout(wm, torch.as_tensor(problem.z0), torch.as_tensor(problem.q0),
                        torch.as_tensor(r1.actions[:k]))
    later_plan, _ = true_rollout(wm, z[-1], q[-1], actions[k:])
    nxt = GroundingProblem(z[-1].numpy(), q[-1].numpy(), later_plan.numpy(), problem.bounds)
    cold = ground(nxt, wm, cfg)
    warm = ground(nxt, wm, cfg, warm_start=shift_warm_start(r1, k))
    assert warm.dynamics_residual <= cfg.tolerance
    assert warm.iterations < cold.iterations
    assert warm.alignment > 0.999


def test_deterministic(wm):
    problem, _ = make_problem(wm, corrupt=0.2)
    cfg = GroundingConfig(refine_samples=16, seed=3)      # refine is on by default
    a, b = ground(problem, wm, cfg), ground(problem, wm, cfg)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.latents, b.latents)


def test_refinement_commits_to_a_rollout_at_least_as_good(wm):
    problem, _ = make_problem(wm, corrupt=0.3)
    plain = ground(problem, wm, GroundingConfig(refine=False))
    refined = ground(problem, wm, GroundingConfig(refine_samples=32, refine_std=0.2))
    assert refined.dynamics_residual < 1e-5             # latents are the model's rollout
    assert refined.alignment == pytest.approx(refined.rollout_alignment)
    assert refined.rollout_alignment >= plain.rollout_alignment - 1e-6


def test_any_horizon_and_goal_only(wm):
    for H in (1, 3, 12):
        problem, _ = make_problem(wm, H=H)
        r = ground(problem, wm)
        assert r.actions.shape == (H, wm.action_dim) and np.isfinite(r.dynamics_residual)
    problem, _ = make_problem(wm, H=4)
    r = ground(problem, wm, GroundingConfig(video_weight=0.0, goal_weight=1.0,
                                            latent_init='interpolate', outer_iterations=6))
    assert r.dynamics_residual < 0.01


def test_problem_and_config_validation(wm):
    problem, _ = make_problem(wm, H=3)
    with pytest.raises(VidplanError, match='video_plan'):
        GroundingProblem(problem.z0, problem.q0, problem.video_plan[:, :1], problem.bounds)
    with pytest.raises(VidplanError, match='min < max'):
        ActionBounds(np.ones(2), np.zeros(2))
    for bad in (dict(penalty_growth=0.5), dict(video_weight=0.0), dict(latent_init='zeros'),
                dict(momentum=1.0), dict(inner_steps=0), dict(tolerance=0.0)):
        with pytest.raises(ConfigValueError):
            GroundingConfig(**bad)


def test_bounds_from_robot_spec():
    spec = load_robot_spec('franka_fr3')
    b = ActionBounds.from_robot_spec(spec, plan_dt_s=0.2, extra_min=(0.0,), extra_max=(0.08,))
    assert b.action_max[0] == pytest.approx(2.62 * 0.2) and b.action_max[-1] == 0.08
    assert b.joint_max_rad[3] == pytest.approx(-0.1518 - spec.position_margin_rad)


def test_action_prior_anchors_the_solution(wm):
    from dataclasses import replace as dc_replace

    from vidplan_ros.core.baselines import GrounderConfig, make_grounder
    problem, actions = make_problem(wm, corrupt=0.5)
    prior = (0.5 * actions).numpy()          # feasible, and not what the plan shows
    anchored = dc_replace(problem, action_prior=prior)
    free = dc_replace(ACCURATE, prior_weight=0.0)   # the prior is ignored
    np.testing.assert_allclose(ground(anchored, wm, free).actions,
                               ground(problem, wm, free).actions, atol=1e-6)
    dist = [float(np.abs(ground(anchored, wm, dc_replace(ACCURATE, prior_weight=w)).actions
                         - prior).max()) for w in (0.0, 1.0, 100.0)]
    assert dist[0] > dist[1] > dist[2] and dist[2] < 0.05 * dist[0]
    # the grounder starts from the prior at every replan (not from the previous solution)
    cfg = GrounderConfig(gvp_wm=GroundingConfig(prior_weight=100.0, refine=True))
    g = make_grounder('gvp_wm', wm, cfg, inverse_dynamics=wm.inverse)
    stale = shift_warm_start(ground(problem, wm, ACCURATE), 0)
    np.testing.assert_allclose(g(anchored, stale).actions, prior, atol=0.05 * dist[0])
    with pytest.raises(ConfigValueError, match='prior_weight'):
        GroundingConfig(prior_weight=-1.0)


def test_grounding_yaml_is_the_defaults():
    from vidplan_ros.core.baselines import GrounderConfig
    assert load_config(GrounderConfig, config_dir() / 'grounding.yaml') == GrounderConfig()


class _NormalizedNet(torch.nn.Module):
    """A 'trained' model in normalised units: z' = z + mean(a_n), q_n' = q_n + a_n."""

    latent_shape = (1, 2, 2)

    def forward(self, z, q_n, a_n):
        return z + a_n.mean(-1)[:, None, None, None], q_n + a_n


class _Norm:
    q_mean, q_std = np.array([0.5, -1.0]), np.array([2.0, 4.0])
    action_mean, action_std = np.array([0.1, 0.0]), np.array([0.5, 0.25])


def test_normalized_world_model_adapter():
    wm = NormalizedWorldModel(_NormalizedNet(), _Norm())
    assert wm.latent_shape == (1, 2, 2) and wm.action_dim == 2 and wm.num_joints == 2
    z, q, a = torch.zeros(1, 1, 2, 2), torch.tensor([[0.5, -1.0]]), torch.tensor([[0.6, 0.25]])
    z_next, q_next = wm.step(z, q, a)
    a_n = (a - torch.tensor([0.1, 0.0])) / torch.tensor([0.5, 0.25])    # (1, 1)
    assert torch.allclose(z_next, torch.ones_like(z))
    assert torch.allclose(q_next, q + a_n * torch.tensor([2.0, 4.0]))
    np.testing.assert_allclose(wm.action_scale.numpy(), [0.5, 0.25])
    warm = WarmStart(np.zeros((2, 2)), np.zeros((3, 1, 2, 2)), np.zeros((3, 2)))
    assert warm.valid_steps is None


class _PlannerNet(torch.nn.Module):
    """'Plans' z0 + steps * q_n[0] for every frame, so the call's steps and q_n show."""

    latent_shape, horizon, steps = (1, 2, 2), 3, 8

    def forward(self, z0, q_n, noise):
        return z0[:, None] + self.steps * q_n[:, :1, None, None, None] + 0 * noise


def test_planner_and_inverse_dynamics_adapters():
    from vidplan_ros.core.grounding_types import NormalizedInverseDynamics, NormalizedPlanner
    net = _PlannerNet()
    planner = NormalizedPlanner(net, _Norm())
    assert planner.noise_shape(3) == (3, 1, 2, 2)
    with pytest.raises(VidplanError, match='H = 3'):
        planner.noise_shape(5)
    z0, q0, noise = torch.zeros(1, 1, 2, 2), torch.tensor([[2.5, 0.0]]), torch.zeros(1, 3, 1, 2, 2)
    assert float(planner.sample(z0, q0, noise, 0)[0, 0, 0, 0, 0]) == 8.0     # q_n = 1, 8 steps
    assert float(planner.sample(z0, q0, noise, 2)[0, 0, 0, 0, 0]) == 2.0
    assert net.steps == 8                                                   # restored
    assert planner.prior_actions(z0, q0) is None                            # no head
    net.prior = lambda z, q_n: q_n[:, None].expand(-1, 3, -1)               # a_n = q_n
    np.testing.assert_allclose(planner.prior_actions(z0, q0)[0].numpy(),
                               [[1.0 * 0.5 + 0.1, 0.25 * 0.25]] * 3)
    inv = NormalizedInverseDynamics(lambda z, zn, q_n: q_n, _Norm())         # a_n = q_n
    a = inv(z0, z0, q0)
    np.testing.assert_allclose(a.numpy(), [[1.0 * 0.5 + 0.1, 0.25 * 0.25]])


def test_skip_repeated_frames_drops_a_held_frame(wm):
    """`skip_repeated_frames` drops a frame that repeats the one before it (a lost frame
    held) from the video term: the rollout passes through the gap to the frames shown, and the
    held frame does not pull on it."""
    from dataclasses import replace as dc_replace

    from vidplan_ros.core.grounding import video_weights
    problem, _ = make_problem(wm, H=6)
    pt = to_tensors(problem, torch.device('cpu'))
    held = problem.video_plan.copy()
    held[2] = held[1]                                   # frame 2 lost, frame 1 shown again
    dropped = dc_replace(problem, video_plan=held)
    skip = ACCURATE                                     # the default
    assert skip.skip_repeated_frames
    assert video_weights(skip, to_tensors(dropped, torch.device('cpu'))).tolist() == \
        [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    assert (video_weights(skip, pt) > 0).all()          # nothing repeats in the clean plan
    # through the gap only the sum of two steps' actions is determined: judge the rollout on
    # the frames that were shown
    shown = [0, 1, 3, 4, 5]

    def miss(cfg):
        _, Z, _ = rollout_error(wm, problem, ground(dropped, wm, cfg).actions)
        pl = torch.as_tensor(problem.video_plan).reshape(6, -1)
        return float((Z[1:][shown] - pl[shown]).norm(dim=-1).max() / pl[0].norm())
    assert miss(skip) < 0.03
    # ... and the held frame does not pull on the rollout at all (it does without the skip)
    from vidplan_ros.core.grounding import _cost
    pd = to_tensors(dropped, torch.device('cpu'))
    Z = pd.plan.clone()
    Z2 = Z.clone()
    Z2[2] += torch.randn(Z.shape[1])
    U = torch.zeros(6, wm.action_dim)
    w_skip = video_weights(skip, pd)
    assert float(_cost(skip, pd, Z, U, None, w_skip)) == pytest.approx(
        float(_cost(skip, pd, Z2, U, None, w_skip)))
    plain = dc_replace(ACCURATE, skip_repeated_frames=False)
    w_plain = video_weights(plain, pd)
    assert float(_cost(plain, pd, Z2, U, None, w_plain)) > float(
        _cost(plain, pd, Z, U, None, w_plain)) + 1e-3
