"""GVP-WM: ground a latent video plan in a world model by video-guided latent collocation.

Decision variables are the latents ``Z = z_1..z_H`` (``z_0`` is observed), the joint positions
``Q = q_1..q_H`` (``q_0`` is measured) and the actions ``A = a_0..a_{H-1}``. The problem is ::

    min   λv Σ_t ||φ(z_t) - φ(ẑ_t)||²  +  λg ||φ(z_H) - φ(g)||²               (video, goal)
        + λa Σ_t mean(u_t²)  +  λs Σ_t mean((u_{t+1} - u_t)²)                (action, smooth)
        + λp Σ_t mean((u_t - ū_t)²)                                          (action prior)
    s.t.  c_t = (z_{t+1} - f_z(z_t, q_t, a_t)) / ||z_0|| = 0                     (dynamics)
          d_t = (q_{t+1} - f_q(z_t, q_t, a_t)) / s_q = 0                         (proprio)
          a_t in the action box, q_t + a_t and q_t in the joint limits           (projection)

with ``φ(z) = z / ||z||`` (so the video only guides directions, never scale; ``||φ(a) - φ(b)||²
= 2 - 2 cos(a, b)``), ``u_t = a_t / s_a`` the action in units of its typical size
(:func:`action_scale`) and ``s_q = proprio_scale_rad``. The augmented Lagrangian ``L = J + Σ <λ_t,
(c_t, d_t)> + μ/2 Σ ||(c_t, d_t)||²`` is minimised in outer iterations of ``inner_steps``
gradient steps (each followed by the projection); then ``λ <- λ + μ (c, d)`` and ``μ <- min(μ ·
penalty_growth, penalty_max)``. It stops when ``max_t ||c_t|| <= tolerance`` and the largest
joint defect is within ``proprio_tolerance_rad``, or after ``outer_iterations``.

Inner steps are heavy-ball steps preconditioned by a block-diagonal Gauss-Newton curvature of
``L`` (:func:`_preconditioner`; the model's local gains, including the ``(A, A)`` Gram matrix of
its action Jacobian, come from one batched finite-difference call), so ``lr`` is a fraction of a
Newton step: the same value suits any latent size, robot and penalty, and steps shrink as ``μ``
grows. A step that raises ``L`` is undone and the step halved. Plain Adam converged far worse on
the same budget: its first steps move every variable by ``lr`` whatever its gradient, which also
wrecks warm starts. Variables live in scaled units (latents /
rms(z_0), actions / s_a, joint corrections / s_q; with joint-delta actions a joint variable is
``q_0 + Σ_{s<t} a_s`` plus a correction, so the joints follow the commanded motion for free).

With ``refine`` (the default) the solution, the starting actions (warm start or inverse
dynamics) and ``refine_samples`` Gaussian perturbations of the solution are rolled out by the
model in one batch and the best by the same video/goal cost is returned, committed to its
rollout (so its residual is 0 and its alignment is the rollout's). Within a real-time budget the
collocation is rarely converged on a trained model and its residuals compound over an open-loop
rollout; this keeps the answer at least as good, by the model, as where it started.

With ``prior_weight`` λp > 0 and a problem that carries an ``action_prior`` ``ā`` (the actions
the planner's policy head proposes, which its video plan was conditioned on; ``ū = ā / s_a``),
the solver also stays near those actions, and the grounder starts from them at every replan
(``baselines.make_grounder``). On franka/push the learned video plans are too noisy to carry the
action (results/eval/planner_diagnosis): grounding them alone, started from the prior, pushed
0/20 tuning episodes; on the unseen seeds 20000-20049 anchored at λp = 0.15 6/50 and at λp = 2
10/50, the prior alone 12/50, inverse dynamics on the plan 7/50. Without a head the grounder
can hand in inverse dynamics' reading of the plan as the prior (``GrounderConfig.prior_source``):
on g1/reach that took GVP-WM from 57 to 67 of 100 tuning seeds (inverse dynamics alone 66).
Problems without a prior are solved as before.
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
WARM_LATENTS = ('plan', 'previous')


@dataclass(frozen=True)
class GroundingConfig:
    """GVP-WM settings; horizon-agnostic (H comes from the video plan)."""

    video_weight: float = 1.0            # λv: cosine alignment of z_t to the video plan
    goal_weight: float = 0.0             # λg: cosine alignment of z_H to the goal latent
    action_weight: float = 0.0           # λa: action magnitude (units of s_a)
    smooth_weight: float = 0.0           # λs: action change between steps
    prior_weight: float = 2.0            # λp: distance to the problem's action_prior (in s_a)
    outer_iterations: int = 1            # multiplier / penalty updates at most (real time: 1)
    inner_steps: int = 3                 # gradient steps per outer iteration (real time: 3)
    lr: float = 0.6                      # step as a fraction of the diagonal Newton step
    momentum: float = 0.5                # heavy-ball momentum of the inner steps
    penalty_init: float = 0.3            # μ of the first outer iteration
    penalty_growth: float = 4.0          # μ is multiplied by this after each outer iteration
    penalty_max: float = 1.0e5
    tolerance: float = 0.002             # stop at max_t ||c_t|| (relative to ||z_0||) below it
    proprio_tolerance_rad: float = 0.005  # ... and max |q defect| below it
    proprio_scale_rad: float = 0.05      # s_q: units of the proprio constraint and its variable
    latent_init: str = 'plan'            # cold start of Z: 'plan' or 'interpolate' (z_0 -> goal)
    warm_latents: str = 'plan'           # warm start of Z: 'plan' or 'previous' (the shifted Z)
    # A frame that repeats the one before it (a stutter, or a lost frame held) says nothing
    # about where the motion is at that step: it drops out of the video term, and the rollout
    # may pass through the gap at its own pace. franka_reach under frame_drop: 45/50 against
    # 41/50 (results/eval/franka_reach_corruptions).
    skip_repeated_frames: bool = True
    refine: bool = True                  # commit to the best rollout: solution, start, samples
    refine_samples: int = 0              # Gaussian perturbations of the solution to try too
    refine_std: float = 0.05             # refinement noise, in units of s_a
    seed: int = 0                        # refinement sampling

    def __post_init__(self) -> None:
        for name in ('video_weight', 'goal_weight', 'action_weight', 'smooth_weight',
                     'prior_weight', 'refine_std'):
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
        require_one_of(self, 'warm_latents', WARM_LATENTS)
        require(self.refine_samples >= 0, 'refine_samples', self.refine_samples,
                'an integer >= 0 (0 = off)')


def ground(problem: GroundingProblem, world_model: WorldModel,
           cfg: GroundingConfig = GroundingConfig(), warm_start: WarmStart | None = None,
           method: str = 'gvp_wm') -> GroundingResult:
    """Ground ``problem.video_plan`` under ``world_model`` (see the module docstring).

    ``warm_start`` (else ``problem.warm_start``) is a previous result shifted by
    :func:`shift_warm_start`; it seeds the latents, joints and actions.
    """
    t0 = time.perf_counter()
    wm = world_model
    pt = to_tensors(problem, model_device(wm))
    H, D = pt.plan.shape
    warm = warm_start if warm_start is not None else problem.warm_start
    z_unit = pt.z0.norm().clamp_min(1e-6) / math.sqrt(D)
    a_scale = action_scale(wm, pt)
    q_scale = cfg.proprio_scale_rad
    Z, Q, A = _initial_guess(wm, pt, cfg, warm)
    u_prior = None if not cfg.prior_weight or problem.action_prior is None else (
        torch.as_tensor(problem.action_prior, dtype=torch.float32, device=Z.device) / a_scale)
    n, n_a, A_start = Q.shape[1], A.shape[1], A.clone()
    lam, mu = torch.zeros(H, D + n, device=Z.device), cfg.penalty_init
    # One flat variable X = [Y | V | U] (latents, joint corrections, actions; scaled units).
    X = torch.cat([(Z / z_unit).flatten(), ((Q - joint_base(pt, A)) / q_scale).flatten(),
                   (A / a_scale).flatten()]).requires_grad_()
    Y, V, U = X[:H * D].view(H, D), X[H * D:H * (D + n)].view(H, n), X[H * (D + n):].view(H, n_a)
    gains = _gains(wm, pt, A[0], a_scale, q_scale)
    w_video = video_weights(cfg, pt)
    velocity, best = torch.zeros_like(X), _Iterate(X)
    penalties: list[float] = []
    shrink, evaluations, done = 1.0, 0, False
    for _ in range(cfg.outer_iterations):
        penalties.append(mu)
        precondition = _preconditioner(cfg, mu, H, D, n, *gains, w_video,
                                       prior=u_prior is not None)
        best.loss = math.inf
        for _ in range(cfg.inner_steps):
            A = U * a_scale
            c = constraints(wm, pt, Y * z_unit, joint_base(pt, A) + V * q_scale, A, q_scale)
            loss = (_cost(cfg, pt, Y, U, u_prior, w_video) + (lam * c).sum()
                    + 0.5 * mu * c.pow(2).sum())
            evaluations += 1
            if best.accepts(float(loss.detach())):
                (grad,) = torch.autograd.grad(loss, [X])
                best.store(X, grad, c.detach(), float(loss.detach()))
                shrink = min(1.0, shrink * 1.5)
                done = _feasible(cfg, best.c, D, q_scale)
                if done:
                    break
            else:  # the step made things worse: back to the last good iterate, half the step
                X.data.copy_(best.x)
                velocity.zero_()
                shrink *= 0.5
            with torch.no_grad():
                velocity.mul_(cfg.momentum).sub_(shrink * precondition(best.grad))
                X.add_(velocity)
                project_variables(pt, V, U, q_scale, a_scale)
        if done or best.c.numel() == 0:  # feasible, or nothing finite to work with
            break
        lam = lam + mu * best.c
        mu = min(mu * cfg.penalty_growth, cfg.penalty_max)
    with torch.no_grad():
        X.copy_(best.x)  # the last evaluated iterate (the one the stopping test saw)
        A = U.detach() * a_scale
        latents = torch.cat([pt.z0[None], Y.detach() * z_unit])
        q = torch.cat([pt.q0[None], joint_base(pt, A) + V.detach() * q_scale])
        rolled = None
        if cfg.refine:
            A, latents, q = _refine(wm, pt, cfg, torch.stack([A, A_start]), a_scale, u_prior,
                                    w_video)
            rolled = latents
    return make_result(method, wm, pt, A, latents, q, t0, iterations=evaluations,
                       outer_iterations=len(penalties), penalties=tuple(penalties),
                       rolled=rolled)


def shift_warm_start(result: GroundingResult, steps_executed: int) -> WarmStart:
    """``result`` advanced by ``steps_executed`` plan steps, padded at the end to its horizon.

    Actions, latents and joints drop their first ``steps_executed`` rows and repeat their last.
    Only the primal solution carries over: multipliers fitted to the previous problem (and the
    penalty they go with) pull a new, slightly different problem the wrong way.
    """
    H = len(result.actions)
    k = min(max(int(steps_executed), 0), H)
    return WarmStart(valid_steps=H - k, actions=fit_horizon(result.actions[min(k, H - 1):], H),
                     latents=fit_horizon(result.latents[k:], H + 1),
                     q=fit_horizon(result.q_pred[k:], H + 1))


# --- pieces -----------------------------------------------------------------------------------

def action_scale(wm: WorldModel, pt: ProblemTensors) -> torch.Tensor:
    """``(A,)`` typical action size: the model's ``action_scale`` if it has one (e.g. the std of
    its training actions), else the half-range of the action box."""
    scale = getattr(wm, 'action_scale', None)
    if scale is None:
        return (pt.a_hi - pt.a_lo) / 2
    return torch.as_tensor(scale, dtype=torch.float32, device=pt.z0.device).clamp_min(1e-9)


class _Iterate:
    """The last accepted iterate: position, gradient, defects and Lagrangian value."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x, self.grad = x.detach().clone(), torch.zeros_like(x)
        self.c: torch.Tensor = torch.zeros(0)
        self.loss = math.inf

    def accepts(self, loss: float) -> bool:
        """A finite value not clearly above the last accepted one (momentum may climb a bit)."""
        return math.isfinite(loss) and (self.loss == math.inf
                                         or loss <= self.loss + 0.05 * abs(self.loss) + 1e-9)

    def store(self, x: torch.Tensor, grad: torch.Tensor, c: torch.Tensor, loss: float) -> None:
        self.x.copy_(x.detach())
        self.grad, self.c, self.loss = grad, c, loss


def _gains(wm: WorldModel, pt: ProblemTensors, a0: torch.Tensor, a_scale: torch.Tensor,
           q_scale: float) -> tuple[float, torch.Tensor]:
    """Local gains of the model at ``(z_0, q_0, a_0)`` by forward differences, one model call on
    ``2 + A`` rows.

    Returns ``s = ||J_z r|| / ||r||`` for a random ``r`` (how a latent change carries into the
    next step) and ``(A,)`` ``||∂(c_t, d_t)/∂u_j||²`` per scaled action entry (for joint-delta
    actions without the commanded joint motion, which the joint variables already follow).
    """
    n_a, n, D = a0.shape[0], pt.q0.shape[0], pt.z0.shape[0]
    eps, dev = 0.1, a0.device
    with torch.no_grad():
        r = torch.randn(D, generator=torch.Generator(device=dev).manual_seed(0), device=dev)
        r *= eps * pt.z0.norm().clamp_min(1e-6) / r.norm()
        da = torch.cat([torch.zeros(2, n_a, device=dev), torch.diag(eps * a_scale)])
        z = pt.z0.expand(2 + n_a, D).clone()
        z[1] += r
        zn, qn = step_flat(wm, z, pt.q0.expand(2 + n_a, n), a0 + da, pt.latent_shape)
        s = float((zn[1] - zn[0]).norm() / r.norm())
        dq = qn[2:] - qn[:1]
        if pt.joint_delta and n_a >= n:
            dq -= da[2:, :n]
        cols = torch.cat([(zn[2:] - zn[:1]) / pt.z0.norm().clamp_min(1e-12), dq / q_scale], 1)
        gram = cols @ cols.T / eps ** 2
    return s, gram


def video_weights(cfg: GroundingConfig, pt: ProblemTensors) -> torch.Tensor:
    """``(H,)`` weight of each plan frame in the video term (`skip_repeated_frames`)."""
    w = torch.full((pt.plan.shape[0],), cfg.video_weight, device=pt.plan.device)
    if cfg.skip_repeated_frames:
        prev = torch.cat([pt.z0[None], pt.plan[:-1]])
        step = (pt.plan - prev).norm(dim=-1)
        # exact repeats (a held frame) up to float error of the latent's size
        w = torch.where(step <= 1e-5 * pt.z0.norm().clamp_min(1e-12), torch.zeros_like(w), w)
    return w


def _preconditioner(cfg: GroundingConfig, mu: float, H: int, D: int, n: int, s: float,
                    gram: torch.Tensor, video: torch.Tensor, prior: bool = False
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``g -> lr · P g``, ``P`` the inverse of a block-structured Gauss-Newton curvature of ``L``
    in the flat ``[Y | V | U]`` layout.

    Latents: the time chain ``c_t = y_{t+1} - f(y_t)`` with ``∂f/∂z ≈ s I`` gives ``μ T / D``,
    ``T`` tridiagonal (``1 + s²`` on the diagonal, 1 at the end, ``-s`` beside it), plus the
    cosine terms ``2 λ / D``; its ``(H, H)`` inverse acts along time, so a defect anywhere moves
    the whole chain at once. Joints: ``2 μ`` per entry (``μ`` at the end). Actions of one step:
    the ``(A, A)`` block ``μ G`` + regularisers, ``G = Jᵀ J`` of ``(c_t, d_t)`` in ``u_t``
    (action dimensions often move the image alike, so a diagonal is far too crude: on a trained
    model it converged to rollouts several times further from the plan).
    """
    dev, n_a = gram.device, gram.shape[0]
    off = torch.ones(H - 1, device=dev)
    T = torch.diag(torch.full((H,), 1 + s * s, device=dev)) - s * (off.diag(1) + off.diag(-1))
    T[-1, -1] = 1.0
    align = 2 * video                    # (H,) the frames' weights (`video_weights`)
    align[-1] += 2 * cfg.goal_weight
    P_latent = cfg.lr * D * torch.linalg.inv(mu * T + torch.diag(align + 1e-6 * mu))
    joint = torch.full((H, n), 2 * mu, device=dev)
    joint[-1] = mu
    P_joint = cfg.lr / joint.flatten()
    reg = (2 * cfg.action_weight + 4 * cfg.smooth_weight + 2 * cfg.prior_weight * prior) / n_a
    curv = mu * gram + (reg + 1e-6 * mu * float(gram.diagonal().mean()) + 1e-9) * torch.eye(
        n_a, device=dev)
    P_action = cfg.lr * torch.linalg.inv(curv)
    ny, nq = H * D, H * n

    def apply(g: torch.Tensor) -> torch.Tensor:
        return torch.cat([(P_latent @ g[:ny].view(H, D)).flatten(), P_joint * g[ny:ny + nq],
                          (g[ny + nq:].view(H, n_a) @ P_action).flatten()])
    return apply


def _feasible(cfg: GroundingConfig, c: torch.Tensor, D: int, q_scale: float) -> bool:
    """The stopping test on scaled defects ``c (H, D + n)``."""
    if bool(c[:, :D].norm(dim=-1).max() > cfg.tolerance):
        return False
    return c.shape[1] == D or bool(c[:, D:].abs().max() * q_scale <= cfg.proprio_tolerance_rad)


def _initial_guess(wm: WorldModel, pt: ProblemTensors, cfg: GroundingConfig,
                   warm: WarmStart | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``Z (H, D)``, ``Q (H, n)``, ``A (H, A)``.

    Cold: the plan (or the line to the goal), zero actions (clipped into the box) and the joints
    the model predicts for them. Warm: the shifted actions and joints, their padded tail rolled
    on by the model, and the plan (or the shifted latents, ``warm_latents``): starting on the new
    plan with nearly right actions converged faster than starting from the old latents, whose
    tail must then slide along the feasible set towards the new plan.
    """
    H, D = pt.plan.shape
    dev = pt.z0.device
    if warm is None:
        A = torch.zeros(H, pt.a_lo.shape[0], device=dev).clamp(pt.a_lo, pt.a_hi)
        if cfg.latent_init == 'plan':
            Z = pt.plan.clone()
        else:
            w = torch.arange(1, H + 1, device=dev, dtype=torch.float32)[:, None] / H
            Z = pt.z0 + w * (pt.goal - pt.z0)
        with torch.no_grad():
            _, Q, A = rollout(wm, pt, A[None])
        return Z, Q[0, 1:], A[0]

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=dev)
    A = t(fit_horizon(warm.actions, H)).clamp(pt.a_lo, pt.a_hi)
    Z = t(fit_horizon(warm.latents[1:], H)).reshape(H, D)
    Q = t(fit_horizon(warm.q[1:], H))
    valid = H if warm.valid_steps is None else max(0, min(warm.valid_steps, H))
    with torch.no_grad():  # padded tail: roll the model on, so the guess stays feasible
        for k in range(valid, H):
            z = Z[k - 1:k] if k else pt.z0[None]
            q = Q[k - 1:k] if k else pt.q0[None]
            z, q = step_flat(wm, z, q, A[k:k + 1], pt.latent_shape)
            Z[k], Q[k] = z[0], q[0]
    if cfg.warm_latents == 'plan':
        Z = pt.plan.clone()
    return Z, Q, A


def constraints(wm: WorldModel, pt: ProblemTensors, Z: torch.Tensor, Q: torch.Tensor,
                A: torch.Tensor, q_scale: float) -> torch.Tensor:
    """Scaled defects ``(H, D + n)``: ``(c_t, d_t)`` of every step in one batched model call."""
    z_prev = torch.cat([pt.z0[None], Z[:-1]])
    q_prev = torch.cat([pt.q0[None], Q[:-1]])
    z_next, q_next = step_flat(wm, z_prev, q_prev, A, pt.latent_shape)
    return torch.cat([(Z - z_next) / pt.z0.norm().clamp_min(1e-12),
                      (Q - q_next) / q_scale], dim=-1)


def _cost(cfg: GroundingConfig, pt: ProblemTensors, Z: torch.Tensor, U: torch.Tensor,
          u_prior: torch.Tensor | None, video: torch.Tensor) -> torch.Tensor:
    """Objective ``J`` for latents ``Z (..., H, D)`` and scaled actions ``U (..., H, A)``;
    ``u_prior (H, A)`` the scaled action prior when its term is on; ``video (H,)`` the
    frames' weights (`video_weights`)."""
    J = torch.zeros(Z.shape[:-2], device=Z.device)
    if cfg.video_weight:
        J = J + (video * (2 - 2 * cosine(Z, pt.plan))).sum(-1)
    if cfg.goal_weight:
        J = J + cfg.goal_weight * (2 - 2 * cosine(Z[..., -1, :], pt.goal))
    if cfg.action_weight:
        J = J + cfg.action_weight * U.pow(2).mean(-1).sum(-1)
    if cfg.smooth_weight and U.shape[-2] > 1:
        J = J + cfg.smooth_weight * (U[..., 1:, :] - U[..., :-1, :]).pow(2).mean(-1).sum(-1)
    if u_prior is not None:
        J = J + cfg.prior_weight * (U - u_prior).pow(2).mean(-1).sum(-1)
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


def _refine(wm: WorldModel, pt: ProblemTensors, cfg: GroundingConfig, cand: torch.Tensor,
            a_scale: torch.Tensor, u_prior: torch.Tensor | None, video: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best rollout (by the solver's cost) among the candidate action sequences ``cand
    (K, H, A)`` (the solution first, then the starting guess) and ``refine_samples`` Gaussian
    perturbations of the solution."""
    A = cand[0]
    gen = torch.Generator(device=A.device).manual_seed(cfg.seed)
    noise = torch.randn((cfg.refine_samples, *A.shape), generator=gen, device=A.device)
    cand = torch.cat([cand, A + noise * cfg.refine_std * a_scale])
    Z, Q, acts = rollout(wm, pt, cand)
    best = int(torch.argmin(_cost(cfg, pt, Z[:, 1:], acts / a_scale, u_prior, video)))
    return acts[best], Z[best], Q[best]


def collocation_config(cfg: GroundingConfig) -> GroundingConfig:
    """The same solver without video guidance: λv = 0, goal term on, latents interpolated."""
    return replace(cfg, video_weight=0.0, goal_weight=cfg.goal_weight or 1.0, prior_weight=0.0,
                   latent_init='interpolate', warm_latents='previous')
