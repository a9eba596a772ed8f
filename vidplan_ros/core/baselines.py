"""Baselines behind the GVP-WM interface, and :func:`make_grounder` to pick one by name.

- ``inverse_dynamics`` (UniPi / VILP low level): ``a_t = g(ẑ_t, ẑ_{t+1}, q_t)`` on consecutive
  plan frames; commits to the plan itself, so its residual shows how infeasible the plan is.
- ``mpc_cem`` / ``mpc_gd`` (DINO-WM): shooting on the world model towards the plan's final latent
  (or ``problem.goal_latent``) by the cross-entropy method or by Adam through the rollout.
- ``collocation``: the GVP-WM solver without video guidance (λv = 0, goal term, latents
  initialised on the line from z_0 to the goal).
- ``actions_only``: latents fixed to the video plan; actions (and joints) fitted so each plan
  step is a model step (no latent collocation).
- ``policy``: the actions the planner's action-prior head proposes (``problem.action_prior``,
  the actions its video plan is conditioned on), executed without the video: the ablation that
  says what imagining the video adds.
- ``wav`` (WAV-style): iteratively resample the planner's noise around elite candidates; each
  candidate plan is turned into actions by inverse dynamics and scored by the world-model rollout
  (consistency with its own plan + reaching the goal).

Costs use the same cosine distance as GVP-WM: ``2 - 2 cos``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from vidplan_ros.core.config import require, require_one_of, require_positive
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.grounding import (GroundingConfig, collocation_config, constraints, ground,
                                        action_scale, joint_base, project_variables,
                                        shift_warm_start)
from vidplan_ros.core.grounding_types import (Grounder, GroundingProblem, GroundingResult,
                                              InverseDynamics, ProblemTensors, VideoPlanner,
                                              WarmStart, WorldModel, cosine, make_result,
                                              model_device, project_actions, rollout, step_flat,
                                              to_tensors)

METHODS = ('gvp_wm', 'inverse_dynamics', 'mpc_cem', 'mpc_gd', 'collocation', 'actions_only',
           'wav', 'policy')
# where GVP-WM's action prior (gvp_wm.prior_weight) comes from: the planner's head, inverse
# dynamics' reading of the plan, or the head where the model set has one and else that reading
PRIOR_SOURCES = ('head', 'inverse_dynamics', 'auto')


def _weights_ok(cfg: object) -> None:
    for name in ('video_weight', 'goal_weight'):
        value = getattr(cfg, name)
        require(math.isfinite(value) and value >= 0, name, value, 'a number >= 0')
    require(cfg.video_weight + cfg.goal_weight > 0, 'goal_weight',
            cfg.goal_weight, 'video_weight or goal_weight > 0')


@dataclass(frozen=True)
class CemConfig:
    """MPC-CEM on the world model (DINO-WM: final-latent cost only, video_weight 0)."""

    samples: int = 256              # action sequences per iteration
    elites: int = 32                # best ones the distribution is refitted to
    iterations: int = 8
    std_init: float = 1.0           # initial std, units of the typical action (action_scale)
    std_min: float = 0.05           # floor of the std, same units
    video_weight: float = 0.0       # cosine cost of every rolled-out latent to the plan
    goal_weight: float = 1.0        # cosine cost of the final latent to the goal
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.samples >= 2, 'samples', self.samples, 'an integer >= 2')
        require(1 <= self.elites <= self.samples, 'elites', self.elites,
                f'an integer in [1, samples = {self.samples}]')
        require(self.iterations >= 1, 'iterations', self.iterations, 'an integer >= 1')
        require_positive(self, 'std_init', 'std_min')
        _weights_ok(self)


@dataclass(frozen=True)
class GdConfig:
    """MPC-GD: Adam on the actions through the world-model rollout."""

    steps: int = 50
    lr: float = 0.1                 # Adam step, units of the typical action (action_scale)
    video_weight: float = 0.0
    goal_weight: float = 1.0

    def __post_init__(self) -> None:
        require(self.steps >= 1, 'steps', self.steps, 'an integer >= 1')
        require_positive(self, 'lr')
        _weights_ok(self)


@dataclass(frozen=True)
class ActionsOnlyConfig:
    """Actions (and joints) fitted to the fixed plan latents by Adam."""

    steps: int = 50
    lr: float = 0.1
    proprio_scale_rad: float = 0.05  # units of the joint defect and the joint variables

    def __post_init__(self) -> None:
        require(self.steps >= 1, 'steps', self.steps, 'an integer >= 1')
        require_positive(self, 'lr', 'proprio_scale_rad')


@dataclass(frozen=True)
class WavConfig:
    """WAV-style iterative search over the planner's noise, scored by the world model."""

    samples: int = 16               # plans sampled per iteration
    elites: int = 4
    iterations: int = 3
    planner_steps: int = 0          # denoising / flow steps per plan (0: the planner's own)
    std_init: float = 1.0           # noise std of the first iteration (1 = the prior)
    std_min: float = 0.1
    video_weight: float = 1.0       # rollout vs its own plan (feasibility of the plan)
    goal_weight: float = 1.0        # rollout's final latent vs the goal
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.samples >= 1, 'samples', self.samples, 'an integer >= 1')
        require(1 <= self.elites <= self.samples, 'elites', self.elites,
                f'an integer in [1, samples = {self.samples}]')
        require(self.iterations >= 1, 'iterations', self.iterations, 'an integer >= 1')
        require(self.planner_steps >= 0, 'planner_steps', self.planner_steps,
                "an integer >= 0 (0: the planner's default)")
        require_positive(self, 'std_init', 'std_min')
        _weights_ok(self)


@dataclass(frozen=True)
class GrounderConfig:
    """Which grounding method runs (``method``) and the settings of each."""

    method: str = 'gvp_wm'
    # GVP-WM's cold start (no warm start): actions from the inverse dynamics model on the plan,
    # when make_grounder is given one (the latents still start on the plan)
    init_from_inverse_dynamics: bool = True
    # gvp_wm's action prior (used when gvp_wm.prior_weight > 0): PRIOR_SOURCES
    prior_source: str = 'auto'
    gvp_wm: GroundingConfig = field(default_factory=GroundingConfig)  # also 'collocation'
    mpc_cem: CemConfig = field(default_factory=CemConfig)
    mpc_gd: GdConfig = field(default_factory=GdConfig)
    actions_only: ActionsOnlyConfig = field(default_factory=ActionsOnlyConfig)
    wav: WavConfig = field(default_factory=WavConfig)

    def __post_init__(self) -> None:
        require_one_of(self, 'method', METHODS)
        require_one_of(self, 'prior_source', PRIOR_SOURCES)


@dataclass(frozen=True)
class _Grounder:
    name: str
    fn: Callable[[GroundingProblem, WarmStart | None], GroundingResult]

    def __call__(self, problem: GroundingProblem,
                 warm_start: WarmStart | None = None) -> GroundingResult:
        return self.fn(problem, warm_start)


def make_grounder(method: str, world_model: WorldModel, cfg: GrounderConfig | None = None, *,
                  planner: VideoPlanner | None = None,
                  inverse_dynamics: InverseDynamics | None = None) -> Grounder:
    """A grounder ``(problem, warm_start=None) -> GroundingResult`` for ``method`` (METHODS).

    'inverse_dynamics' needs ``inverse_dynamics``; 'wav' needs ``planner`` and
    ``inverse_dynamics``; 'gvp_wm' uses ``inverse_dynamics``, when given, for its cold starts.
    ``cfg`` (default settings if None) supplies each method's section.
    """
    cfg = cfg or GrounderConfig()
    if method not in METHODS:
        raise VidplanError(f'unknown grounding method {method!r}; choose one of {list(METHODS)}')
    if method in ('inverse_dynamics', 'wav') and inverse_dynamics is None:
        raise VidplanError(f'{method!r} needs an inverse dynamics model (inverse_dynamics=...)')
    if method == 'wav' and planner is None:
        raise VidplanError("'wav' needs the video planner (planner=...) to resample its noise")
    wm = world_model

    def gvp_wm(p: GroundingProblem, w: WarmStart | None) -> GroundingResult:
        t0 = time.perf_counter()
        w = w or p.warm_start
        if cfg.gvp_wm.prior_weight and inverse_dynamics is not None and (
                cfg.prior_source == 'inverse_dynamics'
                or (cfg.prior_source == 'auto' and p.action_prior is None)):
            p = replace(p, action_prior=_inverse_dynamics(p, wm, inverse_dynamics).actions)
        if cfg.gvp_wm.prior_weight and p.action_prior is not None:
            # the prior is made for this state: a better start than the previous solution
            w = shift_warm_start(policy_result(p, wm, 'gvp_wm'), 0)
        elif w is None and inverse_dynamics is not None and cfg.init_from_inverse_dynamics:
            w = shift_warm_start(_inverse_dynamics(p, wm, inverse_dynamics), 0)
        r = ground(p, wm, cfg.gvp_wm, w)
        return replace(r, compute_time_s=time.perf_counter() - t0)

    fns: dict[str, Callable[[GroundingProblem, WarmStart | None], GroundingResult]] = {
        'gvp_wm': gvp_wm,
        'collocation': lambda p, w: ground(p, wm, collocation_config(cfg.gvp_wm), w,
                                           method='collocation'),
        'inverse_dynamics': lambda p, w: _inverse_dynamics(p, wm, inverse_dynamics),
        'mpc_cem': lambda p, w: _cem(p, wm, cfg.mpc_cem, w),
        'mpc_gd': lambda p, w: _gd(p, wm, cfg.mpc_gd, w),
        'actions_only': lambda p, w: _actions_only(p, wm, cfg.actions_only, w),
        'wav': lambda p, w: _wav(p, wm, planner, inverse_dynamics, cfg.wav),
        'policy': lambda p, w: policy_result(p, wm),
    }
    return _Grounder(method, fns[method])


# --- methods ----------------------------------------------------------------------------------

def _shooting_cost(pt: ProblemTensors, Z: torch.Tensor, video_weight: float,
                   goal_weight: float, plan: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)`` cost of rollouts ``Z (B, H+1, D)``: goal and (optional) per-step video terms."""
    cost = goal_weight * (2 - 2 * cosine(Z[:, -1], pt.goal))
    if video_weight:
        ref = pt.plan if plan is None else plan
        cost = cost + video_weight * (2 - 2 * cosine(Z[:, 1:], ref)).sum(-1)
    return cost


def _initial_actions(pt: ProblemTensors, warm: WarmStart | None, H: int) -> torch.Tensor:
    if warm is None:
        return torch.zeros(H, pt.a_lo.shape[0], device=pt.z0.device).clamp(pt.a_lo, pt.a_hi)
    acts = torch.as_tensor(warm.actions[:H], dtype=torch.float32, device=pt.z0.device)
    if len(acts) < H:
        acts = torch.cat([acts, acts[-1:].expand(H - len(acts), -1)])
    return acts.clamp(pt.a_lo, pt.a_hi)


def _plan_actions(wm: WorldModel, inv: InverseDynamics, pt: ProblemTensors,
                  plans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse dynamics on consecutive frames of ``plans (B, H, D)``.

    Returns projected ``actions (B, H, A)`` and joints ``q (B, H+1, n)`` predicted along the
    plan frames by the world model.
    """
    B, H, _ = plans.shape
    frames = torch.cat([pt.z0.expand(B, 1, -1), plans], dim=1)
    q = pt.q0.expand(B, -1)
    acts, qs = [], [q]
    for t in range(H):
        a = inv(frames[:, t].reshape(B, *pt.latent_shape),
                frames[:, t + 1].reshape(B, *pt.latent_shape), q)
        a = project_actions(a, q, pt)
        _, q = step_flat(wm, frames[:, t], q, a, pt.latent_shape)
        acts.append(a)
        qs.append(q)
    return torch.stack(acts, 1), torch.stack(qs, 1)


@torch.no_grad()
def _inverse_dynamics(problem: GroundingProblem, wm: WorldModel,
                      inv: InverseDynamics | None) -> GroundingResult:
    t0 = time.perf_counter()
    assert inv is not None
    pt = to_tensors(problem, model_device(wm))
    acts, q = _plan_actions(wm, inv, pt, pt.plan[None])
    latents = torch.cat([pt.z0[None], pt.plan])
    return make_result('inverse_dynamics', wm, pt, acts[0], latents, q[0], t0, iterations=1)


@torch.no_grad()
def policy_result(problem: GroundingProblem, wm: WorldModel,
                  method: str = 'policy') -> GroundingResult:
    """``problem.action_prior`` projected into the bounds and rolled out by the world model
    (its latents are the committed trajectory, so the residual is 0 and the alignment says
    how far the policy's motion is from the video plan)."""
    t0 = time.perf_counter()
    if problem.action_prior is None:
        raise VidplanError("'policy' needs the planner's action prior: a model set trained "
                           'with planner.action_prior: true (e.g. franka_push)')
    pt = to_tensors(problem, model_device(wm))
    acts = torch.as_tensor(problem.action_prior, dtype=torch.float32, device=pt.z0.device)
    Z, Q, A = rollout(wm, pt, acts[None])
    return make_result(method, wm, pt, A[0], Z[0], Q[0], t0, iterations=1, rolled=Z[0])


@torch.no_grad()
def _cem(problem: GroundingProblem, wm: WorldModel, cfg: CemConfig,
         warm: WarmStart | None) -> GroundingResult:
    t0 = time.perf_counter()
    pt = to_tensors(problem, model_device(wm))
    H = problem.horizon
    scale = action_scale(wm, pt)
    mean = _initial_actions(pt, warm or problem.warm_start, H)
    std = (cfg.std_init * scale).expand(H, -1)
    gen = torch.Generator(device=mean.device).manual_seed(cfg.seed)
    best_cost, best = math.inf, None
    for _ in range(cfg.iterations):
        noise = torch.randn((cfg.samples - 1, *mean.shape), generator=gen, device=mean.device)
        cand = torch.cat([mean[None], mean + std * noise]).clamp(pt.a_lo, pt.a_hi)
        Z, Q, acts = rollout(wm, pt, cand)
        cost = _shooting_cost(pt, Z, cfg.video_weight, cfg.goal_weight)
        order = torch.argsort(cost)
        if float(cost[order[0]]) < best_cost:
            best_cost, best = float(cost[order[0]]), (acts[order[0]], Z[order[0]], Q[order[0]])
        elites = acts[order[:cfg.elites]]
        mean = elites.mean(0)
        std = elites.std(0, unbiased=False).maximum(cfg.std_min * scale)
    assert best is not None
    return make_result('mpc_cem', wm, pt, *best, t0, iterations=cfg.iterations, rolled=best[1])


def _gd(problem: GroundingProblem, wm: WorldModel, cfg: GdConfig,
        warm: WarmStart | None) -> GroundingResult:
    t0 = time.perf_counter()
    pt = to_tensors(problem, model_device(wm))
    scale = action_scale(wm, pt)
    U = (_initial_actions(pt, warm or problem.warm_start, problem.horizon) / scale)
    U.requires_grad_()
    opt = torch.optim.Adam([U], lr=cfg.lr)
    for _ in range(cfg.steps):
        Z, _, _ = rollout(wm, pt, (U * scale)[None])
        cost = _shooting_cost(pt, Z, cfg.video_weight, cfg.goal_weight).sum()
        (U.grad,) = torch.autograd.grad(cost, [U])
        opt.step()
        with torch.no_grad():
            U.copy_(torch.minimum(torch.maximum(U * scale, pt.a_lo), pt.a_hi) / scale)
    with torch.no_grad():
        Z, Q, acts = rollout(wm, pt, (U * scale)[None])
    return make_result('mpc_gd', wm, pt, acts[0], Z[0], Q[0], t0, iterations=cfg.steps,
                       rolled=Z[0])


def _actions_only(problem: GroundingProblem, wm: WorldModel, cfg: ActionsOnlyConfig,
                  warm: WarmStart | None) -> GroundingResult:
    t0 = time.perf_counter()
    pt = to_tensors(problem, model_device(wm))
    scale = action_scale(wm, pt)
    s_q = cfg.proprio_scale_rad
    U = (_initial_actions(pt, warm or problem.warm_start, problem.horizon) / scale)
    V = torch.zeros(problem.horizon, pt.q0.shape[0], device=U.device)
    U.requires_grad_()
    V.requires_grad_()
    opt = torch.optim.Adam([U, V], lr=cfg.lr)
    for _ in range(cfg.steps):
        A = U * scale
        c = constraints(wm, pt, pt.plan, joint_base(pt, A) + V * s_q, A, s_q)
        U.grad, V.grad = torch.autograd.grad(c.pow(2).sum(), [U, V])
        opt.step()
        with torch.no_grad():
            project_variables(pt, V, U, s_q, scale)
    with torch.no_grad():
        A = U * scale
        q = torch.cat([pt.q0[None], joint_base(pt, A) + V * s_q])
        latents = torch.cat([pt.z0[None], pt.plan])
    return make_result('actions_only', wm, pt, A, latents, q, t0, iterations=cfg.steps)


@torch.no_grad()
def _wav(problem: GroundingProblem, wm: WorldModel, planner: VideoPlanner | None,
         inv: InverseDynamics | None, cfg: WavConfig) -> GroundingResult:
    t0 = time.perf_counter()
    assert planner is not None and inv is not None
    pt = to_tensors(problem, model_device(wm))
    H = problem.horizon
    dev = pt.z0.device
    shape = tuple(planner.noise_shape(H))
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    mean, std = torch.zeros(shape, device=dev), torch.full(shape, cfg.std_init, device=dev)
    z0 = pt.z0.reshape(1, *pt.latent_shape)
    best_cost, best = math.inf, None
    for it in range(cfg.iterations):
        noise = mean + std * torch.randn((cfg.samples, *shape), generator=gen, device=dev)
        plans = planner.sample(z0.expand(cfg.samples, *pt.latent_shape),
                               pt.q0.expand(cfg.samples, -1), noise, cfg.planner_steps)
        plans = plans.reshape(cfg.samples, H, -1)
        if it == 0:  # the nominal plan competes too (its noise is unknown, so no refit)
            plans = torch.cat([pt.plan[None], plans])
            noise = torch.cat([noise[:1], noise])
        acts, _ = _plan_actions(wm, inv, pt, plans)
        Z, Q, acts = rollout(wm, pt, acts)
        cost = _shooting_cost(pt, Z, 0.0, cfg.goal_weight)
        cost = cost + cfg.video_weight * (2 - 2 * cosine(Z[:, 1:], plans)).sum(-1)
        order = torch.argsort(cost)
        k = int(order[0])
        if float(cost[k]) < best_cost:
            best_cost, best = float(cost[k]), (acts[k], Z[k], Q[k], plans[k])
        elite_idx = order[order >= (1 if it == 0 else 0)][:cfg.elites]
        elites = noise[elite_idx]
        mean = elites.mean(0)
        std = elites.std(0, unbiased=False).maximum(torch.tensor(cfg.std_min, device=dev))
    assert best is not None
    acts, Z, Q, plan = best
    return make_result('wav', wm, pt, acts, Z, Q, t0, iterations=cfg.iterations, plan=plan,
                       rolled=Z)
