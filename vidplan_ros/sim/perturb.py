"""Perturbations that teach recovery (DART-style): the expert labels, perturbed commands execute.

Models trained on clean expert episodes are only valid on the expert's states: once the arm is
off that path, their predictions and groundings drive it further away. Collection therefore
puts the expert into states it would not visit itself and records how it comes back
(Laskey et al., DART, CoRL 2017; DINO-WM replays expert runs with noise):

- **random start**: the episode starts at the ready pose plus a uniform joint offset;
- **command noise**: a smooth joint offset (Ornstein-Uhlenbeck, correlation time
  `noise_corr_s`) is added to every executed chunk, while the expert, seeing the real state at
  every plan tick, keeps commanding its own (corrective) targets;
- **detours**: with probability `detour_prob` per episode, for `detour_s` the executed chunk is
  pulled by a large offset (a push or a detour of the arm), then released;
- **object pushes**: with probability `object_push_prob` per episode, once in
  `object_push_start_s` the task's object (the cube) is shoved by up to `object_push_m` and
  turned by up to 0.5 rad, so the expert re-aims or makes another stroke: a learned pusher
  otherwise never sees how a stroke that went wrong is finished.

The executed chunk is what the robot did, so the dataset's actions (q_target - q) stay
consistent with the observed motion for the world model and inverse dynamics; the expert's own
chunk is recorded beside it (`ExpertAction.label_positions`). All offsets are clipped to the
spec's position limits minus its margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from vidplan_ros.core.config import require
from vidplan_ros.core.robot_spec import RobotSpec
from vidplan_ros.sim.experts import ExpertAction

__all__ = ['NoiseConfig', 'Perturber']


@dataclass(frozen=True)
class NoiseConfig:
    """Perturbation strengths (rad, s). All zero = clean expert episodes."""

    start_rad: float = 0.0          # half-width of the uniform start offset per joint
    noise_rad: float = 0.0          # stationary std of the command offset per joint
    noise_corr_s: float = 0.6       # its correlation time
    detour_prob: float = 0.0        # chance of one detour per episode
    detour_rad: float = 0.35        # largest joint offset of a detour
    detour_s: tuple[float, float] = (0.4, 0.8)      # its duration range
    detour_start_s: tuple[float, float] = (0.5, 3.0)  # when it starts (sim s from reset)
    object_push_prob: float = 0.0   # chance of one shove of the task's object per episode
    object_push_m: float = 0.04     # its largest horizontal displacement
    object_push_start_s: tuple[float, float] = (1.5, 6.0)   # when (sim s from reset)

    def __post_init__(self) -> None:
        for name in ('start_rad', 'noise_rad', 'detour_rad'):
            v = getattr(self, name)
            require(math.isfinite(v) and 0 <= v <= 1.0, name, v, 'an angle in [0, 1] rad')
        require(self.noise_corr_s > 0, 'noise_corr_s', self.noise_corr_s, 'a time > 0 s')
        require(0 <= self.detour_prob <= 1, 'detour_prob', self.detour_prob, 'in [0, 1]')
        require(0 <= self.object_push_prob <= 1, 'object_push_prob', self.object_push_prob,
                'in [0, 1]')
        require(math.isfinite(self.object_push_m) and 0 <= self.object_push_m <= 0.2,
                'object_push_m', self.object_push_m, 'a distance in [0, 0.2] m')
        for name in ('detour_s', 'detour_start_s', 'object_push_start_s'):
            lo, hi = getattr(self, name)
            require(0 <= lo <= hi, name, getattr(self, name), '(low, high) with 0 <= low <= high')

    @property
    def active(self) -> bool:
        return self.start_rad > 0 or self.noise_rad > 0 or self.detour_prob > 0 or \
            self.object_push_prob > 0


class Perturber:
    """One episode's perturbations for robot `spec`, drawn from `rng`."""

    def __init__(self, spec: RobotSpec, cfg: NoiseConfig, rng: np.random.Generator) -> None:
        self.cfg = cfg
        self.rng = rng
        self.lo = np.asarray(spec.position_min_rad, float) + spec.position_margin_rad
        self.hi = np.asarray(spec.position_max_rad, float) - spec.position_margin_rad
        self.ready = np.asarray(spec.ready_pose_rad, float)
        n = len(self.ready)
        self._offset = rng.normal(0.0, cfg.noise_rad, n) if cfg.noise_rad > 0 else np.zeros(n)
        self._t_last: float | None = None
        self._detour: tuple[float, float, np.ndarray] | None = None
        if rng.random() < cfg.detour_prob:
            t0 = rng.uniform(*cfg.detour_start_s)
            joints = rng.random(n) < 0.5
            joints[rng.integers(n)] = True
            delta = np.where(joints, rng.uniform(-cfg.detour_rad, cfg.detour_rad, n), 0.0)
            self._detour = (t0, t0 + rng.uniform(*cfg.detour_s), delta)
        # No draw at probability 0: episodes recorded before this option replay as they were.
        self._object_push: tuple[float, np.ndarray, float] | None = None
        if cfg.object_push_prob > 0 and rng.random() < cfg.object_push_prob:
            angle = rng.uniform(-math.pi, math.pi)
            dist = rng.uniform(0.25, 1.0) * cfg.object_push_m
            self._object_push = (rng.uniform(*cfg.object_push_start_s),
                                 dist * np.array([math.cos(angle), math.sin(angle)]),
                                 rng.uniform(-0.5, 0.5))

    def object_push_due(self, t_s: float) -> tuple[np.ndarray, float] | None:
        """(offset (2,) m, turn rad) of the object push once sim time `t_s` reaches it (once
        per episode), else None."""
        if self._object_push is None or t_s < self._object_push[0]:
            return None
        _, offset, dyaw = self._object_push
        self._object_push = None
        return offset, dyaw

    def start_pose(self) -> np.ndarray:
        """(n,) rad: the ready pose plus the random start offset, inside the limits."""
        off = self.rng.uniform(-self.cfg.start_rad, self.cfg.start_rad, len(self.ready))
        return np.clip(self.ready + off, self.lo, self.hi)

    def offset_at(self, t_s: float) -> np.ndarray:
        """(n,) rad offset of the commands made at sim time `t_s` (advances the noise)."""
        cfg = self.cfg
        if cfg.noise_rad > 0 and self._t_last is not None:
            a = math.exp(-max(t_s - self._t_last, 0.0) / cfg.noise_corr_s)
            self._offset = a * self._offset + cfg.noise_rad * math.sqrt(1 - a * a) * \
                self.rng.normal(size=self._offset.shape)
        self._t_last = t_s
        out = self._offset.copy()
        if self._detour is not None and self._detour[0] <= t_s < self._detour[1]:
            out += self._detour[2]
        return out

    def perturb(self, action: ExpertAction) -> ExpertAction:
        """`action` with the offset added to the executed positions; the expert's own chunk
        kept as `label_positions`."""
        off = self.offset_at(action.stamp_s)
        executed = np.clip(action.positions + off[None, :], self.lo, self.hi)
        return replace(action, positions=executed, label_positions=action.positions)
