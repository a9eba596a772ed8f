"""Replan latency per inference backend, side by side in one run: `vidplan bench runtime`.

    vidplan bench runtime --out benchmarks/runtime.json --md benchmarks/runtime.md

For each model set, one Pipeline per usable backend (torch, onnxruntime, and where they run
onnxruntime_cuda, tensorrt fp32 / fp16; plus onnxruntime with the world model's gradient from
the exported VJP graph when onnxscript is installed) replans on the model set's held-out real
observations (heldout.npz camera frames and joints), with the grounding settings of
config/grounding.yaml. Variants are interleaved replan by replan, so load from other processes
spreads over all of them; every variant sees the same observations and planner noise. Each
replan starts `GAP_S` after the one before, as on the robot, where replans are 0.2 s apart:
back to back, a variant would start while the previous one's torch (OpenMP) threads still
spin-wait, and pay for them (ONNX Runtime's imagine 9.8 against its own sampler graph's 8.0 ms).

Reported per variant and stage (encode, imagine, ground, and the whole replan as the wall time
of ``Pipeline.replan``): p50 / p95 / p99 / mean ms, and each p50 as a ratio to torch's. Two
micro-benchmarks answer the design questions: the planner as one unrolled K-step graph vs K
calls of the one-step denoiser graph (ONNX Runtime), and the world model's value + gradient at
GVP-WM's batch (H rows) by torch autograd vs the exported forward+VJP graph on ONNX Runtime.
Absolute times hold only for the machine and load recorded with them; the ratios are the record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ['bench_model', 'main', 'run_benchmark', 'stats', 'to_markdown']

MODELS = ('franka_reach', 'franka_push', 'g1_reach')
STAGES = ('encode', 'imagine', 'ground', 'replan')
TARGET_ORT_RATIO = 0.5      # ONNX Runtime encode + imagine <= 0.5 x torch (issue 12)
GAP_S = 0.02                # idle time before each timed replan (spinning threads go to sleep)
TARGET_REPLAN_MS = 100.0    # whole replan p50 on 2 CPU cores


def stats(samples_s: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 / mean in ms of samples in s."""
    ms = np.asarray(samples_s, float) * 1e3
    return {'p50': float(np.percentile(ms, 50)), 'p95': float(np.percentile(ms, 95)),
            'p99': float(np.percentile(ms, 99)), 'mean': float(ms.mean()), 'n': int(len(ms))}


def _variants(backends: Sequence[str] | None) -> list[tuple[str, dict[str, Any]]]:
    from vidplan_ros.runtime.backends import unavailable_reason
    out: list[tuple[str, dict[str, Any]]] = []
    wanted = backends or ('torch', 'onnxruntime', 'onnxruntime_cuda', 'tensorrt')
    for name in wanted:
        if unavailable_reason(name):
            continue
        out.append((name, {'backend': name}))
        if name == 'tensorrt':
            out.append(('tensorrt fp16', {'backend': name, 'precision': 'fp16'}))
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        pass
    else:
        if any(kw['backend'] == 'onnxruntime' for _, kw in out):
            out.append(('onnxruntime + VJP graph',
                        {'backend': 'onnxruntime', 'world_model_grad': 'vjp_graph'}))
    return out


def _observations(model_dir: Path) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Held-out camera frames and joints (rad) of the model set, one per time step."""
    data = np.load(model_dir / 'heldout.npz')
    cams = json.loads((model_dir / 'config.json').read_text())['params']['data.cameras']
    images, q = data['images'], data['q']
    return [({c: images[w, t, v] for v, c in enumerate(cams)}, q[w, t])
            for w in range(images.shape[0]) for t in range(images.shape[1])]


def _time(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _micro(pipes: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Sampler graph vs denoiser steps; world-model gradient by torch vs the VJP graph."""
    import torch

    from vidplan_ros.runtime.backend_models import BackendPlanner, BackendWorldModel
    out: dict[str, Any] = {}
    ort = next((p for label, p in pipes.items() if label == 'onnxruntime'), None)
    if ort is None:
        return out
    ms = ort.models
    z0 = torch.randn(1, *ort.latent_shape)
    q0 = torch.as_tensor(ms.norm.q_mean)[None]
    noise = torch.as_tensor(ort.noise(0))[None]
    graph = BackendPlanner(ms.planner, ms.norm, ort.backend, 'graph')
    steps = BackendPlanner(ms.planner, ms.norm, ort.backend, 'steps')
    t_graph, t_steps = [], []
    for _ in range(repeats):   # interleaved
        t_graph += _time(lambda: graph.sample(z0, q0, noise, 0), 1)
        t_steps += _time(lambda: steps.sample(z0, q0, noise, 0), 1)
    out['imagine_onnxruntime'] = {'sampler graph (1 call)': stats(t_graph),
                                  f'denoiser graph ({graph.steps} calls)': stats(t_steps)}
    vjp = next((p for label, p in pipes.items() if 'VJP' in label), None)
    H, n = ort.horizon, ms.cfg.action_dim
    z = torch.randn(H, *ort.latent_shape)
    q = torch.as_tensor(ms.norm.q_mean).expand(H, n).clone()
    a = torch.zeros(H, n)
    models = {'torch autograd': ort.world_model}
    if vjp is not None:
        models['VJP graph on onnxruntime'] = vjp.world_model
    assert all(isinstance(m, BackendWorldModel) for m in models.values())
    times: dict[str, list[float]] = {k: [] for k in models}

    def grad(model: Any) -> None:
        zz, aa = z.clone().requires_grad_(), a.clone().requires_grad_()
        zn, qn = model.step(zz, q, aa)
        torch.autograd.grad(zn.square().sum() + qn.square().sum(), [zz, aa])
    for _ in range(repeats):
        for k, m in models.items():
            times[k] += _time(lambda m=m: grad(m), 1)
    out[f'world_model_value_and_gradient_batch_{H}'] = {k: stats(v) for k, v in times.items()}
    return out


def bench_model(model: str, variants: list[tuple[str, dict[str, Any]]], replans: int,
                threads: int, grounding_config: Path | None,
                bar: Any = None) -> dict[str, Any]:
    from vidplan_ros.core.baselines import GrounderConfig
    from vidplan_ros.core.config import load_config
    from vidplan_ros.core.paths import share_dir
    from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig, model_dir_for
    path = grounding_config or share_dir() / 'config' / 'grounding.yaml'
    grounding = load_config(GrounderConfig, path)
    pipes = {label: Pipeline(PipelineConfig(model=model, threads=threads, grounding=grounding,
                                            **kw)) for label, kw in variants}
    obs = _observations(model_dir_for(model))
    samples: dict[str, dict[str, list[float]]] = {v: {s: [] for s in STAGES} for v in pipes}
    for pipe in pipes.values():   # warm up: sessions, engines, allocator
        for frames, q in obs[:3]:
            pipe.replan(frames, q, stamp_s=0.0)
        pipe.reset()
    for k in range(replans):
        frames, q = obs[k % len(obs)]
        for label, pipe in pipes.items():
            time.sleep(GAP_S)
            t0 = time.perf_counter()
            rp = pipe.replan(frames, q, stamp_s=0.1 * k)
            samples[label]['replan'].append(time.perf_counter() - t0)
            for s in ('encode', 'imagine', 'ground'):
                samples[label][s].append(rp.timings_s[s])
            if bar is not None:
                bar.update(1)
    result = {label: {s: stats(v) for s, v in st.items()} for label, st in samples.items()}
    base = result.get('torch')
    ratios = {}
    if base:
        for label, st in result.items():
            ratios[label] = {s: st[s]['p50'] / base[s]['p50'] for s in STAGES}
            ratios[label]['encode+imagine'] = ((st['encode']['p50'] + st['imagine']['p50'])
                                               / (base['encode']['p50']
                                                  + base['imagine']['p50']))
    first = next(iter(pipes.values()))
    return {'model': model, 'horizon': first.horizon, 'latent_shape': list(first.latent_shape),
            'planner_steps': int(first.models.planner.steps), 'method': first.method,
            'backends': {label: p.backend_info for label, p in pipes.items()},
            'stages_ms': result, 'p50_ratio_to_torch': ratios,
            'micro': _micro(pipes, max(2, replans // 2))}


def run_benchmark(models: Sequence[str], backends: Sequence[str] | None, replans: int,
                  threads: int, grounding_config: Path | None = None,
                  progress: bool = True, command: Sequence[str] | None = None
                  ) -> dict[str, Any]:
    import torch

    from vidplan_ros.core.provenance import load_average, provenance
    torch.set_num_threads(threads)
    variants = _variants(backends)
    result = provenance(command, packages=('torch', 'onnxruntime', 'onnx', 'tensorrt'))
    result['config'] = {'models': list(models), 'variants': [v for v, _ in variants],
                        'replans': replans, 'threads': threads}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(models) * len(variants) * replans, unit='replan',
                   file=sys.stderr, desc='bench runtime')
    result['models'] = [bench_model(m, variants, replans, threads, grounding_config, bar)
                        for m in models]
    if bar is not None:
        bar.close()
    result['machine']['loadavg_at_end'] = load_average()
    return result


def to_markdown(result: dict[str, Any]) -> str:
    m, git = result['machine'], result.get('git', {})
    lines = ['# Runtime: replan latency per inference backend', '',
             f"Command: `{result['command']}`  ",
             f"Commit {git.get('commit', '?')[:12]}{' (dirty)' if git.get('dirty') else ''}, "
             f"{result['started_utc']}  ",
             f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['platform']}; torch "
             f"{m.get('torch')}, onnxruntime {m.get('onnxruntime')}, tensorrt "
             f"{m.get('tensorrt')}; {result['config']['threads']} threads  ",
             f"Load average (1/5/15 min) at start {m.get('loadavg')}, at end "
             f"{m.get('loadavg_at_end')}: other jobs share these cores, so absolute times "
             'hold for this load only; variants were interleaved replan by replan, so the '
             'ratios are the comparison.', '']
    for mod in result['models']:
        lines += [f"## {mod['model']} (H = {mod['horizon']}, latent {mod['latent_shape']}, "
                  f"{mod['planner_steps']} flow steps, grounding {mod['method']})", '',
                  '| variant | ' + ' | '.join(f'{s} p50 / p95 / p99 ms' for s in STAGES)
                  + ' | encode+imagine vs torch | replan vs torch |',
                  '|---|' + '---|' * (len(STAGES) + 2)]
        for label, st in mod['stages_ms'].items():
            r = mod['p50_ratio_to_torch'].get(label, {})
            cells = [f"{st[s]['p50']:.1f} / {st[s]['p95']:.1f} / {st[s]['p99']:.1f}"
                     for s in STAGES]
            lines.append(f'| {label} | ' + ' | '.join(cells)
                         + f" | {r.get('encode+imagine', float('nan')):.2f}"
                         + f" | {r.get('replan', float('nan')):.2f} |")
        for name, table in mod['micro'].items():
            lines += ['', f'{name.replace("_", " ")}:', '']
            for k, s in table.items():
                lines.append(f"- {k}: p50 {s['p50']:.2f} ms, p95 {s['p95']:.2f} ms "
                             f"(n = {s['n']})")
        ort = mod['p50_ratio_to_torch'].get('onnxruntime')
        best = min(st['replan']['p50'] for st in mod['stages_ms'].values())
        lines += ['', 'Figures (issue 12): ']
        if ort:
            ok = ort['encode+imagine'] <= TARGET_ORT_RATIO
            lines.append(f"- ONNX Runtime encode + imagine = {ort['encode+imagine']:.2f} x "
                         f"torch (target <= {TARGET_ORT_RATIO}): {'met' if ok else 'NOT met'}")
        lines.append(f'- best whole replan p50 = {best:.1f} ms (target <= {TARGET_REPLAN_MS:g} '
                     f"ms on 2 CPU cores): {'met' if best <= TARGET_REPLAN_MS else 'NOT met'}")
        lines.append('')
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog='vidplan bench runtime', description=__doc__.split('\n')[0])
    p.add_argument('--models', nargs='+', default=list(MODELS))
    p.add_argument('--backends', nargs='+', default=None,
                   help='default: every usable one of torch, onnxruntime, onnxruntime_cuda, '
                        'tensorrt')
    p.add_argument('--replans', type=int, default=40, help='timed replans per variant')
    p.add_argument('--threads', type=int, default=2, help='torch and ONNX Runtime threads')
    p.add_argument('--grounding-config', type=Path, default=None)
    p.add_argument('--out', type=Path, default=Path('benchmarks/runtime.json'))
    p.add_argument('--md', type=Path, default=Path('benchmarks/runtime.md'))
    p.add_argument('--no-progress', action='store_true')
    args = p.parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    result = run_benchmark(args.models, args.backends, args.replans, args.threads,
                           args.grounding_config, not args.no_progress,
                           command=['vidplan', 'bench', 'runtime', *argv])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + '\n')
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
