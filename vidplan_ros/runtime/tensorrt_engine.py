"""TensorRT engines built from the exported ONNX graphs, cached, and run on torch CUDA tensors.

An engine is built on first use (or ahead with ``vidplan export --engine``) and cached as
``<cache>/engines/<gpu>-trt<version>-<onnx sha256[:16]>-<fp32|fp16>.engine`` (``<cache>``:
export.cache_root(), ``$VIDPLAN_CACHE`` or ``~/.cache/vidplan``): the GPU name, the TensorRT
version, the ONNX file's hash and the precision decide whether a cached engine still fits, as
an engine only runs on the GPU model and TensorRT version it was built with. Engines are never
committed (.gitignore ``*.engine``).

Precision: networks are built strongly typed (NetworkDefinitionCreationFlag.STRONGLY_TYPED), so
the ONNX file's tensor types decide it: FP16 engines come from the fp16 export (half-precision
networks, fp32 I/O; export.py). TensorRT 11 removed BuilderFlag.FP16 (NVIDIA, "Removed Python
APIs and Replacements", 10.x -> 11.x migration guide); strong typing works on 10.x and 11.x.

TensorRT API used (checked against the TensorRT Python API reference and the 8.x -> 10.x
migration guide: name-based I/O tensors and execute_async_v3): Builder, create_network(flags),
OnnxParser.parse, create_builder_config, set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...),
create_optimization_profile / set_shape(name, min, opt, max), add_optimization_profile,
build_serialized_network; Runtime.deserialize_cuda_engine; engine.num_io_tensors,
get_tensor_name, get_tensor_mode; context.set_input_shape, get_tensor_shape,
set_tensor_address, execute_async_v3(stream handle).

No GPU on the development machine: test/runtime/test_backends.py runs this where torch sees
CUDA and tensorrt imports, and skips with that reason elsewhere.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidplan_ros.core.config import require
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.runtime.backends import Backend
from vidplan_ros.runtime.export import cache_root

__all__ = ['EngineConfig', 'TensorRTBackend', 'build_engine', 'build_engines', 'engine_path']

log = logging.getLogger('vidplan.runtime')


@dataclass(frozen=True)
class EngineConfig:
    """How engines are built (precision comes from the ONNX export they are built from)."""

    fp16: bool = False               # label of the cache entry; build from the fp16 export
    workspace_mib: int = 1024        # builder scratch memory
    opt_batch: int = 8               # the batch the kernels are tuned for (H plan steps)

    def __post_init__(self) -> None:
        require(self.workspace_mib >= 16, 'workspace_mib', self.workspace_mib,
                'at least 16 MiB')
        require(self.opt_batch >= 1, 'opt_batch', self.opt_batch, 'an integer >= 1')


def _trt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise VidplanError('TensorRT engines need the tensorrt package: pip install '
                           "'vidplan_ros[gpu]' on a CUDA host") from exc
    if not torch.cuda.is_available():
        raise VidplanError('TensorRT engines need a CUDA GPU visible to torch')
    return trt


def engine_path(onnx_sha256: str, fp16: bool, gpu_name: str | None = None,
                trt_version: str | None = None) -> Path:
    """Where the engine of an ONNX file (by hash) is cached for this GPU and TensorRT."""
    version = trt_version if trt_version is not None else _trt().__version__  # checks CUDA
    gpu = gpu_name if gpu_name is not None else torch.cuda.get_device_name()
    gpu = re.sub(r'[^A-Za-z0-9._-]+', '_', gpu).strip('_')
    precision = 'fp16' if fp16 else 'fp32'
    return cache_root() / 'engines' / f'{gpu}-trt{version}-{onnx_sha256[:16]}-{precision}.engine'


def build_engine(onnx_path: Path, inputs: dict[str, list[Any]], max_batch: int,
                 cfg: EngineConfig) -> bytes:
    """A serialized engine of ``onnx_path``; ``inputs`` name -> shape with 'batch' (dynamic,
    profile 1 / opt / max_batch) or an int first."""
    trt = _trt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise VidplanError(f'TensorRT cannot parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mib << 20)
    profile = builder.create_optimization_profile()
    for name, shape in inputs.items():
        rest = [int(d) for d in shape[1:]]
        if shape[0] == 'batch':
            opt = min(cfg.opt_batch, max_batch)
            profile.set_shape(name, [1, *rest], [opt, *rest], [max_batch, *rest])
        else:
            fixed = [int(shape[0]), *rest]
            profile.set_shape(name, fixed, fixed, fixed)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise VidplanError(f'TensorRT could not build an engine from {onnx_path} (see its log)')
    return bytes(serialized)


def load_or_build(onnx_dir: Path, entry: dict[str, Any], cfg: EngineConfig) -> Path:
    """The cached engine of one manifest entry, built now if missing."""
    path = engine_path(entry['sha256'], cfg.fp16)
    if not path.is_file():
        log.info('building TensorRT engine %s (once per GPU, TensorRT version and ONNX file)',
                 path.name)
        data = build_engine(onnx_dir / entry['file'], entry['inputs'],
                            int(entry.get('max_batch', 64)), cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f'.{path.name}.{os.getpid()}')
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def build_engines(onnx_dir: Path, manifest: dict[str, Any],
                  cfg: EngineConfig = EngineConfig()) -> dict[str, Path]:
    """Build (or find cached) the engine of every graph in ``manifest``."""
    return {name: load_or_build(Path(onnx_dir), entry, cfg)
            for name, entry in manifest['graphs'].items()}


class _Engine:
    """One deserialized engine with its execution context; float32 I/O on torch CUDA."""

    def __init__(self, path: Path) -> None:
        trt = _trt()
        self._trt = trt
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise VidplanError(f'cannot load TensorRT engine {path}; delete it to rebuild')
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = self.engine.get_tensor_mode
        self.inputs = [n for n in names if mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if mode(n) == trt.TensorIOMode.OUTPUT]
        self.stream = torch.cuda.Stream()

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        dev = torch.device('cuda')
        keep = []
        for name in self.inputs:
            x = torch.as_tensor(np.ascontiguousarray(inputs[name], np.float32)).to(dev)
            keep.append(x)
            self.context.set_input_shape(name, tuple(x.shape))
            self.context.set_tensor_address(name, x.data_ptr())
        outs = []
        for name in self.outputs:
            y = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=torch.float32,
                            device=dev)
            outs.append(y)
            self.context.set_tensor_address(name, y.data_ptr())
        # inputs were copied on the current stream: order the engine after them
        self.stream.wait_stream(torch.cuda.current_stream())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise VidplanError('TensorRT execution failed (see its log)')
        self.stream.synchronize()
        return tuple(y.cpu().numpy() for y in outs)


class TensorRTBackend(Backend):
    """Engines of an ONNX export (built on first use of each graph, cached)."""

    name = 'tensorrt'

    def __init__(self, onnx_dir: Path, manifest: dict[str, Any],
                 cfg: EngineConfig = EngineConfig()) -> None:
        self.trt = _trt()
        self.onnx_dir, self.manifest, self.cfg = Path(onnx_dir), manifest, cfg
        self._engines: dict[str, _Engine] = {}
        self.engine('encoder')   # fail at start, not at the first replan

    def engine(self, graph: str) -> _Engine:
        eng = self._engines.get(graph)
        if eng is None:
            entry = self.manifest['graphs'].get(graph)
            if entry is None:
                raise VidplanError(f'no {graph!r} graph in the export at {self.onnx_dir}')
            eng = self._engines[graph] = _Engine(load_or_build(self.onnx_dir, entry, self.cfg))
        return eng

    def run(self, graph: str, **inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        eng = self.engine(graph)
        outs = eng.run(inputs)
        order = self.manifest['graphs'][graph]['outputs']
        by_name = dict(zip(eng.outputs, outs))
        return tuple(by_name[n] for n in order)

    def has(self, graph: str) -> bool:
        return graph in self.manifest['graphs']

    def describe(self) -> dict[str, Any]:
        return {'backend': self.name, 'tensorrt': self.trt.__version__,
                'gpu': torch.cuda.get_device_name(),
                'precision': 'fp16' if self.cfg.fp16 else 'fp32',
                'engine_cache': str(cache_root() / 'engines')}
