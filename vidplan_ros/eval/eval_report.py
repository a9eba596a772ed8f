"""What ``vidplan eval`` writes: results.json, results.md, success.png, latency.png.

A result is a plain dict (JSON as written, non-finite floats as null):
``{'config', 'command', 'machine', 'git', 'started', 'wall_s', 'corruption_sources',
'episodes': [{'corruption', **EpisodeOutcome}], 'summary': [row per method x corruption]}``.
:func:`load_results` reads it back (nulls of float fields back to nan) and
:func:`episode_outcome` rebuilds the :class:`EpisodeOutcome` of an episode.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from vidplan_ros.eval.closed_loop import EpisodeOutcome
from vidplan_ros.eval.paired import paired_markdown

__all__ = ['episode_outcome', 'load_results', 'plot_latency', 'plot_success', 'summarize',
           'to_markdown', 'wilson_interval', 'write_results']

STAGES = ('encode', 'imagine', 'ground')
_FLOATS = ('mean_alignment', 'mean_dynamics_residual', 'final_distance_m', 'closest_distance_m')


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for z = 1.96); (nan, nan) if n = 0."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def _weighted_mean(values: list[float], weights: list[int]) -> float:
    pairs = [(v, w) for v, w in zip(values, weights) if w > 0 and math.isfinite(v)]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else math.nan


def _source(e: dict[str, Any]) -> str:
    return e.get('plan_source', 'learned')


def _versus_expert(eps: list[dict[str, Any]]) -> dict[str, float]:
    """Expert-plan rows: the median over episodes of the grounded / expert step gain and the
    mean joint error against the expert's own future (eval.expert_plan.GroundingVsExpert)."""
    gains = [e['expert_step_gain'] for e in eps if _finite(e.get('expert_step_gain'))]
    errs = [e['expert_plan_error_rad'] for e in eps if _finite(e.get('expert_plan_error_rad'))]
    if not gains and not errs:
        return {}
    return {'expert_step_gain_p50': float(np.median(gains)) if gains else None,
            'expert_plan_error_rad': float(np.mean(errs)) if errs else None}


def _near_misses(eps: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median closest and final task distance (m) of the failed episodes: near misses or
    nowhere near (None when every episode succeeded or the results predate the field)."""
    failed = [e for e in eps if not e['success']]
    out: dict[str, float | None] = {}
    for key in ('closest_distance_m', 'final_distance_m'):
        vals = [float(e[key]) for e in failed if _finite(e.get(key))]
        out[f'failed_median_{key}'] = float(np.median(vals)) if vals else None
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def summarize(episodes: list[dict[str, Any]], methods: list[str] | None = None,
              corruptions: list[str] | None = None,
              plan_sources: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (method, plan source, corruption): success rate with its Wilson 95%
    interval, mean time to success (successful episodes), grounding ms per replan (p50/p95 over
    every replan), replan-weighted mean alignment and dynamics residual, rejected plans, final
    distance. The expert ceiling (method ``expert_executor``) has plan source ``expert``."""
    methods = methods or list(dict.fromkeys(e['method'] for e in episodes))
    corruptions = corruptions or list(dict.fromkeys(e['corruption'] for e in episodes))
    sources = list(dict.fromkeys([*(plan_sources or []), *map(_source, episodes)]))
    rows = []
    for m in methods:
        for src, c in [(src, c) for src in sources for c in corruptions]:
            eps = [e for e in episodes if e['method'] == m and e['corruption'] == c
                   and _source(e) == src]
            if not eps:
                continue
            n, k = len(eps), sum(bool(e['success']) for e in eps)
            lo, hi = wilson_interval(k, n)
            tts = [e['time_to_success_s'] for e in eps if e['time_to_success_s'] is not None]
            ground = [t for e in eps for t in e['timings_ms'].get('ground', [])]
            replans = [int(e['replans']) for e in eps]
            reasons: dict[str, int] = {}
            for e in eps:
                for reason, count in (e.get('rejected_reasons') or {}).items():
                    reasons[reason] = reasons.get(reason, 0) + int(count)
            rows.append({
                'method': m, 'plan_source': src, 'corruption': c, 'episodes': n,
                'successes': k,
                'success_rate': k / n, 'success_ci95': [lo, hi],
                'mean_time_to_success_s': float(np.mean(tts)) if tts else None,
                'ground_ms_p50': _percentile(ground, 50), 'ground_ms_p95': _percentile(ground, 95),
                'mean_alignment': _weighted_mean([e['mean_alignment'] for e in eps], replans),
                'mean_dynamics_residual': _weighted_mean(
                    [e['mean_dynamics_residual'] for e in eps], replans),
                'replans': sum(replans),
                'rejected_plans': sum(int(e['rejected_plans']) for e in eps),
                'rejected_reasons': reasons,
                'mean_final_distance_m': float(np.mean([e['final_distance_m'] for e in eps])),
                **_near_misses(eps),
                **_versus_expert(eps),
            })
    return rows


# --- JSON ------------------------------------------------------------------------------------

def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def load_results(path: str | Path) -> dict[str, Any]:
    """A results.json (or its directory) as written, with null float fields back to nan."""
    path = Path(path)
    if path.is_dir():
        path = path / 'results.json'
    result = json.loads(path.read_text())
    for e in result['episodes']:
        for key in _FLOATS:
            if e.get(key) is None:
                e[key] = math.nan
    return result


def episode_outcome(episode: dict[str, Any]) -> EpisodeOutcome:
    """The :class:`EpisodeOutcome` of one episode of a result (its 'corruption' dropped)."""
    names = {f.name for f in dataclasses.fields(EpisodeOutcome)}
    return EpisodeOutcome(**{k: v for k, v in episode.items() if k in names})


# --- markdown --------------------------------------------------------------------------------

def _fmt(x: float | None, spec: str, none: str = '-') -> str:
    return none if x is None or not math.isfinite(x) else format(x, spec)


def _cm(x: float | None) -> str:
    return _fmt(x if x is None else 100 * x, '.1f')


def _seeds_text(seeds: Any) -> str:
    seeds = list(seeds)
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f'{seeds[0]}-{seeds[-1]} ({len(seeds)})'
    return ', '.join(map(str, seeds))


def to_markdown(result: dict[str, Any]) -> str:
    """The report: what ran where, then the method x corruption table."""
    cfg, machine, git = result['config'], result['machine'], result.get('git', {})
    lines = [f"# Closed-loop evaluation: {cfg['task']} (model set {cfg['model']})", '',
             'Command:', '', '```', result['command'], '```', '',
             f"Seeds {_seeds_text(cfg['seeds'])}; episode limit {cfg['max_time_s']:g} s of sim "
             f"time, replan every {cfg['replan_period_s']:g} s; residual gate "
             f"`{cfg['residual_gate']}` ({result.get('residual_gate_text', '')}); grounding "
             f"config `{cfg['grounding_config']}`.", '',
             f"Machine: {machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores, "
             f"{cfg['workers']} worker(s) x {cfg['threads']} torch thread(s), torch "
             f"{machine.get('torch', '?')}, MuJoCo {machine.get('mujoco', '?')}; commit "
             f"`{git.get('commit', '?')}`{' (uncommitted changes)' if git.get('dirty') else ''}; "
             f"{result['started']}; wall {result['wall_s']:.0f} s.", '',
             f'Latency: {_latency_text(cfg)}.', '',
             '| method | plan | corruption | success | 95% CI | time to success (s) | '
             'failed: closest / final (cm) | ground p50 / p95 (ms) | alignment | '
             'dyn. residual | rejected plans |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in result['summary']:
        lo, hi = r['success_ci95']
        lines.append(
            f"| {r['method']} | {r.get('plan_source', 'learned')} | {r['corruption']} | "
            f"{r['successes']}/{r['episodes']} = "
            f"{100 * r['success_rate']:.0f}% | {_fmt(lo and 100 * lo, '.0f')}-"
            f"{_fmt(hi and 100 * hi, '.0f')}% | {_fmt(r['mean_time_to_success_s'], '.2f')} | "
            f"{_cm(r.get('failed_median_closest_distance_m'))} / "
            f"{_cm(r.get('failed_median_final_distance_m'))} | "
            f"{_fmt(r['ground_ms_p50'], '.0f')} / {_fmt(r['ground_ms_p95'], '.0f')} | "
            f"{_fmt(r['mean_alignment'], '.3f')} | {_fmt(r['mean_dynamics_residual'], '.3f')} | "
            f"{r['rejected_plans']}/{r['replans']} |")
    lines += diagnosis(result['summary']) + planner_offline_lines(result.get('planner_offline'))
    lines += paired_markdown(result['episodes'])
    reasons = [r for r in result['summary'] if r.get('rejected_reasons')]
    if reasons:
        lines += ['', "Rejected plans by the executor's reason:", '']
        for r in reasons:
            text = ', '.join(f'{k} {v}' for k, v in sorted(r['rejected_reasons'].items()))
            lines.append(f"- {r['method']} / {r['corruption']}: {text}")
    sources = result.get('corruption_sources') or {}
    lines += ['', 'Columns: success within the time limit with its Wilson score 95% interval; '
              "time to success over the successful episodes; the failed episodes' median "
              'closest and final task distance (tip to target, cube to goal); grounding wall '
              'time per replan '
              'over all replans; the world-model rollout alignment (cosine to the video plan) '
              'and relative dynamics residual of the grounded plans, replan-weighted; plans the '
              'executor rejected / replans. Corruptions: `vidplan_ros/eval/corruptions.py`'
              + ''.join(f'; {k}: {v}' for k, v in sources.items()) + '.']
    return '\n'.join(lines) + '\n'


def _latency_text(cfg: dict[str, Any]) -> str:
    mode = cfg.get('latency', 'frozen')
    if mode == 'real':
        return ("real: the sim runs on during each replan's measured compute time "
                '(encode + imagine + ground)')
    if mode == 'fixed':
        return f"fixed {1e3 * cfg.get('latency_fixed_s', 0.0):.0f} ms per replan"
    return 'frozen (sim time stands still while the stack computes)'


def planner_offline_lines(cos: dict[str, float] | None) -> list[str]:
    """The planner's held-out `plan -> action` cosines beside the closed-loop diagnosis."""
    if not cos or 'plan_action_cosine' not in cos:
        return []
    return ['', "Planner, held out and without the sim (the model card's `plan -> action`): "
            "inverse dynamics on the plan's first step recovers the recorded (executed) action "
            f"with cosine {cos['plan_action_cosine']:.3f}, against "
            f"{cos['plan_action_cosine_copy']:.3f} from the current frame alone and "
            f"{cos['plan_action_cosine_true']:.3f} from the true next frame (a plan no better "
            'than the current frame carries no direction; results/eval/planner_diagnosis).']


def diagnosis(summary: list[dict[str, Any]]) -> list[str]:
    """Which stage limits each method (uncorrupted rows): the executor ceiling (the expert's
    chunks), grounding + world model (the expert's video as the plan), the planner (the learned
    plan). The stage is the one with the largest success drop from the stage before it."""
    rows = {(r['method'], r.get('plan_source', 'learned')): r for r in summary
            if r['corruption'] == 'none'}
    ceiling = rows.get(('expert_executor', 'expert'))
    methods = [m for m, src in rows if m != 'expert_executor' and src == 'expert']
    if not methods and ceiling is None:
        return []
    def rate(r: dict[str, Any] | None) -> float | None:
        return r['success_rate'] if r is not None else None

    def pct(x: float | None) -> str:
        return '-' if x is None else f'{100 * x:.0f}%'

    lines = ['', '## Which stage limits it', '',
             '| method | executor ceiling (expert chunks) | expert video plan (grounding + '
             'world model) | learned plan (whole stack) | grounded / expert step (p50) | '
             'grounded vs expert joints (RMS rad) | limiting stage |',
             '|---|---|---|---|---|---|---|']
    for m in methods or [m for m, src in rows if m != 'expert_executor']:
        top, exp_, learned = rate(ceiling), rate(rows.get((m, 'expert'))), \
            rate(rows.get((m, 'learned')))
        drops = {'executor / expert': 1.0 - top if top is not None else None,
                 'grounding + world model': (top if top is not None else 1.0) - exp_
                 if exp_ is not None else None,
                 'planner': exp_ - learned if exp_ is not None and learned is not None
                 else None}
        if exp_ is None and learned is not None:   # no expert-video row: one stage for both
            drops['grounding + world model + planner'] = (top if top is not None else 1.0) \
                - learned
        known = {k: v for k, v in drops.items() if v is not None}
        worst = max(known, key=lambda k: known[k]) if known else '-'
        drop_text = ', '.join(f'{k} {-100 * v:+.0f} pts' for k, v in known.items())
        versus = rows.get((m, 'expert')) or {}
        lines.append(f'| {m} | {pct(top)} | {pct(exp_)} | {pct(learned)} | '
                     f"{_fmt(versus.get('expert_step_gain_p50'), '.2f')} | "
                     f"{_fmt(versus.get('expert_plan_error_rad'), '.3f')} | {worst} "
                     f'({drop_text}) |')
    lines += ['', 'Success drops are in points from the stage before (executor, then grounding on '
              "the expert's video, then the learned plan). Grounded / expert step: the grounded "
              "joint displacement over the horizon projected on the expert's own (1 = as far as "
              "the expert went); RMS: grounded joint targets against the expert's joints in the "
              'future it rendered (eval/expert_plan.py).']
    return lines


# --- plots -----------------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_success(result: dict[str, Any], path: Path) -> None:
    """Bars of the success rate per method, one bar per corruption, Wilson 95% whiskers."""
    plt = _pyplot()
    rows = result['summary']
    def label(r: dict[str, Any]) -> str:
        return (r['method'] if r.get('plan_source', 'learned') == 'learned'
                else f"{r['method']}\n({r['plan_source']} plan)")

    methods = list(dict.fromkeys(label(r) for r in rows))
    corruptions = list(dict.fromkeys(r['corruption'] for r in rows))
    width = 0.8 / len(corruptions)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(methods) * max(1, len(corruptions)) / 2
                                        + 2), 3.6))
    for j, c in enumerate(corruptions):
        xs, ys, err = [], [], [[], []]
        for i, m in enumerate(methods):
            r = next((r for r in rows if label(r) == m and r['corruption'] == c), None)
            if r is None:
                continue
            lo, hi = r['success_ci95']
            xs.append(i - 0.4 + width * (j + 0.5))
            ys.append(100 * r['success_rate'])
            err[0].append(100 * (r['success_rate'] - lo))
            err[1].append(100 * (hi - r['success_rate']))
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=c)
    ax.set_xticks(range(len(methods)), methods, rotation=20, ha='right')
    ax.set_ylabel('success (%)')
    ax.set_ylim(0, 105)
    ax.set_title(f"{result['config']['task']}: success rate, Wilson 95% CI, "
                 f"{len(result['config']['seeds'])} seeds")
    ax.legend(fontsize=7, ncol=min(3, len(corruptions)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latency(result: dict[str, Any], path: Path) -> None:
    """Per-stage wall time per replan (p50 bars, p95 whiskers) per method, from the
    uncorrupted episodes when there are any (a plan hook imagines outside the stage timers)."""
    plt = _pyplot()
    eps = [e for e in result['episodes'] if e['corruption'] == 'none'] or result['episodes']
    methods = list(dict.fromkeys(e['method'] for e in eps))
    width = 0.8 / len(STAGES)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(methods) + 2), 3.6))
    for j, stage in enumerate(STAGES):
        p50, p95 = [], []
        for m in methods:
            t = [x for e in eps if e['method'] == m for x in e['timings_ms'].get(stage, [])]
            p50.append(_percentile(t, 50))
            p95.append(_percentile(t, 95))
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(methods))]
        ax.bar(xs, p50, width, yerr=[[0] * len(xs), np.subtract(p95, p50)], capsize=2,
               label=stage)
    ax.set_xticks(range(len(methods)), methods, rotation=20, ha='right')
    ax.set_yscale('log')
    cfg = result['config']
    ax.set_ylabel(f"ms per replan, {cfg['threads']} thread(s)\n(p50, whisker p95)")
    ax.set_title(f"{cfg['task']}: latency per stage")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write results.json, results.md, success.png and latency.png into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ('results.json', 'results.md', 'success.png',
                                               'latency.png')}
    paths['results.json'].write_text(json.dumps(_jsonable(result), indent=1) + '\n')
    paths['results.md'].write_text(to_markdown(result))
    plot_success(result, paths['success.png'])
    plot_latency(result, paths['latency.png'])
    return paths
