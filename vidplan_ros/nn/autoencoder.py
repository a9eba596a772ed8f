"""Per-view conv autoencoder: images (B, V, 3, S, S) in [0, 1] <-> latents (B, V, C, h, w).

One encoder/decoder pair is shared by all views (views are folded into the batch). Latents are
normalised per channel with the training set's statistics (buffers `latent_mean`,
`latent_std`, set by training), so downstream models see roughly unit-scale inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from vidplan_ros.nn.model_config import ModelConfig

__all__ = ['Autoencoder']


def _down(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(4, cout),
                         nn.SiLU())


def _up(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1),
                         nn.GroupNorm(4, cout), nn.SiLU())


class Autoencoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ch = cfg.autoencoder.channels
        c_lat = cfg.autoencoder.latent_channels
        enc: list[nn.Module] = []
        cin = 3
        for c in ch:
            enc.append(_down(cin, c))
            cin = c
        enc.append(nn.Conv2d(cin, c_lat, 1))
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(c_lat, ch[-1], 3, padding=1), nn.SiLU()]
        rev = list(reversed(ch))
        for i, c in enumerate(rev):
            dec.append(_up(c, rev[i + 1] if i + 1 < len(rev) else c))
        dec.append(nn.Conv2d(rev[-1], 3, 3, padding=1))
        self.decoder = nn.Sequential(*dec)
        self.register_buffer('latent_mean', torch.zeros(c_lat))
        self.register_buffer('latent_std', torch.ones(c_lat))

    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        """(B, V, 3, S, S) in [0, 1] -> un-normalised latents (B, V, C, h, w)."""
        b, v = images.shape[:2]
        z = self.encoder(images.flatten(0, 1) * 2.0 - 1.0)
        return z.unflatten(0, (b, v))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, V, 3, S, S) in [0, 1] -> normalised latents (B, V, C, h, w)."""
        z = self.encode_raw(images)
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        b, v = z.shape[:2]
        x = self.decoder(z.flatten(0, 1))
        return torch.sigmoid(x).unflatten(0, (b, v))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, V, C, h, w) -> images (B, V, 3, S, S) in [0, 1]."""
        raw = z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        return self.decode_raw(raw)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, V, 3, S, S) of `images`."""
        return self.decode_raw(self.encode_raw(images))
