"""A committed model set directory `models/<name>/`: four models, norm stats and config.

    models/<name>/autoencoder.pt        state dicts (torch.save), fp32
    models/<name>/planner.pt
    models/<name>/world_model.pt
    models/<name>/inverse_dynamics.pt
    models/<name>/norm_stats.json       q_mean/q_std, action_mean/action_std (rad), joint names
    models/<name>/config.json           model config params, dataset report, training, metrics
    models/<name>/README.md             model card
    models/<name>/heldout.npz           a few held-out windows (reproduction test)

    ms = load_model_set('models/franka_reach')
    z = ms.autoencoder.encode(images)                   # (B, V, 3, S, S) in [0, 1]
    plan = ms.planner(z, ms.normalize_q(q), noise)      # (B, H, V, C, h, w)
    a_rad = ms.denormalize_action(ms.inverse_dynamics(z, plan[:, 0], ms.normalize_q(q)))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidplan_ros.core.config import config_from_params, config_to_params
from vidplan_ros.nn.autoencoder import Autoencoder
from vidplan_ros.nn.inverse_dynamics import InverseDynamics
from vidplan_ros.nn.model_config import ModelConfig
from vidplan_ros.nn.planner import LatentPlanner
from vidplan_ros.nn.world_model import WorldModel

__all__ = ['MODEL_FILES', 'ModelSet', 'NormStats', 'build_models', 'load_model_set',
           'save_model_set']

MODEL_FILES = ('autoencoder', 'planner', 'world_model', 'inverse_dynamics')


@dataclass
class NormStats:
    """Normalisation of proprio q and actions (delta q), rad, per joint (robot spec order)."""

    joint_names: list[str]
    q_mean: np.ndarray
    q_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray

    def to_json(self) -> dict[str, Any]:
        return {'joint_names': list(self.joint_names),
                **{k: getattr(self, k).astype(float).tolist()
                   for k in ('q_mean', 'q_std', 'action_mean', 'action_std')}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NormStats:
        return cls(joint_names=list(d['joint_names']),
                   **{k: np.asarray(d[k], np.float32)
                      for k in ('q_mean', 'q_std', 'action_mean', 'action_std')})


def build_models(cfg: ModelConfig) -> dict[str, torch.nn.Module]:
    return {'autoencoder': Autoencoder(cfg), 'planner': LatentPlanner(cfg),
            'world_model': WorldModel(cfg), 'inverse_dynamics': InverseDynamics(cfg)}


@dataclass
class ModelSet:
    cfg: ModelConfig
    autoencoder: Autoencoder
    planner: LatentPlanner
    world_model: WorldModel
    inverse_dynamics: InverseDynamics
    norm: NormStats
    info: dict[str, Any]           # config.json contents (dataset report, training, metrics)

    def _t(self, x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)

    def normalize_q(self, q: torch.Tensor) -> torch.Tensor:
        return (q - self._t(self.norm.q_mean, q)) / self._t(self.norm.q_std, q)

    def denormalize_q(self, q: torch.Tensor) -> torch.Tensor:
        return q * self._t(self.norm.q_std, q) + self._t(self.norm.q_mean, q)

    def normalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self._t(self.norm.action_mean, a)) / self._t(self.norm.action_std, a)

    def denormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return a * self._t(self.norm.action_std, a) + self._t(self.norm.action_mean, a)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {k: getattr(self, k) for k in MODEL_FILES}


def save_model_set(path: str | Path, cfg: ModelConfig, models: dict[str, torch.nn.Module],
                   norm: NormStats, info: dict[str, Any]) -> None:
    """Write weights, norm_stats.json and config.json (`info` plus the config params)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        state = {k: v.detach().cpu().clone() for k, v in models[name].state_dict().items()}
        torch.save(state, path / f'{name}.pt')
    (path / 'norm_stats.json').write_text(json.dumps(norm.to_json(), indent=1) + '\n')
    doc = {'params': config_to_params(cfg), **info}
    (path / 'config.json').write_text(json.dumps(doc, indent=1) + '\n')


def load_model_set(path: str | Path, device: str = 'cpu') -> ModelSet:
    """Load a model set directory (see the module docstring); models in eval mode."""
    path = Path(path)
    info = json.loads((path / 'config.json').read_text())
    cfg = config_from_params(ModelConfig, info['params'], source=str(path / 'config.json'))
    models = build_models(cfg)
    for name in MODEL_FILES:
        state = torch.load(path / f'{name}.pt', map_location=device, weights_only=True)
        models[name].load_state_dict(state)
        models[name].to(device).eval()
    norm = NormStats.from_json(json.loads((path / 'norm_stats.json').read_text()))
    return ModelSet(cfg=cfg, norm=norm, info=info, **models)  # type: ignore[arg-type]
