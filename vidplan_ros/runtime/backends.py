"""Inference backends behind one interface: TensorRT, ONNX Runtime (CUDA, CPU), torch.

A backend runs the graphs of runtime/export.py by name on float32 numpy arrays::

    backend = make_backend(BackendConfig('auto'), model_set, model_dir)
    (latent,) = backend.run('encoder', images=frames)       # (B, V, 3, S, S) -> (B, V, C, h, w)

``auto`` takes the first of TensorRT -> ONNX Runtime CUDA -> ONNX Runtime CPU -> torch that
is usable here and logs why each one before it was not; a named backend that cannot run is an
error that says why. Graphs come from a current ONNX export of the model set
(:func:`export.ensure_onnx`: exported on first use when missing or stale).

Gradients: GVP-WM differentiates the world model. ONNX Runtime inference sessions and
TensorRT engines run forward passes only, so with every backend the world model's backward
pass runs in torch (on ``PipelineConfig.device``); the backend serves every forward-only call
(runtime/backend_models.py). ``world_model_grad='vjp_graph'`` instead runs an exported
forward+VJP graph of the world model (export.py's ``world_model_vjp``) in the backend; `vidplan
bench runtime` measures both.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidplan_ros.core.config import require, require_one_of
from vidplan_ros.core.errors import VidplanError

__all__ = ['AUTO_ORDER', 'BACKENDS', 'Backend', 'BackendConfig', 'OnnxRuntimeBackend',
           'TorchBackend', 'make_backend', 'unavailable_reason']

BACKENDS = ('auto', 'tensorrt', 'onnxruntime_cuda', 'onnxruntime', 'torch')
AUTO_ORDER = ('tensorrt', 'onnxruntime_cuda', 'onnxruntime', 'torch')
WM_GRADS = ('torch', 'vjp_graph')
SAMPLERS = ('graph', 'steps')
log = logging.getLogger('vidplan.runtime')


@dataclass(frozen=True)
class BackendConfig:
    """Which backend runs the networks and how."""

    backend: str = 'auto'            # auto | tensorrt | onnxruntime_cuda | onnxruntime | torch
    precision: str = 'fp32'          # 'fp16': TensorRT engines in half precision
    threads: int = 0                 # ONNX Runtime intra-op threads (0: its default)
    sampler: str = 'graph'           # 'graph': K Euler steps in one call; 'steps': K calls
    world_model_grad: str = 'torch'  # world-model VJP: torch autograd, or the exported graph

    def __post_init__(self) -> None:
        require_one_of(self, 'backend', BACKENDS)
        require_one_of(self, 'precision', ('fp32', 'fp16'))
        require(self.threads >= 0, 'threads', self.threads, 'an integer >= 0 (0: default)')
        require_one_of(self, 'sampler', SAMPLERS)
        require_one_of(self, 'world_model_grad', WM_GRADS)


class Backend(ABC):
    """Runs exported graphs by name: ``run(graph, **inputs) -> outputs`` (float32 numpy)."""

    name: str = ''

    @abstractmethod
    def run(self, graph: str, **inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        """Inputs and outputs as named in export.graph_modules, batch first, float32."""

    def has(self, graph: str) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        """What runs where, for the start-up log and /diagnostics."""
        return {'backend': self.name}


class TorchBackend(Backend):
    """The model set's torch modules (eager), on their device."""

    name = 'torch'

    def __init__(self, model_set: Any, device: str = 'cpu') -> None:
        from vidplan_ros.runtime.export import graph_modules
        self.device = torch.device(device)
        self.graphs = graph_modules(model_set)

    @torch.no_grad()
    def run(self, graph: str, **inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        g = self.graphs[graph]
        out = g.module(*(torch.as_tensor(np.asarray(inputs[k], np.float32), device=self.device)
                         for k in g.inputs))
        out = out if isinstance(out, tuple) else (out,)
        return tuple(o.cpu().numpy() for o in out)

    def has(self, graph: str) -> bool:
        return graph in self.graphs

    def describe(self) -> dict[str, Any]:
        return {'backend': self.name, 'device': str(self.device),
                'threads': torch.get_num_threads()}


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime sessions (one per graph, made on first use) on the CPU or CUDA provider.

    API checked against the onnxruntime Python docs (SessionOptions.intra_op_num_threads,
    graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL; InferenceSession(path,
    sess_options, providers=[...]); InferenceSession.get_providers() lists the providers the
    session really uses: a CUDA session whose CUDA libraries fail to load silently falls back
    to the CPU provider, which this class treats as an error).
    """

    def __init__(self, onnx_dir: Path, manifest: dict[str, Any], cuda: bool = False,
                 threads: int = 0,
                 spin_graphs: tuple[str, ...] | None = ('decoder', 'sampler',
                                                        'denoiser', 'world_model',
                                                        'inverse_dynamics')) -> None:
        import onnxruntime as ort
        self._ort = ort
        self.name = 'onnxruntime_cuda' if cuda else 'onnxruntime'
        self.onnx_dir, self.manifest = Path(onnx_dir), manifest
        self.providers = (['CUDAExecutionProvider', 'CPUExecutionProvider'] if cuda
                          else ['CPUExecutionProvider'])
        self.threads = threads
        # ORT's intra-op threads spin-wait between ops and, by default, on after a run returns:
        # between the world model's forward runs GVP-WM's torch backward passes then shared the
        # cores with spinning threads, which doubled g1_reach's ground time (182 vs 96 ms p50).
        # With force_spinning_stop they stop when a run returns, so the graphs in spin_graphs
        # spin only inside their runs: the sampler 8.7 against 11.4 ms p50 without spinning, on
        # 2 quiet threads (the encoder, 0.9 ms, does not). None: ORT's defaults for every graph.
        self.spin_graphs = spin_graphs
        self._sessions: dict[str, Any] = {}

    def session(self, graph: str) -> Any:
        sess = self._sessions.get(graph)
        if sess is None:
            entry = self.manifest['graphs'].get(graph)
            if entry is None:
                raise VidplanError(f'no {graph!r} graph in the export at {self.onnx_dir}')
            opts = self._ort.SessionOptions()
            opts.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.threads:
                opts.intra_op_num_threads = self.threads
            if self.spin_graphs is not None:   # onnxruntime_session_options_config_keys.h
                opts.add_session_config_entry('session.intra_op.allow_spinning',
                                              '1' if graph in self.spin_graphs else '0')
                opts.add_session_config_entry('session.force_spinning_stop', '1')
            sess = self._ort.InferenceSession(str(self.onnx_dir / entry['file']), opts,
                                              providers=self.providers)
            if sess.get_providers()[0] != self.providers[0]:
                raise VidplanError(
                    f'ONNX Runtime fell back to {sess.get_providers()} for {graph}: the CUDA '
                    'provider did not load (CUDA/cuDNN libraries, or onnxruntime installed '
                    'beside onnxruntime-gpu: keep only onnxruntime-gpu)')
            self._sessions[graph] = sess
        return sess

    def run(self, graph: str, **inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        feeds = {k: np.ascontiguousarray(v, np.float32) for k, v in inputs.items()}
        return tuple(self.session(graph).run(None, feeds))

    def has(self, graph: str) -> bool:
        return graph in self.manifest['graphs']

    def describe(self) -> dict[str, Any]:
        return {'backend': self.name, 'providers': self.providers,
                'onnxruntime': self._ort.__version__, 'onnx_dir': str(self.onnx_dir),
                'threads': self.threads or 'default'}


# --- choosing one -------------------------------------------------------------------------

def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run on this machine, or None when it can."""
    if name == 'torch':
        return None
    if name == 'tensorrt':
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return 'the tensorrt package is not installed (pip install vidplan_ros[gpu])'
        if not torch.cuda.is_available():
            return 'no CUDA GPU visible to torch (TensorRT buffers are torch CUDA tensors)'
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        return 'onnxruntime is not installed'
    if name == 'onnxruntime_cuda' and 'CUDAExecutionProvider' not in \
            ort.get_available_providers():
        return (f'ONNX Runtime has no CUDA provider here (providers: '
                f'{ort.get_available_providers()}; it needs onnxruntime-gpu instead of '
                'onnxruntime, and a GPU)')
    return None


def _create(name: str, cfg: BackendConfig, model_set: Any, model_dir: Path,
            device: str) -> Backend:
    if name == 'torch':
        return TorchBackend(model_set, device)
    from vidplan_ros.runtime.export import ensure_onnx
    graphs = _graphs_needed(cfg)
    if name == 'tensorrt':
        from vidplan_ros.runtime.tensorrt_engine import EngineConfig, TensorRTBackend
        onnx_dir, manifest = ensure_onnx(model_dir, cfg.precision, graphs)
        return TensorRTBackend(onnx_dir, manifest, EngineConfig(fp16=cfg.precision == 'fp16'))
    onnx_dir, manifest = ensure_onnx(model_dir, 'fp32', graphs)
    backend = OnnxRuntimeBackend(onnx_dir, manifest, cuda=name == 'onnxruntime_cuda',
                                 threads=cfg.threads)
    backend.session('encoder')   # fail here, at start, not at the first replan
    return backend


def _graphs_needed(cfg: BackendConfig) -> tuple[str, ...]:
    from vidplan_ros.runtime.export import GRAPHS
    return GRAPHS + (('world_model_vjp',) if cfg.world_model_grad == 'vjp_graph' else ())


def make_backend(cfg: BackendConfig, model_set: Any, model_dir: str | Path,
                 device: str = 'cpu') -> Backend:
    """The backend ``cfg.backend`` names, or for 'auto' the first usable of AUTO_ORDER."""
    model_dir = Path(model_dir)
    if cfg.backend != 'auto':
        reason = unavailable_reason(cfg.backend)
        if reason:
            raise VidplanError(f'backend {cfg.backend!r} cannot run here: {reason}; use '
                               'backend: auto (or another of ' + ', '.join(AUTO_ORDER) + ')')
        return _create(cfg.backend, cfg, model_set, model_dir, device)
    skipped = []
    for name in AUTO_ORDER:
        reason = unavailable_reason(name)
        if reason is None:
            try:
                backend = _create(name, cfg, model_set, model_dir, device)
            except Exception as exc:  # noqa: BLE001 - auto falls through to the next backend
                reason = f'{type(exc).__name__}: {exc}'
            else:
                for skip in skipped:
                    log.info('backend auto: skipped %s', skip)
                return backend
        skipped.append(f'{name} ({reason})')
    raise VidplanError('no inference backend could start: ' + '; '.join(skipped))
