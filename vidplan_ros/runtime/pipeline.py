"""The planning stack in one object: encode -> imagine -> ground -> a timed joint plan.

ROS-free and shared by the nodes (perception / planner / grounding each call one stage) and by
the in-process closed loop of ``vidplan eval`` (all stages in turn), so both run the same code.

Units and frames: images are ``(S, S, 3)`` uint8 RGB per camera, in the model's camera order;
joints are rad in the robot spec's joint order (the model sets are trained in that order);
latents are the autoencoder's normalised latents ``(V, C, h, w)``; a video plan is ``(H, V, C,
h, w)`` time-major, ``plan[k]`` imagined ``(k + 1) * plan_dt_s`` after the observation.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidplan_ros.core.baselines import GrounderConfig, make_grounder
from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.executor import GroundedPlan
from vidplan_ros.core.grounding import shift_warm_start
from vidplan_ros.core.grounding_types import (ActionBounds, GroundingProblem, GroundingResult,
                                              WarmStart, adapt_model_set)
from vidplan_ros.core.paths import share_dir
from vidplan_ros.core.robot_spec import RobotSpec, load_robot_spec
from vidplan_ros.core.images import square_resize
from vidplan_ros.runtime.backends import BackendConfig, make_backend

__all__ = ['Pipeline', 'PipelineConfig', 'Replan', 'model_dir_for', 'require_step_gain']

log = logging.getLogger('vidplan.runtime')


@dataclass(frozen=True)
class PipelineConfig:
    """Which model set runs and how its plans become joint targets."""

    model: str = 'franka_reach'      # a directory under models/, or a path to a model set
    device: str = 'cpu'              # torch device ('cuda' on a GPU host)
    threads: int = 0                 # torch / ONNX Runtime intra-op threads (0: default)
    # which runtime runs the networks (runtime/backends.py): auto picks the first usable of
    # tensorrt, onnxruntime_cuda, onnxruntime, torch
    backend: str = 'auto'
    precision: str = 'fp32'          # 'fp16': TensorRT FP16 engines
    # the world model's gradient in GVP-WM: 'torch' autograd, or 'vjp_graph' (an exported
    # forward+VJP graph on the backend; needs onnxscript to export)
    world_model_grad: str = 'torch'
    noise_seed: int = 0              # planner noise: replan k uses seed noise_seed + k
    action_velocity_scale: float = 1.0   # per-step action box = this x v_max x plan_dt_s
    # ... intersected with mean +- action_std_bound x std of the training actions: the world
    # model is only trusted near the actions it was trained on (0: no such bound)
    action_std_bound: float = 3.0
    # Seed each grounding with the previous solution, shifted. Off by default: on g1_reach the
    # shifted solution drifts from the new plan (rollout alignment 0.59 vs 0.93 when every
    # replan starts from inverse dynamics on the new plan; seed 1004, 10 s closed loop).
    warm_start: bool = False
    # inverse dynamics' step gain (GVP-WM's cold start too); 0: the model set's calibrated
    # inverse_dynamics.step_gain. A closed-loop knob: more latency wants less gain.
    step_gain: float = 0.0
    grounding: GrounderConfig = field(default_factory=GrounderConfig)

    def __post_init__(self) -> None:
        require(bool(self.model), 'model', self.model, 'a model set name or directory')
        require(self.threads >= 0, 'threads', self.threads, 'an integer >= 0 (0: default)')
        require_positive(self, 'action_velocity_scale')
        require(self.action_std_bound >= 0, 'action_std_bound', self.action_std_bound,
                'a number of standard deviations >= 0 (0: off)')
        require_step_gain(self.step_gain)
        self.backend_config()   # validates backend, precision, world_model_grad

    def backend_config(self) -> BackendConfig:
        return BackendConfig(backend=self.backend, precision=self.precision,
                             threads=self.threads, world_model_grad=self.world_model_grad)


def require_step_gain(gain: float) -> None:
    """A ``step_gain`` setting: a finite gain > 0, or 0 for the model set's calibrated one (the
    pipeline's, the grounding node's and the evaluation's configs check it alike)."""
    require(math.isfinite(gain) and gain >= 0, 'step_gain', gain,
            "a gain > 0, or 0 for the model set's")


def model_dir_for(model: str) -> Path:
    """A model set's directory: ``model`` itself if it is a directory, else models/<model>."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    bundled = share_dir() / 'models' / model
    if bundled.is_dir():
        return bundled
    known = sorted(p.name for p in (share_dir() / 'models').iterdir() if p.is_dir())
    raise VidplanError(f'no model set {model!r}: not a directory and not one of {known} under '
                       f'{share_dir() / "models"}; train one with `vidplan train`')


def _trust_region(bounds: ActionBounds, norm: object, k: float) -> ActionBounds:
    """``bounds`` intersected with ``mean +- k std`` of the training actions (k > 0)."""
    if k <= 0:
        return bounds
    mean, std = np.asarray(norm.action_mean), np.asarray(norm.action_std)  # type: ignore
    lo = np.maximum(bounds.action_min, mean - k * std).astype(np.float32)
    hi = np.minimum(bounds.action_max, mean + k * std).astype(np.float32)
    if not np.all(lo < hi):
        raise VidplanError(f'the action box {bounds.action_min.tolist()}..'
                           f'{bounds.action_max.tolist()} does not overlap mean +- {k} std of '
                           'the training actions; raise action_std_bound or the velocity scale')
    return replace(bounds, action_min=lo, action_max=hi)


@dataclass(frozen=True, eq=False)
class Replan:
    """One pass of the stack: what it imagined, what it grounded, what it will send, timings."""

    stamp_s: float
    z0: np.ndarray                 # (V, C, h, w)
    video_plan: np.ndarray         # (H, V, C, h, w)
    result: GroundingResult
    plan: GroundedPlan
    timings_s: dict[str, float]    # encode, imagine, ground (the stages this pass ran)
    warm_started: bool = False     # grounding started from the previous pass


class Pipeline:
    """Encoder, planner and grounder of one model set for one robot."""

    def __init__(self, cfg: PipelineConfig, spec: RobotSpec | None = None) -> None:
        from vidplan_ros.nn.model_set import load_model_set   # keep torch.nn off node imports
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.model_dir = model_dir_for(cfg.model)
        self.models = load_model_set(self.model_dir, cfg.device)
        if cfg.step_gain:
            self.models.cfg = replace(self.models.cfg, inverse_dynamics=replace(
                self.models.cfg.inverse_dynamics, step_gain=cfg.step_gain))
        mc = self.models.cfg
        self.spec = spec or load_robot_spec(mc.data.robot)
        if self.spec.num_joints != len(self.models.norm.q_mean):
            raise VidplanError(
                f'model set {self.model_dir} has {len(self.models.norm.q_mean)} joints; robot '
                f'{self.spec.name!r} has {self.spec.num_joints}: use a model set for this robot')
        self.cameras: tuple[str, ...] = tuple(mc.data.cameras)
        self.image_size = int(mc.image_size)
        self.plan_dt_s = float(mc.data.plan_dt_s)
        self.horizon = int(self.models.planner.horizon)
        self.latent_shape = tuple(self.models.planner.latent_shape)
        self.backend = make_backend(cfg.backend_config(), self.models, self.model_dir,
                                    cfg.device)
        self.world_model, self.planner, self.inverse_dynamics = self._adapt(cfg)
        log.info('model %s: networks on backend %s (%s); world-model gradients: %s',
                 self.model_dir.name, self.backend.name, self.backend.describe(),
                 'torch' if self.backend.name == 'torch' else cfg.world_model_grad)
        self.grounder = make_grounder(cfg.grounding.method, self.world_model, cfg.grounding,
                                      planner=self.planner,
                                      inverse_dynamics=self.inverse_dynamics)
        n, extra = self.spec.num_joints, mc.action_dim - self.spec.num_joints
        self.bounds = _trust_region(ActionBounds.from_robot_spec(
            self.spec, self.plan_dt_s, (-1.0,) * extra, (1.0,) * extra,
            velocity_scale=cfg.action_velocity_scale), self.models.norm, cfg.action_std_bound)
        self._n = n
        self.reset()

    @property
    def method(self) -> str:
        return self.grounder.name

    @property
    def backend_name(self) -> str:
        """The backend running the networks: tensorrt, onnxruntime_cuda, onnxruntime, torch."""
        return self.backend.name

    @property
    def backend_info(self) -> dict[str, object]:
        """What runs where (backend, providers / device, versions), for /diagnostics."""
        return self.backend.describe()

    def _adapt(self, cfg: PipelineConfig) -> tuple[object, object, object]:
        """World model, planner and inverse dynamics in rad, forward passes on the backend."""
        if self.backend.name == 'torch':
            return adapt_model_set(self.models)
        from vidplan_ros.runtime.backend_models import (BackendInverseDynamics,
                                                        BackendPlanner, BackendWorldModel)
        ms, b = self.models, self.backend
        return (BackendWorldModel(ms.world_model, ms.norm, b, cfg.world_model_grad,
                                  vjp_batch=self.horizon),
                BackendPlanner(ms.planner, ms.norm, b),
                BackendInverseDynamics(ms.inverse_dynamics, ms.norm, b,
                                       ms.cfg.inverse_dynamics.step_gain))

    def reset(self) -> None:
        """Forget the previous solution and restart the noise sequence (a new episode)."""
        self._last: Replan | None = None
        self._count = 0

    # --- stages ---------------------------------------------------------------------------

    def preprocess(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """Camera frames ``{camera: (H, W, 3) uint8 RGB}`` -> ``(V, S, S, 3)`` uint8."""
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise VidplanError(f'no frame from camera(s) {missing}; the model '
                               f'{self.model_dir.name} needs {list(self.cameras)}')
        return np.stack([square_resize(np.asarray(images[c]), self.image_size)
                         for c in self.cameras])

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """``(V, S, S, 3)`` uint8 -> latent ``(V, C, h, w)`` float32."""
        x = np.asarray(frames).transpose(0, 3, 1, 2)[None].astype(np.float32) / np.float32(255)
        return self.backend.run('encoder', images=x)[0][0]

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Latents ``(T, V, C, h, w)`` -> images ``(T, V, S, S, 3)`` uint8."""
        (img,) = self.backend.run('decoder', latent=np.asarray(latents, np.float32))
        return (np.clip(img.transpose(0, 1, 3, 4, 2), 0, 1) * 255 + 0.5).astype(np.uint8)

    def noise(self, index: int) -> np.ndarray:
        """The planner noise ``(H, V, C, h, w)`` of replan ``index`` (deterministic), scaled
        by the model set's ``planner.noise_scale``. A fresh draw per replan matters: with one
        draw for every replan g1_reach fell from 57% to 6% (a deterministic plan has fixed
        points short of the target; results/eval/planner_diagnosis)."""
        g = torch.Generator().manual_seed(self.cfg.noise_seed + int(index))
        noise = torch.randn((self.horizon, *self.latent_shape), generator=g)
        return (noise * self.models.cfg.planner.noise_scale).numpy()

    @torch.no_grad()
    def imagine(self, z0: np.ndarray, q0_rad: np.ndarray,
                noise: np.ndarray | None = None) -> np.ndarray:
        """Latent video plan ``(H, V, C, h, w)`` from the latent and joints now."""
        dev = self.cfg.device
        noise = self.noise(self._count) if noise is None else noise
        out = self.planner.sample(torch.as_tensor(z0[None], device=dev),
                                  torch.as_tensor(np.asarray(q0_rad, np.float32)[None],
                                                  device=dev),
                                  torch.as_tensor(noise[None], device=dev), 0)
        return out[0].cpu().numpy()

    def ground(self, z0: np.ndarray, q0_rad: np.ndarray, video_plan: np.ndarray,
               warm_start: WarmStart | None = None) -> GroundingResult:
        q0 = np.asarray(q0_rad, np.float32)
        problem = GroundingProblem(z0=z0, q0=q0, video_plan=video_plan, bounds=self.bounds,
                                   action_prior=self.action_prior(z0, q0))
        return self.grounder(problem, warm_start)

    def action_prior(self, z0: np.ndarray, q0_rad: np.ndarray) -> np.ndarray | None:
        """``(H, A)`` actions (rad) of the planner's action-prior head for ``(z0, q0)``, the
        ones its plans are conditioned on, or None when the model set has no head."""
        dev = self.cfg.device
        a = self.planner.prior_actions(torch.as_tensor(z0[None], device=dev),
                                       torch.as_tensor(np.asarray(q0_rad, np.float32)[None],
                                                       device=dev))
        return None if a is None else a[0].cpu().numpy()

    def to_plan(self, result: GroundingResult, stamp_s: float) -> GroundedPlan:
        """Joint targets of ``result``: ``q_pred[0]`` (the measured joints) at the stamp, then
        ``q_pred[k] + a_k`` at ``(k + 1) * plan_dt_s``. Starting at the observed state lets the
        executor splice from where the robot was, however far the first step goes."""
        n = self._n
        targets = np.concatenate([result.q_pred[:1, :n],
                                  result.q_pred[:-1, :n] + result.actions[:, :n]])
        lo = np.asarray(self.spec.position_min_rad) + self.spec.position_margin_rad
        hi = np.asarray(self.spec.position_max_rad) - self.spec.position_margin_rad
        times = self.plan_dt_s * np.arange(len(targets))
        return GroundedPlan(stamp_s=float(stamp_s), times_from_stamp_s=times,
                            positions_rad=np.clip(targets, lo, hi).astype(float),
                            velocities_rad_s=None,
                            dynamics_residual=float(result.dynamics_residual),
                            alignment=float(result.rollout_alignment), source=result.method)

    # --- all stages -----------------------------------------------------------------------

    def warm_start_at(self, stamp_s: float) -> WarmStart | None:
        """The previous solution shifted to ``stamp_s`` (whole plan steps), or None."""
        last = self._last
        if last is None or not self.cfg.warm_start:
            return None
        steps = int(round((stamp_s - last.stamp_s) / self.plan_dt_s))
        if steps < 0 or steps >= self.horizon:
            return None
        return shift_warm_start(last.result, steps)

    def ground_plan(self, z0: np.ndarray, q0_rad: np.ndarray, video_plan: np.ndarray,
                    stamp_s: float) -> Replan:
        """Ground ``video_plan`` made from the observation ``(z0, q0)`` stamped ``stamp_s``,
        warm-started from the previous pass (``warm_start_at``), as a joint plan; remembered
        for the next pass's warm start. The grounding stage alone (the grounding node)."""
        q0 = self._joints(q0_rad)
        warm = self.warm_start_at(stamp_s)
        t0 = time.perf_counter()
        result = self.ground(z0, q0, video_plan, warm)
        out = Replan(stamp_s=float(stamp_s), z0=z0, video_plan=video_plan, result=result,
                     plan=self.to_plan(result, stamp_s),
                     timings_s={'ground': time.perf_counter() - t0},
                     warm_started=warm is not None)
        self._last = out
        return out

    def replan(self, images: dict[str, np.ndarray], q0_rad: np.ndarray, stamp_s: float,
               video_plan: np.ndarray | None = None,
               plan_hook: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None
               = None) -> Replan:
        """Encode, imagine (unless ``video_plan`` is given), pass the plan through
        ``plan_hook(z0, q0, plan)`` if given (corruptions; not counted as imagine time), then
        :meth:`ground_plan`."""
        q0 = self._joints(q0_rad)
        t0 = time.perf_counter()
        z0 = self.encode(self.preprocess(images))
        t1 = time.perf_counter()
        plan = self.imagine(z0, q0) if video_plan is None else np.asarray(video_plan, np.float32)
        t2 = time.perf_counter()
        if plan_hook is not None:
            plan = np.asarray(plan_hook(z0, q0, plan), np.float32)
        out = self.ground_plan(z0, q0, plan, stamp_s)
        out.timings_s.update(encode=t1 - t0, imagine=t2 - t1)
        self._count += 1
        return out

    def _joints(self, q0_rad: np.ndarray) -> np.ndarray:
        q0 = np.asarray(q0_rad, np.float32).reshape(-1)
        if q0.shape != (self._n,) or not np.isfinite(q0).all():
            raise VidplanError(f'joint positions must be {self._n} finite values (rad); got '
                               f'{np.asarray(q0_rad).tolist()}')
        return q0

    def with_method(self, method: str) -> Pipeline:
        """The same models with another grounding method (shares the loaded weights)."""
        other = object.__new__(Pipeline)
        other.__dict__.update(self.__dict__)
        other.cfg = replace(self.cfg, grounding=replace(self.cfg.grounding, method=method))
        other.grounder = make_grounder(method, self.world_model, other.cfg.grounding,
                                       planner=self.planner,
                                       inverse_dynamics=self.inverse_dynamics)
        other.reset()
        return other
