"""runtime.export: every graph of every committed model set, exported now (into a temp dir) and
run under ONNX Runtime on the CPU, matches torch within a stated bound, at batch 1 and 3 (the
graphs are traced at batch 2, so a batch folded into a constant would fail here).

Bounds (max abs error over the output, outputs are O(1): normalised latents, images in [0, 1],
normalised joints and actions):
- fp32: 1e-4 (measured 3e-6 or less on all three model sets; the unrolled 8-step sampler 1e-6).
- fp16 (half-precision networks, float32 I/O; for TensorRT FP16): 1e-2 x max(1, max |torch|)
  (measured 4e-3 or less against the float32 torch model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vidplan_ros.core.config import config_from_params
from vidplan_ros.nn.model_config import ModelConfig
from vidplan_ros.nn.model_set import build_models, load_model_set
from vidplan_ros.runtime.export import (GRAPHS, ExportConfig, ensure_onnx, example_inputs,
                                        export_model_set, graph_modules, load_manifest,
                                        manifest_is_current, sha256_file, weights_sha256)
from vidplan_ros.runtime.pipeline import model_dir_for

ort = pytest.importorskip('onnxruntime')

MODELS = ('franka_reach', 'franka_push', 'g1_reach')
FP32_ATOL = 1e-4
FP16_RTOL = 1e-2


def _session(path: Path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=['CPUExecutionProvider'])


def _check_parity(model: str, out: Path, bound) -> None:
    ms = load_model_set(model_dir_for(model))
    manifest = load_manifest(out)
    for name, graph in graph_modules(ms).items():
        sess = _session(out / manifest['graphs'][name]['file'])
        assert [i.name for i in sess.get_inputs()] == list(graph.inputs)
        for batch in (1, 3):
            x = example_inputs(graph, batch, seed=batch)
            with torch.no_grad():
                ref = graph.module(*x.values())
            ref = ref if isinstance(ref, tuple) else (ref,)
            got = sess.run(None, {k: v.numpy() for k, v in x.items()})
            assert len(got) == len(ref)
            for g, r in zip(got, ref):
                r = r.numpy()
                assert g.shape == r.shape, (name, batch)
                err = float(np.abs(g - r).max())
                assert err <= bound(r), f'{model}/{name} batch {batch}: max error {err:.2e}'


@pytest.mark.parametrize('model', MODELS)
def test_fp32_export_matches_torch(model, tmp_path):
    torch.set_num_threads(1)
    manifest = export_model_set(model_dir_for(model), tmp_path)
    assert set(manifest['graphs']) == set(GRAPHS)
    _check_parity(model, tmp_path, lambda r: FP32_ATOL)


def test_planner_with_every_option_exports(tmp_path):
    """`planner.self_attention`: nn.MultiheadAttention's inference fast path has no ONNX op,
    so the export turns it off; with `planner.global_state` and `planner.action_prior` too,
    the denoiser and sampler match torch like the rest."""
    model = tmp_path / 'model'
    shutil.copytree(model_dir_for('franka_push'), model,
                    ignore=shutil.ignore_patterns('onnx'))
    info = json.loads((model / 'config.json').read_text())
    info['params']['planner.self_attention'] = True
    info['params']['planner.global_state'] = True
    info['params']['planner.action_prior'] = True
    (model / 'config.json').write_text(json.dumps(info))
    torch.manual_seed(0)
    planner = build_models(config_from_params(ModelConfig, info['params']))['planner']
    torch.save(planner.state_dict(), model / 'planner.pt')
    loaded = load_model_set(model).planner
    assert None not in (loaded.self_attn, loaded.state_in, loaded.prior)
    torch.set_num_threads(1)
    export_model_set(model, tmp_path / 'onnx')
    _check_parity(str(model), tmp_path / 'onnx', lambda r: FP32_ATOL)
    assert torch.backends.mha.get_fastpath_enabled()      # restored after the export


def test_fp16_export_matches_torch_within_half_precision(tmp_path):
    torch.set_num_threads(1)
    manifest = export_model_set(model_dir_for('g1_reach'), tmp_path,
                                ExportConfig(precision='fp16'))
    assert manifest['precision'] == 'fp16'
    _check_parity('g1_reach', tmp_path,
                  lambda r: FP16_RTOL * max(1.0, float(np.abs(r).max())))


def test_manifest_hashes_files_and_weights(tmp_path):
    model_dir = model_dir_for('g1_reach')
    cfg = ExportConfig(graphs=('world_model', 'inverse_dynamics'))
    manifest = export_model_set(model_dir, tmp_path, cfg)
    on_disk = json.loads((tmp_path / 'manifest.json').read_text())
    assert on_disk == manifest
    assert manifest['weights_sha256'] == weights_sha256(model_dir)
    for entry in manifest['graphs'].values():
        assert sha256_file(tmp_path / entry['file']) == entry['sha256']
        assert all(shape[0] == 'batch' for shape in entry['inputs'].values())
    graphs = cfg.graphs
    assert manifest_is_current(manifest, model_dir, tmp_path, graphs)
    assert not manifest_is_current(manifest, model_dir, tmp_path, GRAPHS)   # graphs missing
    assert not manifest_is_current(manifest, model_dir, tmp_path, graphs, precision='fp16')
    # another model set's weights (a retrained set): stale
    assert not manifest_is_current(manifest, model_dir_for('franka_reach'), tmp_path, graphs)
    # an edited file: stale
    with open(tmp_path / 'world_model.onnx', 'ab') as f:
        f.write(b'\0')
    assert not manifest_is_current(manifest, model_dir, tmp_path, graphs)


def test_ensure_onnx_reexports_when_the_weights_change(tmp_path, monkeypatch):
    monkeypatch.setenv('VIDPLAN_CACHE', str(tmp_path / 'cache'))
    model_dir = tmp_path / 'g1_reach'
    shutil.copytree(model_dir_for('g1_reach'), model_dir)
    graphs = ('world_model',)
    first, m1 = ensure_onnx(model_dir, graphs=graphs)
    assert first.parent == tmp_path / 'cache' / 'onnx'
    again, _ = ensure_onnx(model_dir, graphs=graphs)
    assert again == first                                   # reused, not re-exported
    state = torch.load(model_dir / 'world_model.pt', weights_only=True)
    state['out_z.bias'] += 0.5                              # "retrained"
    torch.save(state, model_dir / 'world_model.pt')
    second, m2 = ensure_onnx(model_dir, graphs=graphs)
    assert second != first and m2['weights_sha256'] != m1['weights_sha256']
    # an export beside the model set that matches the weights wins over the cache
    export_model_set(model_dir, model_dir / 'onnx', ExportConfig(graphs=graphs))
    beside, _ = ensure_onnx(model_dir, graphs=graphs)
    assert beside == model_dir / 'onnx'


def test_export_command_writes_beside_out(tmp_path, capsys):
    from vidplan_ros.cli import main
    assert main(['export', 'g1_reach', '--out', str(tmp_path), '--graphs', 'encoder']) == 0
    assert (tmp_path / 'encoder.onnx').is_file() and (tmp_path / 'manifest.json').is_file()
    assert 'manifest.json' in capsys.readouterr().out


def test_export_config_rejects_bad_values():
    from vidplan_ros.core.errors import VidplanError
    with pytest.raises(VidplanError, match='graphs'):
        ExportConfig(graphs=('planner',))
    with pytest.raises(VidplanError, match='precision'):
        ExportConfig(precision='int8')


def test_engine_build_without_tensorrt_says_why(tmp_path, capsys):
    from vidplan_ros.cli import main
    from vidplan_ros.runtime.backends import unavailable_reason
    if unavailable_reason('tensorrt') is None:
        pytest.skip('TensorRT is usable here: test_backends builds real engines')
    assert main(['export', 'g1_reach', '--out', str(tmp_path), '--graphs', 'encoder',
                 '--engine']) == 2
    assert 'TensorRT' in capsys.readouterr().err
