"""Action-conditioned world model f(z_t, q_t, a_t) -> (z_{t+1}, q_{t+1}), differentiable.

A conv residual net on the views stacked as channels (B, V*C, h, w), each block modulated by
FiLM from an MLP of (q, a); it predicts the residuals dz and dq (all in normalised units).
"""

from __future__ import annotations

import torch
from torch import nn

from vidplan_ros.nn.model_config import ModelConfig

__all__ = ['WorldModel']


class _FiLMBlock(nn.Module):
    def __init__(self, ch: int, cond: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(4, ch)
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.film = nn.Linear(cond, 2 * ch)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(c)[:, :, None, None].chunk(2, dim=1)
        h = self.act(self.conv1(self.act(self.norm(x))) * (1 + gamma) + beta)
        return x + self.conv2(h)


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        v, c, h, w = cfg.latent_shape
        hid = cfg.world_model.hidden
        n = cfg.action_dim
        self.latent_shape = (v, c, h, w)
        self.cond = nn.Sequential(nn.Linear(2 * n, hid), nn.SiLU(), nn.Linear(hid, hid))
        self.inp = nn.Conv2d(v * c, hid, 3, padding=1)
        self.blocks = nn.ModuleList(_FiLMBlock(hid, hid) for _ in range(cfg.world_model.blocks))
        self.out_z = nn.Conv2d(hid, v * c, 3, padding=1)
        self.out_q = nn.Sequential(nn.Linear(2 * hid, hid), nn.SiLU(), nn.Linear(hid, n))
        for m in (self.out_z, self.out_q[-1]):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor, q: torch.Tensor, a: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, V, C, h, w), q (B, n), a (B, n) -> (z_next, q_next), same shapes."""
        cond = self.cond(torch.cat([q, a], dim=-1))
        x = self.inp(z.flatten(1, 2))
        for blk in self.blocks:
            x = blk(x, cond)
        dz = self.out_z(x).unflatten(1, self.latent_shape[:2])
        dq = self.out_q(torch.cat([x.mean(dim=(2, 3)), cond], dim=-1))
        return z + dz, q + dq

    def rollout(self, z: torch.Tensor, q: torch.Tensor, actions: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Open loop over actions (B, K, n) -> (z (B, K, V, C, h, w), q (B, K, n))."""
        zs, qs = [], []
        for k in range(actions.shape[1]):
            z, q = self(z, q, actions[:, k])
            zs.append(z)
            qs.append(q)
        return torch.stack(zs, dim=1), torch.stack(qs, dim=1)
