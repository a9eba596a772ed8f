"""Latent video planner: rectified flow over the next H latent frames (VILP-style).

What flows is the scaled displacement of the future from the current latent,
x1 = (z_{t+1..t+H} - z_t) / s, with s (`res_scale`, a buffer saved with the weights) the RMS of
that displacement per horizon step and latent channel over the training windows; so "no change"
is x1 = 0 and every target channel has unit scale. From Gaussian noise x0 (passed in, so
sampling is deterministic): x_tau = (1 - tau) x0 + tau x1, the net predicts v = x1 - x0, and
`sample` takes K fixed Euler steps (no data-dependent control flow; ONNX-friendly).

The denoiser is a conv residual net on the h x w latent grid: the H future frames x V views x
C channels are stacked as H*V*C channels, concatenated with the current latent (V*C channels)
as conditioning; the residual blocks are FiLM-conditioned on (flow time, proprio q, task) and
the grid cells cross-attend to the context tokens [task, q, time] in the middle of the net.
Options (PlannerConfig, off in the committed sets): `self_attention`, the grid cells then also
attend to each other; `global_state`, an MLP over the whole current latent adds a state token
to the conditioning; `action_prior`, a policy head predicts the H actions from the current
latent and joints, and the plan is conditioned on them (the recorded actions while training).
results/eval/planner_diagnosis measured each on push. With `state_dim` > 0 the head first
estimates the task's state from the latent (cube and goal, trained on the sim's ground truth,
data.recorder's task state) and its policy reads only that estimate and the joints: a policy
on the true state pushes 37/40 where one on the whole latent overfits (results/eval/
state_head).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vidplan_ros.nn.model_config import ModelConfig

__all__ = ['LatentPlanner']


def timestep_embedding(tau: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of flow times tau (B,) in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=tau.dtype,
                                                       device=tau.device) / half)
    ang = tau[:, None] * 1000.0 * freqs[None]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


def _norm(d: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, d), d)


class _ResBlock(nn.Module):
    """GN-SiLU-conv, FiLM from the conditioning embedding, GN-SiLU-conv, plus the skip."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.n1, self.n2 = _norm(d), _norm(d)
        self.c1 = nn.Conv2d(d, d, 3, padding=1)
        self.c2 = nn.Conv2d(d, d, 3, padding=1)
        self.film = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.c1(nn.functional.silu(self.n1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.n2(h) * (1 + scale) + shift
        return x + self.c2(nn.functional.silu(h))


class _CrossAttn(nn.Module):
    """Grid cells (B, d, h, w) attend to context tokens (B, L, d), or to each other when no
    context is given."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        tok = self.norm(x.flatten(2).transpose(1, 2))       # (B, h*w, d)
        kv = tok if ctx is None else ctx
        out = self.attn(tok, kv, kv, need_weights=False)[0]
        return x + out.transpose(1, 2).reshape(x.shape)


class _ActionPrior(nn.Module):
    """(z0 (B, V, C, h, w), q (B, n)) -> normalised actions (B, H, n): a small policy head.

    With `state_dim` S > 0: z0 -> the task's state (B, S), normalised by the buffers
    `state_mean` / `state_std` (set from the training labels), and (q, state) -> actions."""

    def __init__(self, v: int, c: int, h: int, w: int, n: int, horizon: int, d: int,
                 state_dim: int = 0, width: int = 256, layers: int = 2) -> None:
        super().__init__()
        self.horizon, self.n, self.state_dim = horizon, n, state_dim
        self.conv = nn.Sequential(nn.Conv2d(v * c, d, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(d, d, 3, stride=2, padding=1), nn.SiLU(),
                                  nn.Flatten())
        cells = ((h + 1) // 2) * ((w + 1) // 2)
        if state_dim:
            self.register_buffer('state_mean', torch.zeros(state_dim))
            self.register_buffer('state_std', torch.ones(state_dim))
            self.state = nn.Sequential(nn.Linear(d * cells, 2 * d), nn.SiLU(),
                                       nn.Linear(2 * d, state_dim))
            hidden: list[nn.Module] = [nn.Linear(n + state_dim, width), nn.SiLU()]
            for _ in range(layers - 1):
                hidden += [nn.Linear(width, width), nn.SiLU()]
            self.head = nn.Sequential(*hidden, nn.Linear(width, horizon * n))
        else:
            self.head = nn.Sequential(nn.Linear(d * cells + n, 2 * d), nn.SiLU(),
                                      nn.Linear(2 * d, horizon * n))

    def estimate(self, z0: torch.Tensor) -> torch.Tensor:
        """The task's state (B, S), normalised (`state_dim` > 0)."""
        return self.state(self.conv(z0.flatten(1, 2)))

    def policy(self, q: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Normalised actions (B, H, n) from q (B, n) and a normalised state (B, S)."""
        return self.head(torch.cat([q, state], dim=1)).reshape(-1, self.horizon, self.n)

    def forward(self, z0: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        if self.state_dim:
            return self.policy(q, self.estimate(z0))
        f = torch.cat([self.conv(z0.flatten(1, 2)), q], dim=1)
        return self.head(f).reshape(-1, self.horizon, self.n)


class LatentPlanner(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        v, c, h, w = cfg.latent_shape
        p = cfg.planner
        d = p.d_model
        self.horizon = p.horizon
        self.steps = p.sample_steps
        self.latent_shape = (v, c, h, w)
        self.plan_ch = p.horizon * v * c
        self.register_buffer('res_scale', torch.ones(p.horizon, v, c))
        self.x_in = nn.Conv2d(self.plan_ch + v * c, d, 3, padding=1)
        self.pos = nn.Parameter(torch.randn(1, d, h, w) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.task_token = nn.Parameter(torch.randn(1, d) * 0.02)
        self.proprio_in = nn.Sequential(nn.Linear(cfg.action_dim, d), nn.SiLU(),
                                        nn.Linear(d, d))
        self.blocks = nn.ModuleList(_ResBlock(d) for _ in range(p.layers))
        self.attn_at = (p.layers + 1) // 2
        self.cross = _CrossAttn(d, p.heads)
        self.self_attn = _CrossAttn(d, p.heads) if p.self_attention else None
        self.state_in = nn.Sequential(nn.Flatten(), nn.Linear(v * c * h * w, d), nn.SiLU(),
                                      nn.Linear(d, d)) if p.global_state else None
        self.prior = _ActionPrior(v, c, h, w, cfg.action_dim, p.horizon, d, p.state_dim,
                                  p.policy_hidden, p.policy_layers) if p.action_prior else None
        self.prior_in = nn.Sequential(nn.Linear(p.horizon * cfg.action_dim, d), nn.SiLU(),
                                      nn.Linear(d, d)) if p.action_prior else None
        self.out_norm = _norm(d)
        self.out = nn.Conv2d(d, self.plan_ch, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def set_residual_scale(self, z0: torch.Tensor, future: torch.Tensor) -> None:
        """res_scale (H, V, C) := RMS of future (M, H, V, C, h, w) - z0 (M, V, C, h, w)."""
        d = future - z0[:, None]
        self.res_scale.copy_(d.pow(2).mean(dim=(0, 4, 5)).sqrt().clamp(min=1e-3))

    def velocity(self, x: torch.Tensor, tau: torch.Tensor, z0: torch.Tensor,
                 q: torch.Tensor, act: torch.Tensor | None = None) -> torch.Tensor:
        """Flow velocity (B, H*V*C, h, w) at x (same), tau (B,), z0 (B, V, C, h, w), q;
        `act` (B, H, n) the actions the plan renders (`action_prior`; default the head's)."""
        b = x.shape[0]
        te = self.time_mlp(timestep_embedding(tau, self.pos.shape[1]))
        qe = self.proprio_in(q)
        task = self.task_token.expand(b, -1)
        emb = te + qe + task
        tokens = [task, qe, te]
        if self.state_in is not None:
            se = self.state_in(z0)
            emb = emb + se
            tokens.append(se)
        if self.prior_in is not None:
            assert self.prior is not None
            ae = self.prior_in((self.prior(z0, q) if act is None else act).flatten(1))
            emb = emb + ae
            tokens.append(ae)
        ctx = torch.stack(tokens, dim=1)
        hcur = self.x_in(torch.cat([x, z0.flatten(1, 2)], dim=1)) + self.pos
        for i, blk in enumerate(self.blocks):
            if i == self.attn_at:
                hcur = self._attend(hcur, ctx)
            hcur = blk(hcur, emb)
        if self.attn_at >= len(self.blocks):
            hcur = self._attend(hcur, ctx)
        return self.out(nn.functional.silu(self.out_norm(hcur)))

    def _attend(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        x = self.cross(x, ctx)
        return x if self.self_attn is None else self.self_attn(x)

    def _scale(self) -> torch.Tensor:
        return self.res_scale.reshape(1, self.plan_ch, 1, 1)

    def loss(self, z0: torch.Tensor, q: torch.Tensor, future: torch.Tensor,
             noise: torch.Tensor, tau: torch.Tensor, actions: torch.Tensor | None = None,
             mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
             state: torch.Tensor | None = None) -> torch.Tensor:
        """Flow-matching MSE for future (B, H, V, C, h, w), noise like future, tau (B,); with
        `action_prior`, plus the head's MSE on `targets` (B, H, n; default the window's
        normalised executed actions (B, H, n)) where `mask` (B, H) is 1; with `state_dim`,
        plus its state estimate's MSE on `state` (B, S) (the raw labels; NaN: none)."""
        return self.loss_and_first(z0, q, future, noise, tau, actions, mask, targets,
                                   state)[0]

    def set_state_scale(self, labels: torch.Tensor) -> None:
        """state_mean / state_std := those of the training labels (M, S) (NaN rows skipped)."""
        assert self.prior is not None and self.prior.state_dim
        ok = labels[~torch.isnan(labels).any(dim=1)]
        if len(ok) < 2:
            raise ValueError('planner.state_dim > 0 needs task-state labels in the data '
                             '(/vidplan/task_state, recorded by vidplan collect)')
        self.prior.state_mean.copy_(ok.mean(0))
        self.prior.state_std.copy_(ok.std(0).clamp(min=1e-3))

    def _prior_terms(self, z0: torch.Tensor, q: torch.Tensor, actions: torch.Tensor | None,
                     mask: torch.Tensor | None, targets: torch.Tensor | None,
                     state: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(the actions to condition on, the prior head's action loss, its state estimate's
        loss (0 without `state_dim`)) for `action_prior`: the flow
        is conditioned on the executed actions where there are any (teacher forcing: they made
        the video it learns), on the head's elsewhere; the head learns `targets` (default
        those actions; `train.prior_target: expert` gives it the expert's DART labels)."""
        if self.prior is None:
            return None, torch.zeros(()), torch.zeros(())
        if actions is None or mask is None:
            raise ValueError("planner.action_prior: the planner loss needs the windows' "
                             'actions and their mask')
        goal = actions if targets is None else targets
        head = self.prior
        state_err = torch.zeros(())
        if head.state_dim:
            if state is None:
                raise ValueError('planner.state_dim > 0: the planner loss needs the task-state '
                                 'labels')
            est = head.estimate(z0)
            s_ok = ~torch.isnan(state).any(dim=1, keepdim=True)
            s_n = torch.where(s_ok, (state - head.state_mean) / head.state_std, est.detach())
            state_err = ((est - s_n) ** 2).mean()
            # the policy learns on the estimate it will read when deployed
            pred = head.policy(q, est.detach())
        else:
            pred = head(z0, q)
        m = mask[..., None]
        err = (((pred - goal) ** 2) * m).sum() / (m.sum() * goal.shape[-1]).clamp(min=1)
        return torch.where(m > 0, actions, pred.detach()), err, state_err

    def prior_loss(self, z0: torch.Tensor, q: torch.Tensor, actions: torch.Tensor,
                   mask: torch.Tensor, targets: torch.Tensor | None = None,
                   state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The action-prior head's part of :meth:`loss` alone, as (its actions' MSE, its state
        estimate's MSE): what `vidplan train --only prior` trains, the flow frozen."""
        return self._prior_terms(z0, q, actions, mask, targets, state)[1:]

    def loss_and_first(self, z0: torch.Tensor, q: torch.Tensor, future: torch.Tensor,
                       noise: torch.Tensor, tau: torch.Tensor,
                       actions: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                       targets: torch.Tensor | None = None, state: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow loss and the net's estimate of the first future frame (B, V, C, h, w)
        from x_tau (one Euler step to tau = 1), for losses on what the plan implies."""
        act, act_loss, state_loss = self._prior_terms(z0, q, actions, mask, targets, state)
        prior_loss = act_loss + state_loss
        b, _, _, _, h, w = future.shape
        x1 = (future - z0[:, None]).reshape(b, self.plan_ch, h, w) / self._scale()
        x0 = noise.reshape(b, self.plan_ch, h, w)
        t = tau[:, None, None, None]
        xt = (1 - t) * x0 + t * x1
        v = self.velocity(xt, tau, z0, q, act)
        x1_hat = (xt + (1 - t) * v) * self._scale()
        first = x1_hat.reshape(b, self.horizon, *self.latent_shape)[:, 0] + z0
        return ((v - (x1 - x0)) ** 2).mean() + prior_loss, first

    def forward(self, z0: torch.Tensor, q: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample the plan (B, H, V, C, h, w) from noise (B, H, V, C, h, w): K Euler steps."""
        b = z0.shape[0]
        h, w = self.latent_shape[2:]
        x = noise.reshape(b, self.plan_ch, h, w)
        act = None if self.prior is None else self.prior(z0, q)
        dt = 1.0 / self.steps
        for k in range(self.steps):
            tau = torch.full((b,), k * dt, dtype=x.dtype, device=x.device)
            x = x + dt * self.velocity(x, tau, z0, q, act)
        x = x * self._scale()
        return x.reshape(b, self.horizon, *self.latent_shape) + z0[:, None]

    sample = forward
