"""Corrupted video plans: GVP-WM's robustness study (arXiv 2602.01960) on our planner's plans.

Every corruption maps a latent video plan ``(H, V, C, h, w)`` (``plan[k]`` imagined after step
``k``, next to the observed latent ``z0 (V, C, h, w)``) to another plan of the same shape; the
ones that need pictures go through the model set's decoder and encoder. Randomness comes only
from the ``numpy.random.Generator`` passed in, so a corruption is a pure, deterministic function
of its inputs. :class:`PlanCorruptor` turns one into the ``plan_hook`` of
:func:`vidplan_ros.eval.closed_loop.run_closed_loop`, seeded per (seed, episode, replan).

- ``motion_blur``: decode, average each frame with its temporal neighbours (``blur_frames``
  frames centred on it, the observation before the first) and blur it in space (Gaussian,
  ``blur_sigma_px``), re-encode: a smeared, low-detail video as generators make under fast motion.
- ``frame_drop``: a ``drop_fraction`` of the frames (chosen at random) is lost and the video
  holds the last frame shown (the observation if the first is lost): stutter, jumps.
- ``frame_duplicate``: a ``duplicate_fraction`` of the frames is shown twice, pushing the rest
  later and out of the horizon: a time-stretched (slow) plan.
- ``latent_noise``: Gaussian noise of std ``noise_std`` x the plan's RMS on every latent.
- ``wrong_task``: a confident plan for another task from the same observation (see
  :class:`WrongTaskPlanner`): the Franka tasks use the other Franka model set's planner (reach ->
  push, push -> reach); a reach task without a second model set (G1) uses its own planner on the
  observation with the target reflected across the robot's sagittal plane (y -> -y), i.e. the
  plan for reaching with the other hand (g1/reach_left <-> g1/reach_right).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from vidplan_ros.core.config import require, require_one_of
from vidplan_ros.core.errors import VidplanError

if TYPE_CHECKING:
    from vidplan_ros.eval.closed_loop import PlanHook
    from vidplan_ros.runtime.pipeline import Pipeline
    from vidplan_ros.sim.env import SimEnv

__all__ = ['CORRUPTIONS', 'CorruptionConfig', 'PlanCorruptor', 'WrongTaskPlanner',
           'blur_video', 'corrupt', 'drop_indices', 'duplicate_indices', 'frame_drop',
           'frame_duplicate', 'latent_noise', 'motion_blur']

CORRUPTIONS = ('none', 'motion_blur', 'frame_drop', 'frame_duplicate', 'latent_noise',
               'wrong_task')
# wrong_task: the model set whose planner imagines the other task (else: mirrored goal)
WRONG_TASK_MODEL = {'franka_reach': 'franka_push', 'franka_push': 'franka_reach'}


class LatentCodec(Protocol):
    """What the pixel-space corruptions need of a pipeline (Pipeline has both)."""

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """``(T, V, C, h, w)`` -> ``(T, V, S, S, 3)`` uint8."""
        ...

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """``(V, S, S, 3)`` uint8 -> ``(V, C, h, w)``."""
        ...


@dataclass(frozen=True)
class CorruptionConfig:
    """Which corruption and how strong (defaults: clearly visible, not destroyed)."""

    name: str = 'none'                # one of CORRUPTIONS
    seed: int = 0                     # with the episode seed and replan index: the randomness
    blur_frames: int = 3              # motion_blur: temporal window (odd, frames)
    blur_sigma_px: float = 1.0        # motion_blur: spatial Gaussian std, decoded pixels
    drop_fraction: float = 0.5        # frame_drop: share of the H frames lost
    duplicate_fraction: float = 0.5   # frame_duplicate: share of the H frames shown twice
    noise_std: float = 0.5            # latent_noise: std relative to the plan's RMS
    wrong_task_model: str = ''        # wrong_task: '' = WRONG_TASK_MODEL or the mirrored goal

    def __post_init__(self) -> None:
        require_one_of(self, 'name', CORRUPTIONS)
        require(self.seed >= 0, 'seed', self.seed, 'an integer >= 0')
        require(self.blur_frames >= 1 and self.blur_frames % 2 == 1, 'blur_frames',
                self.blur_frames, 'an odd number of frames >= 1')
        require(self.blur_sigma_px >= 0, 'blur_sigma_px', self.blur_sigma_px, '>= 0 px')
        for name in ('drop_fraction', 'duplicate_fraction'):
            value = getattr(self, name)
            require(0 <= value <= 1, name, value, 'a fraction in [0, 1]')
        require(self.noise_std >= 0, 'noise_std', self.noise_std, '>= 0 (relative std)')


# --- index maps (shared by the tests) --------------------------------------------------------

def drop_indices(horizon: int, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """``(H,)`` source of each output frame in ``[z0, plan[0], ..., plan[H-1]]`` (0 = z0).

    ``round(fraction * H)`` frames, chosen at random, are dropped and hold the frame before.
    """
    src = np.arange(1, horizon + 1)
    dropped = rng.choice(horizon, size=int(round(fraction * horizon)), replace=False)
    for k in sorted(dropped):
        src[k] = src[k - 1] if k > 0 else 0
    return src


def duplicate_indices(horizon: int, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """``(H,)`` plan index of each output frame: ``round(fraction * H)`` random frames are
    shown twice and the video is cut back to ``H`` frames (non-decreasing, steps of 0 or 1)."""
    twice = set(rng.choice(horizon, size=int(round(fraction * horizon)), replace=False).tolist())
    src: list[int] = []
    for k in range(horizon):
        src += [k, k] if k in twice else [k]
    return np.asarray(src[:horizon])


# --- the corruptions -------------------------------------------------------------------------

def frame_drop(plan: np.ndarray, z0: np.ndarray, rng: np.random.Generator,
               fraction: float = 0.5) -> np.ndarray:
    """Lost frames hold the previous frame (the observation ``z0`` before the first)."""
    frames = np.concatenate([np.asarray(z0)[None], plan])
    return frames[drop_indices(len(plan), rng, fraction)].astype(np.float32)


def frame_duplicate(plan: np.ndarray, rng: np.random.Generator,
                    fraction: float = 0.5) -> np.ndarray:
    """Random frames shown twice, the plan stretched in time and cut at ``H`` frames."""
    return np.asarray(plan)[duplicate_indices(len(plan), rng, fraction)].astype(np.float32)


def latent_noise(plan: np.ndarray, rng: np.random.Generator,
                 relative_std: float = 0.5) -> np.ndarray:
    """``plan + relative_std * rms(plan) * N(0, 1)`` elementwise."""
    plan = np.asarray(plan, np.float32)
    rms = float(np.sqrt(np.mean(np.square(plan, dtype=np.float64))))
    return (plan + relative_std * rms * rng.standard_normal(plan.shape)).astype(np.float32)


def _gauss_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def _convolve_axis(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Same-size convolution along ``axis`` with edge replication."""
    r = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = np.pad(x, pad, mode='edge')
    n = x.shape[axis]
    out = np.zeros_like(x)
    for i, w in enumerate(kernel):
        out += w * np.take(xp, np.arange(i, i + n), axis=axis)
    return out


def blur_video(frames: np.ndarray, time_frames: int = 3, sigma_px: float = 1.0) -> np.ndarray:
    """Blur ``(T, V, S, S, 3)`` uint8 frames: a box of ``time_frames`` frames centred on each
    (edges replicated), then a Gaussian of std ``sigma_px`` in space. Returns uint8."""
    x = np.asarray(frames, np.float32)
    if time_frames > 1:
        x = _convolve_axis(x, np.full(time_frames, 1.0 / time_frames, np.float32), 0)
    if sigma_px > 0:
        k = _gauss_kernel(sigma_px).astype(np.float32)
        x = _convolve_axis(_convolve_axis(x, k, 2), k, 3)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def motion_blur(plan: np.ndarray, z0: np.ndarray, codec: LatentCodec, time_frames: int = 3,
                sigma_px: float = 1.0) -> np.ndarray:
    """Decode ``[z0, plan]``, :func:`blur_video` it, re-encode the plan frames."""
    frames = codec.decode(np.concatenate([np.asarray(z0)[None], plan]))
    blurred = blur_video(frames, time_frames, sigma_px)[1:]
    return np.stack([codec.encode(f) for f in blurred]).astype(np.float32)


def corrupt(cfg: CorruptionConfig, plan: np.ndarray, z0: np.ndarray, rng: np.random.Generator,
            codec: LatentCodec | None = None,
            wrong_plan: Callable[[], np.ndarray] | None = None) -> np.ndarray:
    """Apply ``cfg.name`` to ``plan``; ``codec`` for motion_blur, ``wrong_plan()`` (the other
    task's plan now) for wrong_task."""
    name = cfg.name
    if name == 'none':
        return np.asarray(plan, np.float32)
    if name == 'frame_drop':
        return frame_drop(plan, z0, rng, cfg.drop_fraction)
    if name == 'frame_duplicate':
        return frame_duplicate(plan, rng, cfg.duplicate_fraction)
    if name == 'latent_noise':
        return latent_noise(plan, rng, cfg.noise_std)
    if name == 'motion_blur':
        if codec is None:
            raise VidplanError('motion_blur needs the pipeline (codec=) to decode and encode')
        return motion_blur(plan, z0, codec, cfg.blur_frames, cfg.blur_sigma_px)
    if wrong_plan is None:
        raise VidplanError("wrong_task needs the other task's planner (wrong_plan=)")
    out = np.asarray(wrong_plan(), np.float32)
    if out.shape != np.shape(plan):
        raise VidplanError(f'the wrong-task plan has shape {out.shape}, the plan '
                           f'{np.shape(plan)}: use a model set with the same latent shape '
                           'and horizon')
    return out


# --- wrong task ------------------------------------------------------------------------------

class WrongTaskPlanner:
    """The plan another task's planner imagines from the current observation, in our latents.

    ``other_model``: that model set's encoder, planner (with its noise of the same replan index)
    and decoder, then our encoder frame by frame (pixels are the common ground of two model
    sets). Otherwise (reach tasks): our planner on the observation rendered in a shadow copy of
    the env with the target reflected across the base's x-z plane (y -> -y).
    """

    def __init__(self, pipeline: Pipeline, env: SimEnv, other_model: str = '') -> None:
        from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
        from vidplan_ros.sim.env import SimEnv
        self.pipeline, self.env = pipeline, env
        name = other_model or WRONG_TASK_MODEL.get(pipeline.model_dir.name, '')
        self.other: Pipeline | None = None
        self._shadow: SimEnv | None = None
        if name:
            self.other = Pipeline(PipelineConfig(model=name, device=pipeline.cfg.device),
                                  pipeline.spec)
            self.source = f'planner of model set {self.other.model_dir.name}'
            if not set(self.other.cameras) <= set(env.camera_names):
                # the other set looks through cameras ours does not render: a copy of the
                # env (state copied at each replan) that has them
                self._shadow = SimEnv(replace(env.cfg, cameras=self.other.cameras))
        elif env.task.name.split('/')[-1].startswith('reach'):
            self._shadow = SimEnv(env.cfg)
            self.source = 'own planner, target mirrored y -> -y'
        else:
            raise VidplanError(f'wrong_task: no other model set for {pipeline.model_dir.name!r} '
                               f'and task {env.task.name!r} is not a reach task; pass '
                               'wrong_task_model')

    def reset(self, seed: int) -> None:
        """A new episode from ``seed`` (the shadow env takes the same appearance)."""
        if self._shadow is not None:
            self._shadow.reset(seed)

    def __call__(self, index: int, q0: np.ndarray) -> np.ndarray:
        """The wrong plan ``(H, V, C, h, w)`` for replan ``index`` at the env's state now."""
        p = self.pipeline
        if self.other is not None:
            o, view = self.other, self.env
            if self._shadow is not None:
                view = self._shadow
                view.copy_state_from(self.env)
            frames = {c: view.render(c) for c in o.cameras}
            z0 = o.encode(o.preprocess(frames))
            pictures = o.decode(o.imagine(z0, q0, o.noise(index)))
            return np.stack([p.encode(f) for f in pictures])
        frames = self._mirrored_frames()
        return p.imagine(p.encode(p.preprocess(frames)), q0, p.noise(index))

    def _mirrored_frames(self) -> dict[str, np.ndarray]:
        from vidplan_ros.sim.render import mujoco
        env, sh = self.env, self._shadow
        assert sh is not None
        sh.data.qpos[:] = env.data.qpos
        sh.data.qvel[:] = env.data.qvel
        sh.data.mocap_pos[:] = env.data.mocap_pos
        sh.data.mocap_quat[:] = env.data.mocap_quat
        target = np.asarray(env.task_state().target_pos_m) * np.array([1.0, -1.0, 1.0])
        sh.task.set_target(sh.data, target)     # type: ignore[attr-defined]
        mujoco.mj_forward(sh.model, sh.data)
        return {c: sh.render(c) for c in self.pipeline.cameras}

    def close(self) -> None:
        if self._shadow is not None:
            self._shadow.close()


class PlanCorruptor:
    """A corruption bound to a pipeline (and env, for wrong_task), as ``plan_hook``s."""

    def __init__(self, cfg: CorruptionConfig, pipeline: Pipeline,
                 env: SimEnv | None = None) -> None:
        self.cfg, self.pipeline = cfg, pipeline
        self.wrong: WrongTaskPlanner | None = None
        if cfg.name == 'wrong_task':
            if env is None:
                raise VidplanError('wrong_task needs the env to observe the other task')
            self.wrong = WrongTaskPlanner(pipeline, env, cfg.wrong_task_model)

    def hook(self, episode_seed: int) -> PlanHook | None:
        """The plan hook of one episode (None for 'none': the loop runs unchanged)."""
        if self.cfg.name == 'none':
            return None
        if self.wrong is not None:
            self.wrong.reset(episode_seed)
        cfg, codec, wrong = self.cfg, self.pipeline, self.wrong

        def hook(index: int, z0: np.ndarray, q0: np.ndarray, plan: np.ndarray) -> np.ndarray:
            rng = np.random.default_rng([cfg.seed, int(episode_seed), int(index)])
            source = None if wrong is None else (lambda: wrong(index, q0))
            return corrupt(cfg, plan, z0, rng, codec, source)
        return hook

    def close(self) -> None:
        if self.wrong is not None:
            self.wrong.close()
