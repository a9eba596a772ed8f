"""runtime.backends / backend_models / tensorrt_engine: the same Pipeline on every backend.

Bounds: the ONNX Runtime CPU pipeline matches the torch pipeline within 1e-4 on latents and
plans (measured 3e-6 on g1_reach) and within one grey level on decoded images; the grounded
actions within 1e-3 rad (measured 5e-7: GVP-WM's gradient steps run in torch on both, only
forward passes differ). GPU backends: the same bounds for fp32, 5e-2 for FP16 engines.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.runtime.backends import (AUTO_ORDER, BackendConfig, TorchBackend,
                                          make_backend, unavailable_reason)
from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig

pytest.importorskip('onnxruntime')
MODEL = 'g1_reach'
TRT_REASON = unavailable_reason('tensorrt')
ORT_CUDA_REASON = unavailable_reason('onnxruntime_cuda')


@pytest.fixture(scope='module', autouse=True)
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv('VIDPLAN_CACHE', str(tmp_path_factory.mktemp('cache')))
    torch.set_num_threads(1)
    yield
    mp.undo()


@pytest.fixture(scope='module')
def torch_pipe() -> Pipeline:
    return Pipeline(PipelineConfig(model=MODEL, backend='torch'))


def _inputs(pipe: Pipeline):
    rng = np.random.default_rng(3)
    s = pipe.image_size
    frames = {c: rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for c in pipe.cameras}
    q = np.asarray(pipe.models.norm.q_mean) + 0.05
    return frames, q


def _compare(ref: Pipeline, other: Pipeline, atol: float, action_atol: float) -> None:
    frames, q = _inputs(ref)
    z_ref, z = ref.encode(ref.preprocess(frames)), other.encode(other.preprocess(frames))
    np.testing.assert_allclose(z, z_ref, atol=atol)
    noise = ref.noise(0)
    plan_ref, plan = ref.imagine(z_ref, q, noise), other.imagine(z_ref, q, noise)
    np.testing.assert_allclose(plan, plan_ref, atol=atol)
    img_ref, img = ref.decode(plan_ref[:3]), other.decode(plan_ref[:3])
    assert img.shape == img_ref.shape and img.dtype == np.uint8
    assert np.abs(img.astype(int) - img_ref).max() <= max(1, int(atol * 255 * 4))
    r_ref = ref.ground(z_ref, q, plan_ref).actions
    r = other.ground(z_ref, q, plan_ref).actions
    np.testing.assert_allclose(r, r_ref, atol=action_atol)


def test_onnxruntime_pipeline_matches_torch(torch_pipe):
    pipe = Pipeline(PipelineConfig(model=MODEL, backend='onnxruntime'))
    assert pipe.backend_name == 'onnxruntime'
    assert pipe.backend_info['providers'] == ['CPUExecutionProvider']
    _compare(torch_pipe, pipe, atol=1e-4, action_atol=1e-3)
    # and the whole replan runs, with every stage timed
    frames, q = _inputs(pipe)
    rp = pipe.replan(frames, q, stamp_s=0.0)
    assert set(rp.timings_s) == {'encode', 'imagine', 'ground'}
    assert np.isfinite(rp.plan.positions_rad).all()


def test_denoiser_steps_match_the_sampler_graph(torch_pipe):
    """The Euler loop over the one-step graph is the unrolled sampler (K steps), and other
    step counts (WAV's planner_steps) go through it too."""
    from vidplan_ros.runtime.backend_models import BackendPlanner
    backend = make_backend(BackendConfig('onnxruntime'), torch_pipe.models,
                           torch_pipe.model_dir)
    ms = torch_pipe.models
    graph = BackendPlanner(ms.planner, ms.norm, backend, sampler='graph')
    steps = BackendPlanner(ms.planner, ms.norm, backend, sampler='steps')
    frames, q = _inputs(torch_pipe)
    z0 = torch.as_tensor(torch_pipe.encode(torch_pipe.preprocess(frames)))[None]
    q0 = torch.as_tensor(q, dtype=torch.float32)[None]
    noise = torch.as_tensor(torch_pipe.noise(1))[None]
    a, b = graph.sample(z0, q0, noise, 0), steps.sample(z0, q0, noise, 0)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
    with torch.no_grad():
        ref4 = torch_pipe.planner.sample(z0, q0, noise, 4)
    np.testing.assert_allclose(graph.sample(z0, q0, noise, 4).numpy(), ref4.numpy(), atol=1e-4)


def test_onnxruntime_threads_spin_only_inside_runs(torch_pipe):
    """The sampler and world model spin within a run and stop when it returns (never on into
    GVP-WM's torch backward passes); the encoder does not spin."""
    backend = make_backend(BackendConfig('onnxruntime'), torch_pipe.models,
                           torch_pipe.model_dir)

    def entry(graph: str, key: str) -> str:
        return backend.session(graph).get_session_options().get_session_config_entry(key)

    for graph in ('sampler', 'world_model'):
        assert entry(graph, 'session.intra_op.allow_spinning') == '1'
        assert entry(graph, 'session.force_spinning_stop') == '1'
    assert entry('encoder', 'session.intra_op.allow_spinning') == '0'


def test_world_model_gradient_runs_in_torch_and_matches(torch_pipe):
    """GVP-WM's gradient through the ONNX Runtime world model adapter equals torch's."""
    from vidplan_ros.runtime.backend_models import BackendWorldModel
    ms = torch_pipe.models
    backend = make_backend(BackendConfig('onnxruntime'), ms, torch_pipe.model_dir)
    wm = BackendWorldModel(ms.world_model, ms.norm, backend)
    H, lat, n = torch_pipe.horizon, torch_pipe.latent_shape, ms.cfg.action_dim
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(H, *lat, generator=gen)
    q = torch.as_tensor(ms.norm.q_mean) + 0.1 * torch.randn(H, n, generator=gen)
    a = 0.01 * torch.randn(H, n, generator=gen)
    grads = []
    for model in (torch_pipe.world_model, wm):
        zz, aa = z.clone().requires_grad_(), a.clone().requires_grad_()
        zn, qn = model.step(zz, q, aa)
        grads.append(torch.autograd.grad(zn.square().sum() + qn.sum(), [zz, aa]))
    for g_ref, g in zip(*grads):
        torch.testing.assert_close(g, g_ref, atol=1e-4, rtol=1e-4)
    with torch.no_grad():   # forward-only calls go to the backend and agree
        torch.testing.assert_close(wm.step(z, q, a)[0], torch_pipe.world_model.step(z, q, a)[0],
                                   atol=1e-4, rtol=1e-4)


def test_vjp_graph_gradient_matches_torch(torch_pipe):
    pytest.importorskip('onnxscript', reason='exporting world_model_vjp needs onnxscript')
    pipe = Pipeline(PipelineConfig(model=MODEL, backend='onnxruntime',
                                   world_model_grad='vjp_graph'))
    H, lat, n = pipe.horizon, pipe.latent_shape, pipe.models.cfg.action_dim
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(H, *lat, generator=gen)
    q = torch.as_tensor(pipe.models.norm.q_mean) + 0.1 * torch.randn(H, n, generator=gen)
    a = 0.01 * torch.randn(H, n, generator=gen)
    grads = []
    for model in (torch_pipe.world_model, pipe.world_model):
        zz, qq, aa = (x.clone().requires_grad_() for x in (z, q, a))
        zn, qn = model.step(zz, qq, aa)
        grads.append(torch.autograd.grad(zn.square().sum() + qn.sum(), [zz, qq, aa]))
    for g_ref, g in zip(*grads):   # float32 sums in another order: 2.4e-4 on |g| ~ 1
        torch.testing.assert_close(g, g_ref, atol=1e-3, rtol=1e-3)
    frames, q0 = _inputs(pipe)
    z0 = torch_pipe.encode(torch_pipe.preprocess(frames))
    plan = torch_pipe.imagine(z0, q0, torch_pipe.noise(0))
    np.testing.assert_allclose(pipe.ground(z0, q0, plan).actions,
                               torch_pipe.ground(z0, q0, plan).actions, atol=1e-3)


def test_auto_takes_the_first_usable_backend_and_logs_it(caplog):
    caplog.set_level(logging.INFO, logger='vidplan.runtime')
    pipe = Pipeline(PipelineConfig(model=MODEL))
    usable = [b for b in AUTO_ORDER if unavailable_reason(b) is None]
    assert pipe.backend_name == usable[0]
    assert f'backend {pipe.backend_name}' in caplog.text
    if TRT_REASON:  # what auto skipped, and why, is in the log
        assert 'skipped tensorrt' in caplog.text


def test_torch_backend_is_the_model_set_itself(torch_pipe):
    assert isinstance(torch_pipe.backend, TorchBackend)
    assert torch_pipe.backend_name == 'torch'
    assert torch_pipe.backend_info['device'] == 'cpu'


def test_unknown_or_unusable_backend_is_a_clear_error():
    with pytest.raises(VidplanError, match='backend'):
        PipelineConfig(model=MODEL, backend='openvino')
    with pytest.raises(VidplanError, match='world_model_grad'):
        PipelineConfig(model=MODEL, world_model_grad='finite_differences')
    if TRT_REASON:
        with pytest.raises(VidplanError, match='tensorrt'):
            Pipeline(PipelineConfig(model=MODEL, backend='tensorrt'))


def test_with_method_keeps_the_backend():
    pipe = Pipeline(PipelineConfig(model=MODEL, backend='onnxruntime'))
    other = pipe.with_method('inverse_dynamics')
    assert other.backend is pipe.backend and other.backend_name == 'onnxruntime'
    assert dataclasses.replace(other.cfg).backend == 'onnxruntime'


def test_engine_cache_key_names_gpu_trt_version_hash_and_precision(tmp_path, monkeypatch):
    """Runs without a GPU: the key is computed from the given GPU name and version."""
    from vidplan_ros.runtime.tensorrt_engine import engine_path
    monkeypatch.setenv('VIDPLAN_CACHE', str(tmp_path))
    p = engine_path('ab' * 32, fp16=True, gpu_name='NVIDIA H100 80GB HBM3',
                    trt_version='10.13.0')
    assert p.parent == tmp_path / 'engines'
    assert p.name == 'NVIDIA_H100_80GB_HBM3-trt10.13.0-abababababababab-fp16.engine'
    assert engine_path('ab' * 32, False, 'x', '10.13.0') != engine_path('ab' * 32, False, 'x',
                                                                        '11.0')


@pytest.mark.skipif(bool(ORT_CUDA_REASON), reason=f'onnxruntime_cuda: {ORT_CUDA_REASON}')
def test_onnxruntime_cuda_pipeline_matches_torch(torch_pipe):
    pipe = Pipeline(PipelineConfig(model=MODEL, backend='onnxruntime_cuda'))
    assert pipe.backend_info['providers'][0] == 'CUDAExecutionProvider'
    _compare(torch_pipe, pipe, atol=1e-3, action_atol=1e-2)


@pytest.mark.skipif(bool(TRT_REASON), reason=f'tensorrt: {TRT_REASON}')
@pytest.mark.parametrize('precision, atol', [('fp32', 1e-3), ('fp16', 5e-2)])
def test_tensorrt_pipeline_matches_torch(torch_pipe, precision, atol):
    from vidplan_ros.runtime.tensorrt_engine import engine_path
    pipe = Pipeline(PipelineConfig(model=MODEL, backend='tensorrt', precision=precision))
    assert pipe.backend_name == 'tensorrt'
    _compare(torch_pipe, pipe, atol=atol, action_atol=10 * atol)
    entry = pipe.backend.manifest['graphs']['encoder']
    assert engine_path(entry['sha256'], precision == 'fp16').is_file()   # cached
