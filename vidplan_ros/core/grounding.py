"""GVP-WM: ground a latent video plan in a world model by video-guided latent collocation.

Decision variables are the latents ``Z = z_1..z_H`` (``z_0`` is observed), the joint positions
``Q = q_1..q_H`` (``q_0`` is measured) and the actions ``A = a_0..a_{H-1}``. The problem is ::

    min   λv Σ_t ||φ(z_t) - φ(ẑ_t)||²  +  λg ||φ(z_H) - φ(g)||²               (video, goal)
        + λa Σ_t mean(u_t²)  +  λs Σ_t mean((u_{t+1} - u_t)²)                (action, smooth)
    s.t.  c_t = (z_{t+1} - f_z(z_t, q_t, a_t)) / ||z_0|| = 0                     (dynamics)
          d_t = (q_{t+1} - f_q(z_t, q_t, a_t)) / s_q = 0                         (proprio)
          a_t in the action box, q_t + a_t and q_t in the joint limits           (projection)

with ``φ(z) = z / ||z||`` (so the video only guides directions, never scale; ``||φ(a) - φ(b)||²
= 2 - 2 cos(a, b)``), ``u_t = a_t / s_a`` the action in units of its half-range and ``s_q =
proprio_scale_rad``. The augmented Lagrangian ``L = J + Σ <λ_t, (c_t, d_t)> + μ/2 Σ ||(c_t,
d_t)||²`` is minimised in outer iterations of ``inner_steps`` gradient steps (each followed by
the projection), after which ``λ <- λ + μ (c, d)`` and ``μ <- min(μ · growth, penalty_max)``. It
stops when ``max_t ||c_t|| <= tolerance`` and the proprio defect is within
``proprio_tolerance_rad``.

The inner steps are heavy-ball gradient steps preconditioned by the diagonal of the Gauss-Newton
curvature of ``L``: ``(2μ + 2λv) / D`` per latent entry (its own defect, the next step's defect
through ``f_z ≈ z + ...`` and the cosine term), ``2μ`` per joint entry, and per action entry
``μ ||∂(c_t, d_t)/∂u_t||²`` measured once per call by finite differences (one batched model
call). ``lr`` is thus a fraction of a Newton step: scale-free across latent sizes, robots and
penalties, and steps shrink as ``μ`` grows. Plain Adam with the same budget converges far worse
here (its first steps move every variable by ``lr`` whatever its gradient, which also undoes warm
starts). Variables live in scaled units (latents / rms(z_0), actions / half-range, joint
corrections / s_q; with joint-delta actions a joint variable is ``q_0 + Σ a`` plus a correction).

Optionally ``refine_samples`` action sequences sampled around the solution are rolled out and the
best by the same video/goal cost is kept (the result then commits to that rollout).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from vidplan_ros.core.config import require, require_one_of, require_positive
from vidplan_ros.core.grounding_types import (GroundingProblem, GroundingResult, ProblemTensors,
                                              WarmStart, WorldModel, cosine, fit_horizon,
                                              make_result, model_device, project_actions,
                                              rollout, step_flat, to_tensors)

LATENT_INITS = ('plan', 'interpolate')


@dataclass(frozen=True)
class GroundingConfig:
    """GVP-WM settings; horizon-agnostic (H comes from the video plan)."""

    video_weight: float = 1.0            # λv: cosine alignment of z_t to the video plan
    goal_weight: float = 0.0             # λg: cosine alignment of z_H to the goal latent
    action_weight: float = 0.0           # λa: action magnitude (units of the half-range)
    smooth_weight: float = 0.0           # λs: action change between steps
    outer_iterations: int = 6            # multiplier / penalty updates at most
    inner_steps: int = 8                 # gradient steps per outer iteration
    lr: float = 0.6                      # step as a fraction of the diagonal Newton step
    momentum: float = 0.5                # heavy-ball momentum of the inner steps
    penalty_init: float = 1.0            # μ of the first outer iteration
    penalty_growth: float = 4.0          # μ is multiplied by this after each outer iteration
    penalty_max: float = 1.0e5
    tolerance: float = 0.002             # stop at max_t ||c_t|| (relative to ||z_0||) below it
    proprio_tolerance_rad: float = 0.005  # ... and max |q defect| below it
    proprio_scale_rad: float = 0.05      # s_q: units of the proprio constraint and its variable
    latent_init: str = 'plan'            # cold start of Z: 'plan' or 'interpolate' (z_0 -> goal)
    refine_samples: int = 0              # 0 = no sampling refinement after the optimisation
    refine_std: float = 0.05             # refinement noise, fraction of the action half-range
    seed: int = 0                        # refinement sampling

    def __post_init__(self) -> None:
        for name in ('video_weight', 'goal_weight', 'action_weight', 'smooth_weight',
                     'refine_std'):
            value = getattr(self, name)
            require(math.isfinite(value) and value >= 0, name, value, 'a number >= 0')
        require(self.video_weight + self.goal_weight > 0, 'video_weight', self.video_weight,
                'video_weight or goal_weight > 0 (otherwise nothing guides the plan)')
        require(self.outer_iterations >= 1, 'outer_iterations', self.outer_iterations,
                'an integer >= 1')
        require(self.inner_steps >= 1, 'inner_steps', self.inner_steps, 'an integer >= 1')
        require_positive(self, 'lr', 'penalty_init', 'penalty_max', 'tolerance',
                         'proprio_tolerance_rad', 'proprio_scale_rad')
        require(self.penalty_growth >= 1 and math.isfinite(self.penalty_growth),
                'penalty_growth', self.penalty_growth, 'a factor >= 1 (geometric growth)')
        require(self.penalty_max >= self.penalty_init, 'penalty_max', self.penalty_max,
                'at least penalty_init')
        require(0 <= self.momentum < 1, 'momentum', self.momentum, 'a number in [0, 1)')
        require_one_of(self, 'latent_init', LATENT_INITS)
        require(self.refine_samples >= 0, 'refine_samples', self.refine_samples,
                'an integer >= 0 (0 = off)')


def ground(problem: GroundingProblem, world_model: WorldModel,
           cfg: GroundingConfig = GroundingConfig(), warm_start: WarmStart | None = None,
           method: str = 'gvp_wm') -> GroundingResult:
    """Ground ``problem.video_plan`` under ``world_model`` (see the module docstring).

    ``warm_start`` (else ``problem.warm_start``) is a previous result shifted by
    :func:`shift_warm_start`; it seeds the latents, joints, actions, multipliers and penalty.
    """
    t0 = time.perf_counter()
    wm = world_model
    pt = to_tensors(problem, model_device(wm))
    H, D = pt.plan.shape
    warm = warm_start if warm_start is not None else problem.warm_start
    z_unit = pt.z0.norm().clamp_min(1e-6) / math.sqrt(D)
    a_scale = (pt.a_hi - pt.a_lo) / 2
    q_scale = cfg.proprio_scale_rad
    Z, Q, A, lam, mu = _initial_guess(wm, pt, cfg, warm)
    n, n_a = Q.shape[1], A.shape[1]
    # One flat variable X = [Y | V | U] (latents, joint corrections, actions; scaled units).
    X = torch.cat([(Z / z_unit).flatten(), ((Q - joint_base(pt, A)) / q_scale).flatten(),
                   (A / a_scale).flatten()]).requires_grad_()
    Y, V, U = X[:H * D].view(H, D), X[H * D:H * (D + n)].view(H, n), X[H * (D + n):].view(H, n_a)
    action_gain = _action_gain(wm, pt, Z, Q, A, a_scale, q_scale)
    velocity = torch.zeros_like(X)
    penalties: list[float] = []
    for _ in range(cfg.outer_iterations):
        penalties.append(mu)
        precondition = _preconditioner(cfg, mu, H, D, n, action_gain)
        for _ in range(cfg.inner_steps):
            A = U * a_scale
            c = constraints(wm, pt, Y * z_unit, joint_base(pt, A) + V * q_scale, A, q_scale)
            loss = (_cost(cfg, pt, Y, U) + (lam * c).sum() + 0.5 * mu * c.pow(2).sum())
            (grad,) = torch.autograd.grad(loss, [X])
            with torch.no_grad():
                velocity.mul_(cfg.momentum).sub_(precondition(grad))
                X.add_(velocity)
                project_variables(pt, V, U, q_scale, a_scale)
        with torch.no_grad():  # defects of the last step's iterate (saves a model call)
            c = c.detach()
            lam = lam + mu * c
            dyn = c[:, :D].norm(dim=-1).max()
            prop = c[:, D:].abs().max() * q_scale if n else torch.zeros(())
            done = bool(dyn <= cfg.tolerance) and bool(prop <= cfg.proprio_tolerance_rad)
        if done:
            break
        mu = min(mu * cfg.penalty_growth, cfg.penalty_max)
    with torch.no_grad():
        A = U.detach() * a_scale
        latents = torch.cat([pt.z0[None], Y.detach() * z_unit])
        q = torch.cat([pt.q0[None], joint_base(pt, A) + V.detach() * q_scale])
        if cfg.refine_samples:
            A, latents, q = _refine(wm, pt, cfg, A, a_scale)
    return make_result(method, wm, pt, A, latents, q, t0, iterations=len(penalties) *
                       cfg.inner_steps, outer_iterations=len(penalties),
                       penalties=tuple(penalties), multipliers=lam)


def shift_warm_start(result: GroundingResult, steps_executed: int) -> WarmStart:
    """``result`` advanced by ``steps_executed`` plan steps, padded at the end to its horizon.

    Actions, latents and joints drop their first ``steps_executed`` rows and repeat their last;
    multipliers drop theirs and pad with zeros. The penalty carries over.
    """
    H = len(result.actions)
    k = min(max(int(steps_executed), 0), H)
    mult = None
    if result.multipliers is not None:
        mult = np.zeros_like(result.multipliers)
        mult[:H - k] = result.multipliers[k:]
    return WarmStart(actions=fit_horizon(result.actions[min(k, H - 1):], H),
                     latents=fit_horizon(result.latents[k:], H + 1),
                     q=fit_horizon(result.q_pred[k:], H + 1), multipliers=mult,
                     penalty=result.penalties[-1] if result.penalties else None)


# --- pieces -----------------------------------------------------------------------------------

def _preconditioner(cfg: GroundingConfig, mu: float, H: int, D: int, n: int,
                    action_gain: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``g -> lr · P g`` with ``P`` the inverse of an approximate Gauss-Newton curvature of ``L``.

    Latents and joints: the time chain ``c_t = y_{t+1} - y_t - ...`` with ``∂f/∂z ≈ I`` gives
    ``μ T`` (``T`` tridiagonal: 2 on the diagonal, 1 at the end, -1 beside it) plus the cosine
    terms ``2 λ / ||y||²``; its ``(H, H)`` inverse acts along time, so a defect anywhere moves
    the whole chain in one step. Actions: diagonal ``μ ||∂(c_t, d_t)/∂u_t||²`` + regularisers.
    """
    dev = action_gain.device
    T = 2 * torch.eye(H, device=dev) - torch.diag(torch.ones(H - 1, device=dev), 1)
    T = T - torch.diag(torch.ones(H - 1, device=dev), -1)
    T[-1, -1] = 1.0
    align = torch.full((H,), 2 * cfg.video_weight, device=dev)
    align[-1] += 2 * cfg.goal_weight
    P_latent = cfg.lr * D * torch.linalg.inv(mu * T + torch.diag(align).clamp_min(1e-6 * mu))
    P_joint = cfg.lr * torch.linalg.inv(mu * T)
    n_a = action_gain.shape[1]
    act = mu * action_gain + (2 * cfg.action_weight + 4 * cfg.smooth_weight) / n_a
    P_action = (cfg.lr / act.clamp_min(1e-6)).flatten()
    ny = H * D

    def apply(g: torch.Tensor) -> torch.Tensor:
        return torch.cat([(P_latent @ g[:ny].view(H, D)).flatten(),
                          (P_joint @ g[ny:ny + H * n].view(H, n)).flatten(),
                          P_action * g[ny + H * n:]])
    return apply


def _action_gain(wm: WorldModel, pt: ProblemTensors, Z: torch.Tensor, Q: torch.Tensor,
                 A: torch.Tensor, a_scale: torch.Tensor, q_scale: float) -> torch.Tensor:
    """``(H, A)``: ``||∂(c_t, d_t)/∂u_t||²`` per action entry by forward differences.

    One model call on ``H (A + 1)`` rows; for joint-delta actions the commanded part of the joint
    motion is taken out, as the joint variables already follow it.
    """
    H, n_a = A.shape
    eps = 0.1
    with torch.no_grad():
        z_prev = torch.cat([pt.z0[None], Z[:-1]])[:, None].expand(H, n_a + 1, -1)
        q_prev = torch.cat([pt.q0[None], Q[:-1]])[:, None].expand(H, n_a + 1, -1)
        nudge = torch.cat([torch.zeros(1, n_a, device=A.device), torch.diag(eps * a_scale)])
        a = A[:, None] + nudge
        zn, qn = step_flat(wm, z_prev.reshape(-1, Z.shape[1]), q_prev.reshape(-1, Q.shape[1]),
                           a.reshape(-1, n_a), pt.latent_shape)
        zn, qn = zn.view(H, n_a + 1, -1), qn.view(H, n_a + 1, -1)
        dz = (zn[:, 1:] - zn[:, :1]).norm(dim=-1) / pt.z0.norm().clamp_min(1e-12)
        n = Q.shape[1]
        dq = qn[:, 1:] - qn[:, :1] - (nudge[1:, :n] if pt.joint_delta and n_a >= n else 0)
        return (dz.pow(2) + (dq.norm(dim=-1) / q_scale).pow(2)) / eps ** 2

def _initial_guess(wm: WorldModel, pt: ProblemTensors, cfg: GroundingConfig,
                   warm: WarmStart | None) -> tuple[torch.Tensor, ...]:
    """``Z (H, D)``, ``Q (H, n)``, ``A (H, A)``, multipliers ``(H, D + n)`` and μ."""
    H, D = pt.plan.shape
    n = pt.q0.shape[0]
    dev = pt.z0.device

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=dev)
    if warm is not None:
        A = t(fit_horizon(warm.actions, H))
        Z = t(fit_horizon(warm.latents[1:], H)).reshape(H, D)
        Q = t(fit_horizon(warm.q[1:], H))
        lam = torch.zeros(H, D + n, device=dev)
        if warm.multipliers is not None and warm.multipliers.shape[1:] == (D + n,):
            lam = t(fit_horizon(warm.multipliers, H))
        mu = cfg.penalty_init
        if warm.penalty is not None:
            mu = min(max(cfg.penalty_init, warm.penalty / cfg.penalty_growth), cfg.penalty_max)
        return Z, Q, A, lam, mu
    A = torch.zeros(H, pt.a_lo.shape[0], device=dev).clamp(pt.a_lo, pt.a_hi)
    with torch.no_grad():
        _, q, A = rollout(wm, pt, A[None])
    if cfg.latent_init == 'plan':
        Z = pt.plan.clone()
    else:
        w = torch.arange(1, H + 1, device=dev, dtype=torch.float32)[:, None] / H
        Z = pt.z0 + w * (pt.goal - pt.z0)
    return Z, q[0, 1:], A[0], torch.zeros(H, D + n, device=dev), cfg.penalty_init


def constraints(wm: WorldModel, pt: ProblemTensors, Z: torch.Tensor, Q: torch.Tensor,
                A: torch.Tensor, q_scale: float) -> torch.Tensor:
    """Scaled defects ``(H, D + n)``: ``(c_t, d_t)`` of every step in one batched model call."""
    z_prev = torch.cat([pt.z0[None], Z[:-1]])
    q_prev = torch.cat([pt.q0[None], Q[:-1]])
    z_next, q_next = step_flat(wm, z_prev, q_prev, A, pt.latent_shape)
    return torch.cat([(Z - z_next) / pt.z0.norm().clamp_min(1e-12),
                      (Q - q_next) / q_scale], dim=-1)


def _cost(cfg: GroundingConfig, pt: ProblemTensors, Z: torch.Tensor,
          U: torch.Tensor) -> torch.Tensor:
    """Objective ``J`` for latents ``Z (..., H, D)`` and scaled actions ``U (..., H, A)``."""
    J = torch.zeros(Z.shape[:-2], device=Z.device)
    if cfg.video_weight:
        J = J + cfg.video_weight * (2 - 2 * cosine(Z, pt.plan)).sum(-1)
    if cfg.goal_weight:
        J = J + cfg.goal_weight * (2 - 2 * cosine(Z[..., -1, :], pt.goal))
    if cfg.action_weight:
        J = J + cfg.action_weight * U.pow(2).mean(-1).sum(-1)
    if cfg.smooth_weight and U.shape[-2] > 1:
        J = J + cfg.smooth_weight * (U[..., 1:, :] - U[..., :-1, :]).pow(2).mean(-1).sum(-1)
    return J


def joint_base(pt: ProblemTensors, A: torch.Tensor) -> torch.Tensor:
    """``(H, n)`` joints the variables are measured from: ``q_0 + Σ_{s<t} a_s`` for joint-delta
    actions (so ``V`` is only the model's correction to the commanded motion), else ``q_0``."""
    n = pt.q0.shape[0]
    if not pt.joint_delta or A.shape[-1] < n:
        return pt.q0.expand(A.shape[0], n)
    return pt.q0 + torch.cumsum(A[:, :n], dim=0)


def project_variables(pt: ProblemTensors, V: torch.Tensor, U: torch.Tensor, q_scale: float,
                      a_scale: torch.Tensor) -> None:
    """In place: actions into the box and the joint limits, then joints into their limits."""
    A = U * a_scale
    Q = joint_base(pt, A) + V * q_scale
    A = project_actions(A, torch.cat([pt.q0[None], Q[:-1]]), pt)
    U.copy_(A / a_scale)
    if pt.q_lo is not None and pt.q_hi is not None:
        base = joint_base(pt, A)
        V.copy_((torch.minimum(torch.maximum(base + V * q_scale, pt.q_lo), pt.q_hi) - base)
                / q_scale)


def _refine(wm: WorldModel, pt: ProblemTensors, cfg: GroundingConfig, A: torch.Tensor,
            a_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best rollout among ``A`` and ``refine_samples`` Gaussian perturbations of it."""
    gen = torch.Generator(device=A.device).manual_seed(cfg.seed)
    noise = torch.randn((cfg.refine_samples, *A.shape), generator=gen, device=A.device)
    cand = torch.cat([A[None], A + noise * cfg.refine_std * a_scale])
    Z, Q, acts = rollout(wm, pt, cand)
    best = int(torch.argmin(_cost(cfg, pt, Z[:, 1:], acts / a_scale)))
    return acts[best], Z[best], Q[best]


def collocation_config(cfg: GroundingConfig) -> GroundingConfig:
    """The same solver without video guidance: λv = 0, goal term on, latents interpolated."""
    return replace(cfg, video_weight=0.0, goal_weight=cfg.goal_weight or 1.0,
                   latent_init='interpolate')
