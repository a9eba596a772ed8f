"""Inverse dynamics g(z_t, z_{t+1}, q_t) -> a_t (normalised action).

Convs on the two frames' stacked views (B, 2*V*C, h, w), one stride-2 level, flattened and
joined with q_t in an MLP.
"""

from __future__ import annotations

import torch
from torch import nn

from vidplan_ros.nn.model_config import ModelConfig

__all__ = ['InverseDynamics']


class InverseDynamics(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        v, c, h, w = cfg.latent_shape
        hid = cfg.inverse_dynamics.hidden
        n = cfg.action_dim
        self.conv = nn.Sequential(
            nn.Conv2d(2 * v * c, hid, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hid, hid, 3, stride=2, padding=1), nn.SiLU())
        flat = hid * ((h + 1) // 2) * ((w + 1) // 2)
        self.mlp = nn.Sequential(nn.Linear(flat + n, 4 * hid), nn.SiLU(),
                                 nn.Linear(4 * hid, 2 * hid), nn.SiLU(),
                                 nn.Linear(2 * hid, n))

    def forward(self, z: torch.Tensor, z_next: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """z, z_next (B, V, C, h, w), q (B, n) -> a (B, n)."""
        x = self.conv(torch.cat([z.flatten(1, 2), z_next.flatten(1, 2)], dim=1))
        return self.mlp(torch.cat([x.flatten(1), q], dim=-1))
