"""Export a model set's networks to ONNX, with a manifest of hashes: ``vidplan export MODEL``.

Six graphs, each with a dynamic leading batch axis ``batch`` (the runtime calls them at several
batch sizes: the world model on H steps, 2 + A finite-difference rows, K refinement candidates):

    encoder           images (B, V, 3, S, S) in [0, 1]      -> latent (B, V, C, h, w)
    decoder           latent (B, V, C, h, w)                -> images (B, V, 3, S, S) in [0, 1]
    denoiser          x (B, H*V*C, h, w), tau (B,), z0, q_n -> velocity (B, H*V*C, h, w)
    sampler           z0 (B, V, C, h, w), q_n (B, n), noise (B, H, V, C, h, w)
                                                            -> plan (B, H, V, C, h, w)
    world_model       z, q_n, a_n                           -> z_next, q_next_n
    inverse_dynamics  z, z_next, q_n                        -> a_n

``q_n``/``a_n`` are normalised joints/actions (``ModelSet.normalize_q``): the graphs hold the
networks only, normalisation stays with the caller (runtime/backends.py), as in torch.
``sampler`` is the planner's K Euler steps unrolled into one graph (one runtime call instead
of K); ``denoiser`` is one step, for other step counts.

Files: ``<out>/<graph>.onnx`` and ``<out>/manifest.json`` holding each file's sha256, its input
and output shapes, and the sha256 of every weight file and config.json it was exported from,
so a stale export (the model set was retrained) is detected and never run. ``<out>`` defaults
to ``models/<name>/onnx`` (``onnx_fp16`` for ``--precision fp16``); ONNX files are not committed
(.gitignore): exports take seconds, and are redone on first use when missing or stale
(:func:`ensure_onnx`, into ``~/.cache/vidplan/onnx`` when the model directory is read-only).

``precision='fp16'`` exports the networks in half precision with float32 inputs and outputs
(casts at the boundary): the form TensorRT's strongly typed networks build FP16 engines from
(TensorRT 11 removed BuilderFlag.FP16; NVIDIA "Removed Python APIs and Replacements", 10.x ->
11.x migration guide), and ONNX Runtime can run it too (parity bound in test_export.py).

Exporter: torch.onnx.export with ``dynamo=False`` (the TorchScript tracer) by default: it needs
only torch and onnx and exports a model set in ~3 s here, where ``dynamo=True`` needs the extra
``onnxscript`` package and took ~17 s for the unrolled sampler alone (measured on this 2-core
VM, loaded). torch 2.9+ warns that the tracer is deprecated; ``exporter='dynamo'`` switches.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import hashlib
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from vidplan_ros.core.config import require, require_one_of
from vidplan_ros.core.errors import VidplanError

__all__ = ['ALL_GRAPHS', 'EXPORTERS', 'GRAPHS', 'OPTIONAL_GRAPHS', 'PRECISIONS', 'ExportConfig',
           'cache_root', 'ensure_onnx', 'example_inputs', 'export_model_set', 'graph_modules',
           'load_manifest', 'manifest_is_current', 'main', 'sha256_file', 'weights_sha256']

GRAPHS = ('encoder', 'decoder', 'denoiser', 'sampler', 'world_model', 'inverse_dynamics')
# exported on request only: needs the onnxscript package (torch's dynamo exporter)
OPTIONAL_GRAPHS = ('world_model_vjp',)
ALL_GRAPHS = GRAPHS + OPTIONAL_GRAPHS
EXPORTERS = ('torchscript', 'dynamo')
PRECISIONS = ('fp32', 'fp16')
MANIFEST = 'manifest.json'
FORMAT = 1
# the largest batch each graph is built for (TensorRT optimisation profiles): the world model
# sees MPC-CEM's samples and GVP-WM's refinement candidates, the rest a few frames or samples
DEFAULT_MAX_BATCH = {'encoder': 16, 'decoder': 64, 'denoiser': 64, 'sampler': 64,
                     'world_model': 512, 'inverse_dynamics': 512, 'world_model_vjp': 512}


@dataclass(frozen=True)
class ExportConfig:
    """How the graphs are exported."""

    graphs: tuple[str, ...] = GRAPHS
    precision: str = 'fp32'          # 'fp16': half-precision networks, float32 I/O
    opset: int = 17
    exporter: str = 'torchscript'    # 'dynamo' needs the onnxscript package
    trace_batch: int = 2             # example batch (not 1, so no axis is folded as size 1)
    max_batch: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MAX_BATCH))

    def __post_init__(self) -> None:
        unknown = [g for g in self.graphs if g not in ALL_GRAPHS]
        require(bool(self.graphs) and not unknown, 'graphs', list(self.graphs),
                f'a non-empty subset of {list(ALL_GRAPHS)}')
        require(self.precision == 'fp32' or 'world_model_vjp' not in self.graphs, 'graphs',
                list(self.graphs), 'no world_model_vjp at fp16 (exported at fp32 only)')
        require_one_of(self, 'precision', PRECISIONS)
        require_one_of(self, 'exporter', EXPORTERS)
        require(13 <= self.opset <= 21, 'opset', self.opset, 'an ONNX opset in 13..21')
        require(self.trace_batch >= 2, 'trace_batch', self.trace_batch, 'an integer >= 2')
        require(all(self.max_batch.get(g, 0) >= 1 for g in self.graphs), 'max_batch',
                self.max_batch, f'a batch >= 1 for each of {list(self.graphs)}')


# --- the graphs -------------------------------------------------------------------------------

class _Encoder(nn.Module):
    def __init__(self, ae: nn.Module) -> None:
        super().__init__()
        self.ae = ae

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.ae.encode(images)


class _Decoder(nn.Module):
    def __init__(self, ae: nn.Module) -> None:
        super().__init__()
        self.ae = ae

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.ae.decode(latent)


class _Denoiser(nn.Module):
    def __init__(self, planner: nn.Module) -> None:
        super().__init__()
        self.planner = planner

    def forward(self, x: torch.Tensor, tau: torch.Tensor, z0: torch.Tensor,
                q: torch.Tensor) -> torch.Tensor:
        return self.planner.velocity(x, tau, z0, q)


class _Half(nn.Module):
    """``module`` in float16 behind float32 inputs and outputs."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = copy.deepcopy(module).half().requires_grad_(False)

    def forward(self, *args: torch.Tensor) -> Any:
        out = self.inner(*(a.half() for a in args))
        if isinstance(out, tuple):
            return tuple(o.float() for o in out)
        return out.float()


@contextlib.contextmanager
def _time_embedding_in_fp32() -> Iterator[None]:
    """The planner's sinusoidal time embedding computed in float32, then cast to tau's dtype,
    while tracing: the tracer cannot export ``arange(dtype=float16)`` (opset 11+ symbolic
    fails with "tensor does not have a device"), and float32 frequencies are more exact."""
    from vidplan_ros.nn import planner as planner_mod
    original = planner_mod.timestep_embedding

    def fp32(tau: torch.Tensor, dim: int) -> torch.Tensor:
        return original(tau.float(), dim).to(tau.dtype)
    planner_mod.timestep_embedding = fp32
    try:
        yield
    finally:
        planner_mod.timestep_embedding = original


class _WorldModelVjp(nn.Module):
    """World model step and its vector-Jacobian product: ``(z, q, a, gz, gq) -> (z_next,
    q_next, dz, dq, da)`` with ``(dz, dq, da) = J^T (gz, gq)``, for backends that cannot
    differentiate (the gradient GVP-WM needs, as one graph)."""

    def __init__(self, wm: nn.Module) -> None:
        super().__init__()
        self.wm = copy.deepcopy(wm).requires_grad_(False)

    def forward(self, z: torch.Tensor, q: torch.Tensor, a: torch.Tensor, gz: torch.Tensor,
                gq: torch.Tensor) -> tuple[torch.Tensor, ...]:
        (zn, qn), pull = torch.func.vjp(self.wm, z, q, a)
        dz, dq, da = pull((gz, gq))
        return zn, qn, dz, dq, da


@dataclass(frozen=True)
class _Graph:
    module: nn.Module
    inputs: dict[str, tuple[int, ...]]     # name -> shape without the batch axis
    outputs: tuple[str, ...]


def graph_modules(ms: Any, graphs: tuple[str, ...] = GRAPHS) -> dict[str, _Graph]:
    """The exported torch modules of a loaded model set, with their input shapes (no batch)."""
    v, c, h, w = ms.planner.latent_shape
    lat = (v, c, h, w)
    s, n, H = int(ms.cfg.image_size), int(ms.cfg.action_dim), int(ms.planner.horizon)
    plan_ch = int(ms.planner.plan_ch)
    table = {
        'encoder': lambda: _Graph(_Encoder(ms.autoencoder), {'images': (v, 3, s, s)},
                                  ('latent',)),
        'decoder': lambda: _Graph(_Decoder(ms.autoencoder), {'latent': lat}, ('images',)),
        'denoiser': lambda: _Graph(_Denoiser(ms.planner), {'x': (plan_ch, h, w), 'tau': (),
                                                           'z0': lat, 'q': (n,)},
                                   ('velocity',)),
        'sampler': lambda: _Graph(ms.planner, {'z0': lat, 'q': (n,), 'noise': (H, *lat)},
                                  ('plan',)),
        'world_model': lambda: _Graph(ms.world_model, {'z': lat, 'q': (n,), 'a': (n,)},
                                      ('z_next', 'q_next')),
        'inverse_dynamics': lambda: _Graph(ms.inverse_dynamics,
                                           {'z': lat, 'z_next': lat, 'q': (n,)}, ('a',)),
        'world_model_vjp': lambda: _Graph(
            _WorldModelVjp(ms.world_model),
            {'z': lat, 'q': (n,), 'a': (n,), 'gz': lat, 'gq': (n,)},
            ('z_next', 'q_next', 'dz', 'dq', 'da')),
    }
    return {g: table[g]() for g in graphs}


def example_inputs(graph: _Graph, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 inputs of ``graph`` at ``batch`` (images and flow times in [0, 1])."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in graph.inputs.items():
        if name in ('images', 'tau'):
            out[name] = torch.rand((batch, *shape), generator=gen)
        else:
            out[name] = torch.randn((batch, *shape), generator=gen)
    return out


# --- hashes and the manifest ------------------------------------------------------------------

def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def weights_sha256(model_dir: str | Path) -> dict[str, str]:
    """sha256 of the files the graphs are made from: the four weight files and config.json."""
    from vidplan_ros.nn.model_set import MODEL_FILES
    model_dir = Path(model_dir)
    names = [f'{m}.pt' for m in MODEL_FILES] + ['config.json']
    return {name: sha256_file(model_dir / name) for name in names}


def load_manifest(onnx_dir: str | Path) -> dict[str, Any] | None:
    path = Path(onnx_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def manifest_is_current(manifest: dict[str, Any] | None, model_dir: str | Path,
                        onnx_dir: str | Path, graphs: tuple[str, ...] = GRAPHS,
                        precision: str = 'fp32') -> bool:
    """True when ``manifest`` was exported from the weights now in ``model_dir``, at
    ``precision``, has every graph in ``graphs`` and each file still has its recorded hash."""
    if not manifest or manifest.get('format') != FORMAT:
        return False
    if manifest.get('precision') != precision:
        return False
    if manifest.get('weights_sha256') != weights_sha256(model_dir):
        return False
    for g in graphs:
        entry = manifest.get('graphs', {}).get(g)
        path = Path(onnx_dir) / (entry or {}).get('file', '')
        if not entry or not path.is_file() or sha256_file(path) != entry.get('sha256'):
            return False
    return True


# --- export -----------------------------------------------------------------------------------

@contextlib.contextmanager
def _no_mha_fastpath() -> Iterator[None]:
    """nn.MultiheadAttention's inference fast path while exporting: off. Self-attention
    (query, key and value the same tensor; `planner.self_attention`) otherwise traces to
    aten::_native_multi_head_attention, which no ONNX opset has."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def _export_one(name: str, graph: _Graph, path: Path, cfg: ExportConfig, batch: int) -> None:
    module = _Half(graph.module) if cfg.precision == 'fp16' else graph.module
    module.eval()
    args = tuple(example_inputs(graph, batch).values())
    names = list(graph.inputs)
    kwargs: dict[str, Any] = dict(input_names=names, output_names=list(graph.outputs),
                                  opset_version=cfg.opset)
    with warnings.catch_warnings(), torch.no_grad(), _time_embedding_in_fp32(), \
            _no_mha_fastpath():
        # the tracer's deprecation notice and its tracer warnings about shape-derived Python
        # values (batch sizes; the exported graph keeps them symbolic, the parity test checks)
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        if name == 'world_model_vjp':
            _export_vjp(graph, args, path, kwargs)
        elif cfg.exporter == 'torchscript':
            axes = {k: {0: 'batch'} for k in names + list(graph.outputs)}
            torch.onnx.export(module, args, str(path), dynamo=False, dynamic_axes=axes,
                              do_constant_folding=True, **kwargs)
        else:
            from torch.export import Dim
            batch = Dim('batch', min=1, max=cfg.max_batch[name])
            torch.onnx.export(module, args, str(path), dynamo=True, external_data=False,
                              dynamic_shapes={k: {0: batch} for k in names}, **kwargs)


def _export_vjp(graph: _Graph, args: tuple[torch.Tensor, ...], path: Path,
                kwargs: dict[str, Any]) -> None:
    """Trace forward + VJP to plain aten ops (make_fx) and export that with the dynamo
    exporter, at the batch of ``args`` (static: make_fx's symbolic mode kept the batch concrete
    with the weights as real tensors). ONNX has no convolution backward: its input gradient is
    rewritten as a transposed convolution (the world model's convs are stride 1, dilation 1,
    one group)."""
    try:
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise VidplanError('exporting world_model_vjp needs the onnxscript package '
                           '(pip install onnxscript)') from exc
    from torch._decomp import core_aten_decompositions
    from torch.fx.experimental.proxy_tensor import make_fx
    aten = torch.ops.aten

    def conv_backward(grad: torch.Tensor, inp: torch.Tensor, weight: torch.Tensor,
                      bias_sizes: Any, stride: list[int], padding: list[int],
                      dilation: list[int], transposed: bool, output_padding: list[int],
                      groups: int, mask: list[bool]) -> tuple[Any, Any, Any]:
        if transposed or groups != 1 or any(s != 1 for s in stride) or any(
                d != 1 for d in dilation):
            raise VidplanError('world_model_vjp: only stride-1, undilated, ungrouped convs')
        gi = aten.convolution.default(grad, weight, None, stride, padding, dilation, True,
                                      [0] * len(stride), groups) if mask[0] else None
        gb = grad.sum(dim=(0, 2, 3)) if mask[2] else None
        return gi, None, gb   # no weight gradient: weights are constants here

    table = dict(core_aten_decompositions())
    table[aten.convolution_backward.default] = conv_backward
    # scratch buffers of norm backward; ONNX has no uninitialised tensor
    table[aten.empty_permuted.default] = lambda size, perm, **kw: aten.zeros.default(
        size, dtype=kw.get('dtype'), device=kw.get('device'))
    gm = make_fx(graph.module, decomposition_table=table)(*args).eval()
    # at the dynamo exporter's own opset: converting its graph down to 17 fails in onnx
    kwargs = {k: v for k, v in kwargs.items() if k != 'opset_version'}
    torch.onnx.export(gm, args, str(path), dynamo=True, external_data=False, **kwargs)


def export_model_set(model_dir: str | Path, out_dir: str | Path | None = None,
                     cfg: ExportConfig = ExportConfig()) -> dict[str, Any]:
    """Export the graphs of the model set in ``model_dir`` into ``out_dir`` (default
    ``model_dir/onnx`` or ``onnx_fp16``) with ``manifest.json``; returns the manifest."""
    import onnx
    from vidplan_ros.nn.model_set import load_model_set
    model_dir = Path(model_dir)
    out = Path(out_dir) if out_dir is not None else default_onnx_dir(model_dir, cfg.precision)
    out.mkdir(parents=True, exist_ok=True)
    ms = load_model_set(model_dir, 'cpu')
    weights = weights_sha256(model_dir)
    graphs: dict[str, Any] = {}
    for name, graph in graph_modules(ms, cfg.graphs).items():
        path = out / f'{name}.onnx'
        tmp = out / f'.{name}.{os.getpid()}.onnx'   # per process: nodes may export at once
        t0 = time.perf_counter()
        # GVP-WM differentiates the world model on its H constraint rows only: that graph has
        # a static batch H; the others a dynamic one
        static = int(ms.planner.horizon) if name == 'world_model_vjp' else None
        _export_one(name, graph, tmp, cfg, static or cfg.trace_batch)
        onnx.checker.check_model(str(tmp))
        tmp.replace(path)
        graphs[name] = {
            'file': path.name, 'sha256': sha256_file(path),
            'inputs': {k: [static or 'batch', *v] for k, v in graph.inputs.items()},
            'outputs': list(graph.outputs), 'max_batch': int(cfg.max_batch[name]),
            'export_s': round(time.perf_counter() - t0, 3)}
    manifest = {
        'format': FORMAT, 'model': ms.cfg.name, 'precision': cfg.precision, 'opset': cfg.opset,
        'exporter': cfg.exporter, 'torch': torch.__version__, 'onnx': onnx.__version__,
        'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'),
        'weights_sha256': weights, 'graphs': graphs}
    tmp = out / f'.{MANIFEST}.{os.getpid()}'
    tmp.write_text(json.dumps(manifest, indent=1) + '\n')
    tmp.replace(out / MANIFEST)
    return manifest


def default_onnx_dir(model_dir: str | Path, precision: str = 'fp32') -> Path:
    return Path(model_dir) / ('onnx' if precision == 'fp32' else f'onnx_{precision}')


def cache_root() -> Path:
    """``$VIDPLAN_CACHE`` or ``~/.cache/vidplan``: exports and engines made at run time."""
    return Path(os.environ.get('VIDPLAN_CACHE') or Path.home() / '.cache' / 'vidplan')


def ensure_onnx(model_dir: str | Path, precision: str = 'fp32',
                graphs: tuple[str, ...] = GRAPHS) -> tuple[Path, dict[str, Any]]:
    """A current export of ``model_dir`` at ``precision``: ``(directory, manifest)``.

    Uses ``model_dir/onnx*`` when it matches the weights, else a cache entry keyed by the
    weights' hash (exporting into it on first use)."""
    model_dir = Path(model_dir)
    beside = default_onnx_dir(model_dir, precision)
    if manifest_is_current(load_manifest(beside), model_dir, beside, graphs, precision):
        return beside, load_manifest(beside)  # type: ignore[return-value]
    key = hashlib.sha256(json.dumps(weights_sha256(model_dir), sort_keys=True).encode())
    cached = cache_root() / 'onnx' / f'{model_dir.name}-{key.hexdigest()[:16]}-{precision}'
    manifest = load_manifest(cached)
    if not manifest_is_current(manifest, model_dir, cached, graphs, precision):
        manifest = export_model_set(model_dir, cached,
                                    ExportConfig(graphs=tuple(graphs), precision=precision))
    return cached, manifest  # type: ignore[return-value]


# --- command line -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from vidplan_ros.runtime.pipeline import model_dir_for
    p = argparse.ArgumentParser(
        prog='vidplan export', description='Export a model set to ONNX (and TensorRT engines).')
    p.add_argument('model', help='model set name under models/ or a model set directory')
    p.add_argument('--out', help='output directory (default: <model dir>/onnx)')
    p.add_argument('--precision', choices=PRECISIONS, default='fp32')
    p.add_argument('--exporter', choices=EXPORTERS, default='torchscript')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--graphs', nargs='+', choices=ALL_GRAPHS, default=list(GRAPHS),
                   help='default: all but world_model_vjp (that one needs onnxscript)')
    p.add_argument('--engine', action='store_true',
                   help='also build the TensorRT engines now (needs a GPU and tensorrt)')
    args = p.parse_args(argv)
    model_dir = model_dir_for(args.model)
    cfg = ExportConfig(graphs=tuple(args.graphs), precision=args.precision,
                       opset=args.opset, exporter=args.exporter)
    out = Path(args.out) if args.out else default_onnx_dir(model_dir, cfg.precision)
    try:
        manifest = export_model_set(model_dir, out, cfg)
    except PermissionError as exc:
        raise VidplanError(f'cannot write {out} ({exc}); pass --out DIR') from exc
    for g in manifest['graphs'].values():
        print(f'{out / g["file"]}  sha256 {g["sha256"][:16]}  ({g["export_s"]:.1f} s)')
    print(f'{out / MANIFEST}')
    if args.engine:
        from vidplan_ros.runtime.tensorrt_engine import EngineConfig, build_engines
        for name, path in build_engines(out, manifest, EngineConfig(
                fp16=args.precision == 'fp16')).items():
            print(f'{path}  (TensorRT engine for {name})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
