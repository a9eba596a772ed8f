"""Latent video planner: rectified flow over the next H latent frames (VILP-style).

The denoiser is a transformer over H per-frame tokens (one token = one future frame's latent of
all views, V*C*h*w values) that cross-attends to a context of a learned task token, a proprio
token and the current latent's patch tokens (V*h*w tokens of C values). What flows is the
displacement of the future from the current latent, x1 = z_{t+1..t+H} - z_t, from Gaussian
noise x0 (passed in, so sampling is deterministic): x_tau = (1 - tau) x0 + tau x1, the net
predicts v = x1 - x0, and `sample` takes K fixed Euler steps (no data-dependent control flow).
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


class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        h = self.n1(x)
        x = x + self.self_attn(h, h, h, need_weights=False)[0]
        x = x + self.cross_attn(self.n2(x), ctx, ctx, need_weights=False)[0]
        return x + self.mlp(self.n3(x))


class LatentPlanner(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        v, c, h, w = cfg.latent_shape
        p = cfg.planner
        d = p.d_model
        self.horizon = p.horizon
        self.steps = p.sample_steps
        self.frame_dim = v * c * h * w
        self.latent_shape = (v, c, h, w)
        self.frame_in = nn.Linear(self.frame_dim, d)
        self.frame_pos = nn.Parameter(torch.randn(p.horizon, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.task_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.proprio_in = nn.Linear(cfg.action_dim, d)
        self.patch_in = nn.Linear(c, d)
        self.patch_pos = nn.Parameter(torch.randn(v * h * w, d) * 0.02)
        self.blocks = nn.ModuleList(_Block(d, p.heads) for _ in range(p.layers))
        self.out_norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, self.frame_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def context(self, z0: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Cross-attention context (B, 2 + V*h*w, d) from z0 (B, V, C, h, w), q (B, n)."""
        b = z0.shape[0]
        patches = z0.permute(0, 1, 3, 4, 2).reshape(b, -1, z0.shape[2])   # (B, V*h*w, C)
        tokens = self.patch_in(patches) + self.patch_pos
        return torch.cat([self.task_token.expand(b, -1, -1), self.proprio_in(q)[:, None],
                          tokens], dim=1)

    def velocity(self, x: torch.Tensor, tau: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Flow velocity (B, H, D) at x (B, H, D), tau (B,), context (B, L, d)."""
        tok = self.frame_in(x) + self.frame_pos
        tok = tok + self.time_mlp(timestep_embedding(tau, tok.shape[-1]))[:, None]
        for blk in self.blocks:
            tok = blk(tok, ctx)
        return self.out(self.out_norm(tok))

    def loss(self, z0: torch.Tensor, q: torch.Tensor, future: torch.Tensor,
             noise: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """Flow-matching MSE for future (B, H, V, C, h, w), noise like future, tau (B,)."""
        b = z0.shape[0]
        x1 = (future - z0[:, None]).reshape(b, self.horizon, -1)
        x0 = noise.reshape(b, self.horizon, -1)
        t = tau[:, None, None]
        xt = (1 - t) * x0 + t * x1
        v = self.velocity(xt, tau, self.context(z0, q))
        return ((v - (x1 - x0)) ** 2).mean()

    def forward(self, z0: torch.Tensor, q: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample the plan (B, H, V, C, h, w) from noise (B, H, V, C, h, w): K Euler steps."""
        b = z0.shape[0]
        ctx = self.context(z0, q)
        x = noise.reshape(b, self.horizon, -1)
        dt = 1.0 / self.steps
        for k in range(self.steps):
            tau = torch.full((b,), k * dt, dtype=x.dtype, device=x.device)
            x = x + dt * self.velocity(x, tau, ctx)
        return x.reshape(b, self.horizon, *self.latent_shape) + z0[:, None]

    sample = forward
