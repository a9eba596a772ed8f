"""Video-plan corruptions do what they say, deterministically."""

import numpy as np
import pytest

from vidplan_ros.core.errors import ConfigValueError
from vidplan_ros.eval.corruptions import (CORRUPTIONS, CorruptionConfig, PlanCorruptor,
                                             blur_video, corrupt, drop_indices,
                                             duplicate_indices, frame_drop, frame_duplicate,
                                             latent_noise, motion_blur)

H, SHAPE = 8, (2, 8, 8, 8)


def _plan(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((H, *SHAPE)).astype(np.float32),
            rng.standard_normal(SHAPE).astype(np.float32))


class PixelCodec:
    """A lossless stand-in for the autoencoder: latent (V, C, h, w) <-> (V, h, w, 3) uint8."""

    def decode(self, latents: np.ndarray) -> np.ndarray:
        x = np.asarray(latents)[:, :, :3].transpose(0, 1, 3, 4, 2)
        return np.clip(128 + 40 * x, 0, 255).astype(np.uint8)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        z = (np.asarray(frames, np.float32) - 128) / 40
        return np.concatenate([z.transpose(0, 3, 1, 2), np.zeros((2, 5, 8, 8), np.float32)], 1)


def _high_frequency(frames: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels (both image axes)."""
    x = np.asarray(frames, np.float32)
    return float(np.abs(np.diff(x, axis=-2)).mean() + np.abs(np.diff(x, axis=-3)).mean())


def test_drop_holds_the_previous_frame():
    plan, z0 = _plan()
    rng = np.random.default_rng(3)
    src = drop_indices(H, np.random.default_rng(3), 0.5)
    out = frame_drop(plan, z0, rng, 0.5)
    frames = np.concatenate([z0[None], plan])
    assert out.shape == plan.shape
    np.testing.assert_array_equal(out, frames[src])
    kept = [k for k in range(H) if src[k] == k + 1]
    assert len(kept) == H - 4                      # half of the frames dropped
    for k in set(range(H)) - set(kept):            # a dropped frame shows the one before
        np.testing.assert_array_equal(out[k], out[k - 1] if k else z0)


def test_duplicate_stretches_time():
    plan, _ = _plan()
    src = duplicate_indices(H, np.random.default_rng(5), 0.5)
    out = frame_duplicate(plan, np.random.default_rng(5), 0.5)
    np.testing.assert_array_equal(out, plan[src])
    assert src[0] == 0 and set(np.diff(src)) <= {0, 1}
    assert (np.diff(src) == 0).sum() >= 1 and src[-1] < H - 1   # slower: ends before the end
    full = duplicate_indices(H, np.random.default_rng(0), 1.0)
    np.testing.assert_array_equal(full, np.arange(H) // 2)      # every frame twice: 2x slower


def test_latent_noise_has_the_asked_std():
    plan, _ = _plan()
    plan = 3 * plan + 1
    out = latent_noise(plan, np.random.default_rng(0), 0.25)
    rms = np.sqrt(np.mean(plan.astype(np.float64) ** 2))
    assert np.std(out - plan) / rms == pytest.approx(0.25, rel=0.03)
    assert abs(np.mean(out - plan)) < 0.05 * rms
    np.testing.assert_array_equal(latent_noise(plan, np.random.default_rng(0), 0.0), plan)


def test_blur_reduces_high_frequencies():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (H + 1, 2, 32, 32, 3), dtype=np.uint8)
    blurred = blur_video(frames, 3, 1.0)
    assert blurred.shape == frames.shape and blurred.dtype == np.uint8
    assert _high_frequency(blurred) < 0.3 * _high_frequency(frames)
    # the temporal box: a constant-in-space video is averaged over neighbouring frames
    ramp = np.broadcast_to(np.arange(5, dtype=np.uint8)[:, None, None, None, None] * 30,
                           (5, 1, 4, 4, 3))
    assert blur_video(ramp, 3, 0.0)[2, 0, 0, 0, 0] == 60
    assert blur_video(ramp, 3, 0.0)[0, 0, 0, 0, 0] == 10    # edges replicated: (0+0+30)/3


def test_motion_blur_goes_through_pixels():
    plan, z0 = _plan()
    codec = PixelCodec()
    out = motion_blur(plan, z0, codec, 3, 1.0)
    assert out.shape == plan.shape and out.dtype == np.float32
    assert _high_frequency(codec.decode(out)) < 0.6 * _high_frequency(codec.decode(plan))
    np.testing.assert_array_equal(out[:, :, 3:], 0)       # re-encoded by the codec


def test_config_is_validated():
    with pytest.raises(ConfigValueError, match='blur_frames'):
        CorruptionConfig(name='motion_blur', blur_frames=2)
    with pytest.raises(ConfigValueError, match='name'):
        CorruptionConfig(name='smudge')
    with pytest.raises(ConfigValueError, match='drop_fraction'):
        CorruptionConfig(drop_fraction=1.5)


@pytest.mark.parametrize('name', [c for c in CORRUPTIONS if c != 'wrong_task'])
def test_corrupt_is_deterministic(name):
    plan, z0 = _plan()
    cfg = CorruptionConfig(name=name)

    def run(seed):
        return corrupt(cfg, plan, z0, np.random.default_rng(seed), PixelCodec())
    np.testing.assert_array_equal(run(1), run(1))
    assert run(1).shape == plan.shape
    if name in ('frame_drop', 'frame_duplicate', 'latent_noise'):
        assert not np.array_equal(run(1), run(2))
    if name == 'none':
        np.testing.assert_array_equal(run(1), plan)


def test_wrong_task_uses_the_other_plan():
    plan, z0 = _plan()
    other, _ = _plan(seed=9)
    out = corrupt(CorruptionConfig(name='wrong_task'), plan, z0, np.random.default_rng(0),
                  wrong_plan=lambda: other)
    np.testing.assert_array_equal(out, other)


@pytest.fixture(scope='module')
def reach():
    from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
    from vidplan_ros.sim.env import SimConfig, SimEnv
    pipeline = Pipeline(PipelineConfig(model='franka_reach', threads=1))
    env = SimEnv(SimConfig(robot='franka_fr3', task='franka/reach', cameras=pipeline.cameras))
    env.reset(1000)
    yield pipeline, env
    env.close()


def test_hooks_on_the_real_model_set(reach):
    """Seeded per (seed, episode, replan); motion blur sharpness drops through the real
    autoencoder; wrong_task returns franka_push's plan, unlike ours."""
    pipeline, env = reach
    frames = {c: env.render(c) for c in pipeline.cameras}
    z0, q0 = pipeline.encode(pipeline.preprocess(frames)), env.q()
    plan = pipeline.imagine(z0, q0, pipeline.noise(0))
    noisy = PlanCorruptor(CorruptionConfig(name='latent_noise'), pipeline)
    assert PlanCorruptor(CorruptionConfig(), pipeline).hook(1000) is None
    a, b = noisy.hook(1000), noisy.hook(1001)
    np.testing.assert_array_equal(a(0, z0, q0, plan), noisy.hook(1000)(0, z0, q0, plan))
    assert not np.array_equal(a(0, z0, q0, plan), b(0, z0, q0, plan))
    assert not np.array_equal(a(0, z0, q0, plan), a(1, z0, q0, plan))

    blur = PlanCorruptor(CorruptionConfig(name='motion_blur'), pipeline).hook(1000)
    blurred = blur(0, z0, q0, plan)
    assert _high_frequency(pipeline.decode(blurred)) < 0.9 * _high_frequency(
        pipeline.decode(plan))

    wrong = PlanCorruptor(CorruptionConfig(name='wrong_task'), pipeline, env)
    assert 'franka_push' in wrong.wrong.source
    w1 = wrong.hook(1000)(0, z0, q0, plan)
    assert w1.shape == plan.shape and not np.allclose(w1, plan, atol=1e-3)
    np.testing.assert_array_equal(w1, wrong.hook(1000)(0, z0, q0, plan))
    wrong.close()


def test_g1_wrong_task_mirrors_the_target_and_leaves_the_env_alone():
    from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
    from vidplan_ros.sim.env import SimConfig, SimEnv
    pipeline = Pipeline(PipelineConfig(model='g1_reach', threads=1))
    with SimEnv(SimConfig(robot='unitree_g1', task='g1/reach',
                          cameras=pipeline.cameras)) as env:
        env.reset(1001)
        target = env.task_state().target_pos_m.copy()
        before = {c: env.render(c) for c in pipeline.cameras}
        corruptor = PlanCorruptor(CorruptionConfig(name='wrong_task'), pipeline, env)
        corruptor.hook(1001)
        assert 'mirrored' in corruptor.wrong.source
        mirrored = corruptor.wrong._mirrored_frames()
        assert all(not np.array_equal(mirrored[c], before[c]) for c in pipeline.cameras)
        np.testing.assert_array_equal(env.task_state().target_pos_m, target)
        for c in pipeline.cameras:
            np.testing.assert_array_equal(env.render(c), before[c])
        plan = corruptor.wrong(0, env.q())
        assert plan.shape == (pipeline.horizon, *pipeline.latent_shape)
        corruptor.close()
