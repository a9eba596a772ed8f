"""The model set's networks on a backend, seen through core's protocols (torch tensors in rad).

:class:`BackendWorldModel`, :class:`BackendPlanner` and :class:`BackendInverseDynamics` are
drop-in replacements for grounding_types' ``Normalized*`` adapters: same normalisation, same
shapes, but forward passes run on the backend (numpy across the boundary, results back as
torch tensors on the caller's device).

The world model is differentiated by GVP-WM (``torch.autograd.grad`` through ``step``). A call
that needs a gradient (grad mode on and an input that requires grad) runs in torch
(``grad='torch'``), or through the backend's exported forward+VJP graph ``world_model_vjp``
(``grad='vjp_graph'``, a ``torch.autograd.Function``, at the graph's static batch H, the
constraint rows; torch otherwise); every other call (rollouts, refinement,
the inverse-dynamics start, scoring) is a plain forward pass on the backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vidplan_ros.core.grounding_types import (NormalizedInverseDynamics, NormalizedPlanner,
                                              NormalizedWorldModel)
from vidplan_ros.runtime.backends import Backend

__all__ = ['BackendInverseDynamics', 'BackendPlanner', 'BackendWorldModel']


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to('cpu', torch.float32).numpy()


def _t(x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, device=like.device)


class _VjpStep(torch.autograd.Function):
    """``(z, q_n, a_n) -> (z_next, q_next_n)`` with forward and backward on the backend."""

    @staticmethod
    def forward(ctx: Any, backend: Backend, z: torch.Tensor, q: torch.Tensor,
                a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.backend = backend
        ctx.save_for_backward(z, q, a)
        zn, qn = backend.run('world_model', z=_np(z), q=_np(q), a=_np(a))
        return _t(zn, z), _t(qn, z)

    @staticmethod
    def backward(ctx: Any, gz: torch.Tensor, gq: torch.Tensor) -> tuple[Any, ...]:
        z, q, a = ctx.saved_tensors
        out = ctx.backend.run('world_model_vjp', z=_np(z), q=_np(q), a=_np(a),
                              gz=_np(gz), gq=_np(gq))
        dz, dq, da = out[2:5]
        return None, _t(dz, z), _t(dq, z), _t(da, z)


class BackendWorldModel(NormalizedWorldModel):
    """:class:`NormalizedWorldModel` whose forward-only calls run on ``backend``."""

    def __init__(self, module: torch.nn.Module, norm: object, backend: Backend,
                 grad: str = 'torch', vjp_batch: int = 0) -> None:
        super().__init__(module, norm)
        self.backend, self.grad = backend, grad
        self.vjp_batch = vjp_batch     # the exported VJP graph's static batch (the horizon)

    def step(self, z: torch.Tensor, q: torch.Tensor,
             a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.norm
        qn, an = (q - m.q_mean) / m.q_std, (a - m.a_mean) / m.a_std
        needs_grad = torch.is_grad_enabled() and (z.requires_grad or qn.requires_grad
                                                 or an.requires_grad)
        if needs_grad and self.grad == 'vjp_graph' and z.shape[0] == self.vjp_batch:
            z_next, qn_next = _VjpStep.apply(self.backend, z, qn, an)
        elif needs_grad:
            z_next, qn_next = self.module(z, qn, an)
        else:
            zn, qnn = self.backend.run('world_model', z=_np(z), q=_np(qn), a=_np(an))
            z_next, qn_next = _t(zn, z), _t(qnn, z)
        return z_next, qn_next * m.q_std + m.q_mean


class BackendPlanner(NormalizedPlanner):
    """:class:`NormalizedPlanner` on ``backend``: the unrolled sampler graph for the planner's
    own step count (``sampler='graph'``), else Euler steps of the denoiser graph."""

    def __init__(self, module: torch.nn.Module, norm: object, backend: Backend,
                 sampler: str = 'graph') -> None:
        super().__init__(module, norm)
        self.steps = int(module.steps)
        self.scale = _np(module.res_scale).reshape(1, -1, 1, 1)   # (1, H*V*C, 1, 1)
        self.backend, self.sampler = backend, sampler

    def sample(self, z0: torch.Tensor, q0: torch.Tensor, noise: torch.Tensor,
               num_steps: int) -> torch.Tensor:
        qn = _np((q0 - self.norm.q_mean) / self.norm.q_std)
        steps = self.steps if num_steps <= 0 else int(num_steps)
        z, x = _np(z0), _np(noise)
        if self.sampler == 'graph' and steps == self.steps:
            (plan,) = self.backend.run('sampler', z0=z, q=qn, noise=x)
            return _t(plan, z0)
        return _t(self.euler(z, qn, x, steps), z0)

    def euler(self, z0: np.ndarray, qn: np.ndarray, noise: np.ndarray,
              steps: int) -> np.ndarray:
        """LatentPlanner.forward with the denoiser graph: ``steps`` Euler steps from noise."""
        b, h, w = z0.shape[0], z0.shape[-2], z0.shape[-1]
        x = noise.reshape(b, -1, h, w)
        dt = 1.0 / steps
        for k in range(steps):
            tau = np.full((b,), k * dt, np.float32)
            (v,) = self.backend.run('denoiser', x=x, tau=tau, z0=z0, q=qn)
            x = x + np.float32(dt) * v
        x = x * self.scale
        return x.reshape(b, self.horizon, *self.latent_shape) + z0[:, None]


class BackendInverseDynamics(NormalizedInverseDynamics):
    """:class:`NormalizedInverseDynamics` on ``backend``, in rad."""

    def __init__(self, module: torch.nn.Module, norm: object, backend: Backend,
                 step_gain: float = 1.0) -> None:
        super().__init__(module, norm, step_gain)
        self.backend = backend

    def _net(self, z_t: torch.Tensor, z_next: torch.Tensor, q_n: torch.Tensor) -> torch.Tensor:
        (an,) = self.backend.run('inverse_dynamics', z=_np(z_t), z_next=_np(z_next), q=_np(q_n))
        return _t(an, z_t)
