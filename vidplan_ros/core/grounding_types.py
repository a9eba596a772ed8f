"""What grounding optimizers consume and produce, and the one way their output is scored.

Grounding turns a latent video plan (imagined future latents) into actions that a learned,
action-conditioned world model says are feasible. Every method (GVP-WM and the baselines) takes a
:class:`GroundingProblem` and returns a :class:`GroundingResult`, measured by
:func:`make_result`, so their residuals and alignments mean the same thing.

Shapes: ``B`` batch, ``H`` plan horizon (steps), ``*Z`` the latent shape of one state (e.g.
``(views, C, h, w)``), ``D = prod(Z)``, ``A`` action dimension, ``n`` joints. Time is the leading
axis: ``video_plan[k]`` is the imagined latent *after* step ``k`` (it pairs with
``latents[k + 1]``; ``latents[0]`` is the observed ``z0``).

Actions are in the world model's action units. With ``ActionBounds.joint_delta_actions`` the
first ``n`` action entries are joint-position deltas in rad per plan step (commanded target at
the next plan step minus the joint position now), so ``q_t + a_t`` is the commanded target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.robot_spec import RobotSpec


@runtime_checkable
class WorldModel(Protocol):
    """Action-conditioned latent dynamics ``(z_{t+1}, q_{t+1}) = f(z_t, q_t, a_t)``."""

    @property
    def latent_shape(self) -> tuple[int, ...]: ...

    @property
    def action_dim(self) -> int: ...

    @property
    def num_joints(self) -> int: ...

    def step(self, z: torch.Tensor, q: torch.Tensor,
             a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (B, *Z)``, ``q (B, n)`` rad, ``a (B, A)`` -> ``(z_next (B, *Z), q_next (B, n))``.

        Differentiable in ``z``, ``q`` and ``a``; on the model's device, float32. A model may
        also carry ``action_scale`` ``(A,)``, the typical size of an action (e.g. the std of its
        training actions); solvers use it for step sizes and finite differences.
        """
        ...


@runtime_checkable
class VideoPlanner(Protocol):
    """Latent video planner: imagines ``H`` future latents from noise."""

    def sample(self, z0: torch.Tensor, q0: torch.Tensor, noise: torch.Tensor,
               num_steps: int) -> torch.Tensor:
        """``z0 (B, *Z)``, ``q0 (B, n)`` rad, ``noise (B, H, *Z)`` -> latent video ``(B, H, *Z)``;
        ``num_steps`` denoising / flow steps (0: the planner's default)."""
        ...

    def noise_shape(self, horizon: int) -> tuple[int, ...]:
        """Shape of the noise of one sample, ``(H, *Z)``."""
        ...


@runtime_checkable
class InverseDynamics(Protocol):
    """``a_t = g(z_t, z_{t+1}, q_t)``: ``(B, *Z), (B, *Z), (B, n) -> (B, A)``."""

    def __call__(self, z_t: torch.Tensor, z_next: torch.Tensor,
                 q_t: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True, eq=False)
class ActionBounds:
    """Box on each action and (optionally) joint limits on the predicted joint positions.

    Attributes:
        action_min: ``(A,)`` lowest action per dimension (rad per plan step for joint deltas).
        action_max: ``(A,)`` highest action per dimension.
        joint_min_rad: ``(n,)`` lowest allowed joint position (margins already applied) or None.
        joint_max_rad: ``(n,)`` highest allowed joint position or None.
        joint_delta_actions: the first ``n`` actions are joint deltas, so they are also clipped
            to keep ``q_t + a_t`` inside the joint limits.
    """

    action_min: np.ndarray
    action_max: np.ndarray
    joint_min_rad: np.ndarray | None = None
    joint_max_rad: np.ndarray | None = None
    joint_delta_actions: bool = True

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.action_min), np.asarray(self.action_max)
        if lo.ndim != 1 or lo.shape != hi.shape or not np.all(lo < hi):
            raise VidplanError(f'action bounds must be two (A,) vectors with min < max; got '
                               f'{lo.tolist()} and {hi.tolist()}')
        if (self.joint_min_rad is None) != (self.joint_max_rad is None):
            raise VidplanError('set joint_min_rad and joint_max_rad together (or neither)')
        if self.joint_min_rad is not None and not np.all(
                np.asarray(self.joint_min_rad) < np.asarray(self.joint_max_rad)):
            raise VidplanError('joint_min_rad must be below joint_max_rad for every joint')

    @classmethod
    def from_robot_spec(cls, spec: RobotSpec, plan_dt_s: float,
                        extra_min: tuple[float, ...] = (), extra_max: tuple[float, ...] = (),
                        velocity_scale: float = 1.0) -> ActionBounds:
        """Joint-delta bounds: ``|a_j| <= velocity_scale * velocity_max_j * plan_dt_s`` (rad).

        ``extra_min``/``extra_max`` bound action entries after the joints (e.g. a gripper);
        joint limits are inset by the spec's ``position_margin_rad``.
        """
        step = velocity_scale * np.asarray(spec.velocity_max_rad_s) * plan_dt_s
        margin = spec.position_margin_rad
        return cls(action_min=np.concatenate([-step, extra_min]).astype(np.float32),
                   action_max=np.concatenate([step, extra_max]).astype(np.float32),
                   joint_min_rad=np.asarray(spec.position_min_rad, np.float32) + margin,
                   joint_max_rad=np.asarray(spec.position_max_rad, np.float32) - margin)


@dataclass(frozen=True, eq=False)
class WarmStart:
    """A previous solution already shifted to start at the current step (see shift_warm_start).

    ``actions (H, A)``, ``latents (H+1, *Z)``, ``q (H+1, n)`` rad. Rows after the first
    ``valid_steps`` actions are padding (the solver re-predicts them); None = all valid.
    """

    actions: np.ndarray
    latents: np.ndarray
    q: np.ndarray
    valid_steps: int | None = None


@dataclass(frozen=True, eq=False)
class GroundingProblem:
    """One replan: the observed state and the imagined video to ground.

    Attributes:
        z0: ``(*Z)`` latent of the current observation.
        q0: ``(n,)`` measured joint positions, rad.
        video_plan: ``(H, *Z)`` imagined latents after steps 1..H.
        bounds: action box and joint limits.
        goal_latent: ``(*Z)`` task goal for goal terms; None = ``video_plan[-1]``.
        warm_start: previous solution shifted to now, or None.
        action_prior: ``(H, A)`` actions a policy proposes for this state (the planner's
            action-prior head, the actions its plan was conditioned on), or None. The
            ``policy`` method executes them; GVP-WM can start from and stay near them.
    """

    z0: np.ndarray
    q0: np.ndarray
    video_plan: np.ndarray
    bounds: ActionBounds
    goal_latent: np.ndarray | None = None
    warm_start: WarmStart | None = None
    action_prior: np.ndarray | None = None

    def __post_init__(self) -> None:
        zs, plan = tuple(np.shape(self.z0)), tuple(np.shape(self.video_plan))
        if len(plan) < 2 or plan[1:] != zs or plan[0] < 1:
            raise VidplanError(f'video_plan must be (H, *Z) with *Z = z0.shape {zs} and H >= 1; '
                               f'got {plan}')
        if np.ndim(self.q0) != 1:
            raise VidplanError(f'q0 must be (n,); got shape {np.shape(self.q0)}')
        if self.goal_latent is not None and tuple(np.shape(self.goal_latent)) != zs:
            raise VidplanError(f'goal_latent must have the shape of z0 {zs}')
        if self.action_prior is not None:
            want = (plan[0], np.shape(self.bounds.action_min)[0])
            if tuple(np.shape(self.action_prior)) != want or not np.all(
                    np.isfinite(self.action_prior)):
                raise VidplanError(f'action_prior must be finite (H, A) = {want}; got shape '
                                   f'{np.shape(self.action_prior)}')

    @property
    def horizon(self) -> int:
        return int(np.shape(self.video_plan)[0])


@dataclass(frozen=True, eq=False)
class GroundingResult:
    """A grounded plan and how far it can be trusted.

    Attributes:
        method: which grounder made it ('gvp_wm', 'mpc_cem', ...).
        actions: ``(H, A)`` actions to execute, inside the bounds.
        latents: ``(H+1, *Z)`` the latent trajectory the method commits to, ``latents[0] = z0``:
            the optimised states for collocation methods, the plan for methods that keep it
            fixed (inverse dynamics, actions only), the world-model rollout for shooting methods.
        q_pred: ``(H+1, n)`` predicted joint positions (rad) along it, ``q_pred[0] = q0``.
        dynamics_residual: ``max_t ||z_{t+1} - f_z(z_t, q_t, a_t)|| / ||z0||`` over ``latents``
            and ``q_pred``: how far the committed trajectory is from the world model's dynamics,
            relative to the size of the observed latent (0 = exactly feasible).
        proprio_residual_rad: ``max_t max_j |q_{t+1} - f_q(z_t, q_t, a_t)|_j`` (rad).
        alignment: mean over t = 1..H of ``cos(latents[t], plan[t-1])`` with the video plan the
            method grounded (1 = same direction).
        rollout_alignment: the same for the world model's open-loop rollout of ``actions`` from
            ``z0``: how closely executing the actions follows the plan, by the model. The
            number to gate on and to compare methods by (equal to ``alignment`` for shooting).
        iterations: gradient steps, or sampling iterations for sampling methods.
        outer_iterations: augmented-Lagrangian outer iterations (0 for other methods).
        compute_time_s: wall time of the call.
        penalties: penalty weight of each outer iteration (GVP-WM), else empty.
    """

    method: str
    actions: np.ndarray
    latents: np.ndarray
    q_pred: np.ndarray
    dynamics_residual: float
    proprio_residual_rad: float
    alignment: float
    rollout_alignment: float
    iterations: int
    outer_iterations: int
    compute_time_s: float
    penalties: tuple[float, ...] = ()


class Grounder(Protocol):
    """A grounding method behind one interface (see baselines.make_grounder)."""

    name: str

    def __call__(self, problem: GroundingProblem,
                 warm_start: WarmStart | None = None) -> GroundingResult: ...


# --- tensors shared by every method ---------------------------------------------------------

class ProblemTensors(NamedTuple):
    """A problem on the model's device, latents flattened to ``D``."""

    z0: torch.Tensor        # (D,)
    q0: torch.Tensor        # (n,)
    plan: torch.Tensor      # (H, D)
    goal: torch.Tensor      # (D,)
    a_lo: torch.Tensor      # (A,)
    a_hi: torch.Tensor      # (A,)
    q_lo: torch.Tensor | None  # (n,)
    q_hi: torch.Tensor | None  # (n,)
    joint_delta: bool
    latent_shape: tuple[int, ...]


def model_device(model: object) -> torch.device:
    """The device a model runs on: its ``device`` attribute, else its first parameter's."""
    dev = getattr(model, 'device', None)
    if isinstance(dev, (str, torch.device)):
        return torch.device(dev)
    params = getattr(model, 'parameters', None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device('cpu')


def to_tensors(problem: GroundingProblem, device: torch.device) -> ProblemTensors:
    def t(x: object) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=device)
    b = problem.bounds
    H = problem.horizon
    plan = t(problem.video_plan).reshape(H, -1)
    goal = plan[-1] if problem.goal_latent is None else t(problem.goal_latent).reshape(-1)
    return ProblemTensors(
        t(problem.z0).reshape(-1), t(problem.q0), plan, goal, t(b.action_min), t(b.action_max),
        None if b.joint_min_rad is None else t(b.joint_min_rad),
        None if b.joint_max_rad is None else t(b.joint_max_rad),
        b.joint_delta_actions, tuple(np.shape(problem.z0)))


def step_flat(wm: WorldModel, z: torch.Tensor, q: torch.Tensor, a: torch.Tensor,
              latent_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``wm.step`` on flat latents: ``z (B, D)`` -> ``z_next (B, D)``."""
    z_next, q_next = wm.step(z.reshape(z.shape[0], *latent_shape), q, a)
    return z_next.reshape(z.shape[0], -1), q_next


def project_actions(a: torch.Tensor, q: torch.Tensor, pt: ProblemTensors) -> torch.Tensor:
    """Clip ``a (..., A)`` to keep ``q + a`` in the joint limits (joint deltas), then to the box.

    The box is applied last: the per-step bound wins when ``q`` starts outside the limits.
    """
    if pt.joint_delta and pt.q_lo is not None and pt.q_hi is not None:
        m = min(a.shape[-1], q.shape[-1])
        joint = torch.minimum(torch.maximum(a[..., :m], pt.q_lo[:m] - q[..., :m]),
                              pt.q_hi[:m] - q[..., :m])
        a = torch.cat([joint, a[..., m:]], dim=-1)
    return torch.minimum(torch.maximum(a, pt.a_lo), pt.a_hi)


def rollout(wm: WorldModel, pt: ProblemTensors, actions: torch.Tensor,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Roll ``actions (B, H, A)`` out from ``(z0, q0)``, projecting each action on the way.

    Returns ``latents (B, H+1, D)``, ``q (B, H+1, n)`` and the projected ``actions (B, H, A)``.
    """
    B, H = actions.shape[:2]
    z, q = pt.z0.expand(B, -1), pt.q0.expand(B, -1)
    zs, qs, acts = [z], [q], []
    for t in range(H):
        a = project_actions(actions[:, t], q, pt)
        z, q = step_flat(wm, z, q, a, pt.latent_shape)
        zs.append(z)
        qs.append(q)
        acts.append(a)
    return torch.stack(zs, 1), torch.stack(qs, 1), torch.stack(acts, 1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last axis (scale-invariant, safe at zero)."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)


def make_result(method: str, wm: WorldModel, pt: ProblemTensors, actions: torch.Tensor,
                latents: torch.Tensor, q: torch.Tensor, t_start: float, *,
                iterations: int, outer_iterations: int = 0, plan: torch.Tensor | None = None,
                penalties: tuple[float, ...] = (),
                rolled: torch.Tensor | None = None) -> GroundingResult:
    """Score a committed trajectory and package it.

    ``actions (H, A)``, ``latents (H+1, D)``, ``q (H+1, n)``; ``plan (H, D)`` the video plan it
    is aligned to (default: the problem's); ``rolled (H+1, D)`` the model's rollout of
    ``actions`` when the caller has it (else it is computed). ``t_start`` is
    ``time.perf_counter()`` at the start of the call.
    """
    with torch.no_grad():
        plan = pt.plan if plan is None else plan
        z_pred, q_pred = step_flat(wm, latents[:-1], q[:-1], actions, pt.latent_shape)
        scale = pt.z0.norm().clamp_min(1e-12)
        residual = ((latents[1:] - z_pred).norm(dim=-1) / scale).max()
        q_res = (q[1:] - q_pred).abs().max() if q.shape[-1] else torch.zeros(())
        if rolled is None:
            rolled = rollout(wm, pt, actions[None])[0][0]
        stats = torch.stack([residual, q_res, cosine(latents[1:], plan).mean(),
                             cosine(rolled[1:], plan).mean()]).cpu().tolist()
        H = actions.shape[0]
        out = [x.detach().float().cpu().numpy() for x in (actions, latents, q)]
    return GroundingResult(
        method=method, actions=out[0], latents=out[1].reshape(H + 1, *pt.latent_shape),
        q_pred=out[2], dynamics_residual=float(stats[0]), proprio_residual_rad=float(stats[1]),
        alignment=float(stats[2]), rollout_alignment=float(stats[3]), iterations=iterations,
        outer_iterations=outer_iterations, compute_time_s=time.perf_counter() - t_start,
        penalties=tuple(penalties))


def fit_horizon(x: np.ndarray, length: int) -> np.ndarray:
    """Truncate ``x`` or pad it by repeating its last row to ``length`` rows."""
    x = np.asarray(x)
    if len(x) >= length:
        return x[:length]
    return np.concatenate([x, np.repeat(x[-1:], length - len(x), axis=0)])


# --- adapters for trained model sets (vidplan_ros.nn), duck-typed so core never imports nn ---

class _Norm(NamedTuple):
    q_mean: torch.Tensor
    q_std: torch.Tensor
    a_mean: torch.Tensor
    a_std: torch.Tensor


def _norm_of(norm: object, device: torch.device) -> _Norm:
    def t(name: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(getattr(norm, name)), dtype=torch.float32,
                               device=device)
    return _Norm(t('q_mean'), t('q_std'), t('action_mean'), t('action_std'))


class NormalizedWorldModel:
    """A world model trained in normalised units seen as a :class:`WorldModel` in rad.

    ``module(z, q_n, a_n) -> (z_next, q_n_next)`` with ``q_n = (q - q_mean) / q_std`` and
    ``a_n = (a - action_mean) / action_std`` (``norm`` carries those four ``(n,)`` arrays, rad).
    """

    def __init__(self, module: torch.nn.Module, norm: object) -> None:
        self.module = module
        self.device = model_device(module)
        self.norm = _norm_of(norm, self.device)
        self.latent_shape = tuple(module.latent_shape)
        self.action_dim = int(self.norm.a_mean.shape[0])
        self.num_joints = int(self.norm.q_mean.shape[0])
        self.action_scale = self.norm.a_std      # typical action size (rad), for the solvers

    def step(self, z: torch.Tensor, q: torch.Tensor,
             a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.norm
        z_next, qn_next = self.module(z, (q - m.q_mean) / m.q_std, (a - m.a_mean) / m.a_std)
        return z_next, qn_next * m.q_std + m.q_mean


class NormalizedPlanner:
    """A latent planner ``module(z0, q_n, noise) -> plan`` as a :class:`VideoPlanner` in rad.

    ``num_steps`` > 0 sets the module's ``steps`` attribute for the call (0: its own).
    """

    def __init__(self, module: torch.nn.Module, norm: object) -> None:
        self.module = module
        self.norm = _norm_of(norm, model_device(module))
        self.latent_shape = tuple(module.latent_shape)
        self.horizon = int(module.horizon)

    def noise_shape(self, horizon: int) -> tuple[int, ...]:
        if horizon != self.horizon:
            raise VidplanError(f'the planner imagines H = {self.horizon} frames; the grounding '
                               f'problem has H = {horizon}')
        return (horizon, *self.latent_shape)

    def prior_actions(self, z0: torch.Tensor, q0: torch.Tensor) -> torch.Tensor | None:
        """``(B, H, A)`` actions (rad) of the planner's action-prior head for ``z0 (B, *Z)``,
        ``q0 (B, n)`` rad, the ones its plans are conditioned on; None without a head
        (``planner.action_prior``). A small torch MLP on every backend."""
        head = getattr(self.module, 'prior', None)
        if head is None:
            return None
        with torch.no_grad():
            a_n = head(z0, (q0 - self.norm.q_mean) / self.norm.q_std)
        return a_n * self.norm.a_std + self.norm.a_mean

    def sample(self, z0: torch.Tensor, q0: torch.Tensor, noise: torch.Tensor,
               num_steps: int) -> torch.Tensor:
        qn = (q0 - self.norm.q_mean) / self.norm.q_std
        steps = getattr(self.module, 'steps', num_steps)
        if num_steps <= 0 or num_steps == steps:
            return self.module(z0, qn, noise)
        try:
            self.module.steps = num_steps
            return self.module(z0, qn, noise)
        finally:
            self.module.steps = steps


class NormalizedInverseDynamics:
    """``module(z_t, z_next, q_n) -> a_n`` as an :class:`InverseDynamics` in rad, times the
    model set's calibrated ``step_gain``."""

    def __init__(self, module: torch.nn.Module, norm: object, step_gain: float = 1.0) -> None:
        self.module = module
        self.norm = _norm_of(norm, model_device(module))
        self.step_gain = float(step_gain)

    def __call__(self, z_t: torch.Tensor, z_next: torch.Tensor,
                 q_t: torch.Tensor) -> torch.Tensor:
        m = self.norm
        a_n = self._net(z_t, z_next, (q_t - m.q_mean) / m.q_std)
        return self.step_gain * (a_n * m.a_std + m.a_mean)

    def _net(self, z_t: torch.Tensor, z_next: torch.Tensor, q_n: torch.Tensor) -> torch.Tensor:
        return self.module(z_t, z_next, q_n)


def adapt_model_set(model_set: object) -> tuple[NormalizedWorldModel, NormalizedPlanner,
                                                NormalizedInverseDynamics]:
    """World model, planner and inverse dynamics of a loaded model set (``world_model``,
    ``planner``, ``inverse_dynamics`` modules, ``norm`` stats and ``cfg``), in rad."""
    norm = model_set.norm
    return (NormalizedWorldModel(model_set.world_model, norm),
            NormalizedPlanner(model_set.planner, norm),
            NormalizedInverseDynamics(model_set.inverse_dynamics, norm,
                                      model_set.cfg.inverse_dynamics.step_gain))
