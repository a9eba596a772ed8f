"""`vidplan scaling`: a data-scaling curve from closed-loop results of model sets trained on
different numbers of episodes.

Each point is the output directory of one `vidplan eval` run (its results.json) whose `--model`
was a model set trained on some number of episodes. That number is read from the model set's
config.json: `planner_training.train_episodes` when the planner was retrained alone on that data
(`vidplan train --only planner`, the stage the diagnosis names as the limit), else
`dataset.train_episodes`. Written: scaling.json, scaling.md (the table, each point's command)
and scaling.png (success against training episodes, log x, Wilson 95% whiskers, one line per
method and plan source). Points should share seeds; the table says when they do not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.eval.eval_report import _pyplot, load_results

__all__ = ['build_parser', 'main', 'scaling_points', 'write_scaling']


def _model_info(model: str) -> tuple[Path, dict[str, Any]]:
    from vidplan_ros.runtime.pipeline import model_dir_for
    path = model_dir_for(model)
    cfg = path / 'config.json'
    if not cfg.exists():
        raise VidplanError(f'{cfg} does not exist: the eval ran on model {model!r}, which is '
                           "no longer there; keep each scaling point's model set until the "
                           'curve is written')
    return path, json.loads(cfg.read_text())


def scaling_points(result_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """One point per eval directory: training episodes, planner metrics and success rows,
    sorted by the number of training episodes."""
    points = []
    for d in result_dirs:
        if not (Path(d) / 'results.json').exists():
            raise VidplanError(f'{d} holds no results.json: pass the --out directory of a '
                               'finished `vidplan eval` run')
        res = load_results(d)
        path, info = _model_info(res['config']['model'])
        pt = info.get('planner_training') or {}
        episodes = pt.get('train_episodes', info['dataset']['train_episodes'])
        held = info.get('metrics_heldout', {})
        points.append({
            'results': str(d), 'command': res.get('command', ''), 'model': str(path),
            'train_episodes': int(episodes),
            'stage': 'planner' if 'train_episodes' in pt else 'whole model set',
            'planner_steps': pt.get('best_step') or pt.get('steps')
            or info['training'].get('dynamics_steps'),
            'planner_cosine_at_h': (held.get('planner_cosine') or [None])[-1],
            'seeds': res['config']['seeds'],
            'rows': [{k: r[k] for k in ('method', 'plan_source', 'corruption', 'episodes',
                                        'successes', 'success_rate', 'success_ci95')}
                     | {'final_distance_m': r.get('mean_final_distance_m')}
                     for r in res['summary']]})
    if not points:
        raise VidplanError('no eval results given: pass the output directories of '
                           '`vidplan eval` runs, one per training-set size')
    return sorted(points, key=lambda p: p['train_episodes'])


def _series(points: list[dict[str, Any]]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for p in points:
        for r in p['rows']:
            if r['corruption'] != 'none':
                continue
            out.setdefault(f"{r['method']} ({r['plan_source']} plan)", []).append(
                (p['train_episodes'], r))
    return out


def _markdown(points: list[dict[str, Any]], title: str) -> str:
    same = all(p['seeds'] == points[0]['seeds'] for p in points)
    s = points[0]['seeds']
    lines = [f'# Data scaling: {title}', '',
             f"Success against the number of training episodes ({points[0]['stage']} trained "
             'on each set; the other models of the set unchanged). '
             + (f'Every point on the same {len(s)} seeds {s[0]}-{s[-1]}.' if same else
                '**The points were run on different seeds.**'), '',
             '| training episodes | planner steps (best) | planner cos@H (held-out) | '
             'method | success | 95% CI | mean final distance (m) |',
             '|---|---|---|---|---|---|---|']
    for p in points:
        for r in p['rows']:
            if r['corruption'] != 'none':
                continue
            lo, hi = r['success_ci95']
            cos = p['planner_cosine_at_h']
            dist = r['final_distance_m']
            lines.append(f"| {p['train_episodes']} | {p['planner_steps']} | "
                         f"{'-' if cos is None else f'{cos:.3f}'} | {r['method']} "
                         f"({r['plan_source']} plan) | {r['successes']}/{r['episodes']} = "
                         f"{100 * r['success_rate']:.0f}% | {100 * lo:.0f}-{100 * hi:.0f}% | "
                         f"{'-' if dist is None else f'{dist:.3f}'} |")
    lines += ['', '![data scaling](scaling.png)', '', 'Commands:', '']
    lines += [f"- {p['train_episodes']} episodes: `{p['command']}` (model `{p['model']}`)"
              for p in points]
    return '\n'.join(lines) + '\n'


def _plot(points: list[dict[str, Any]], title: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, pts in _series(points).items():
        xs = [n for n, _ in pts]
        ys = [100 * r['success_rate'] for _, r in pts]
        err = [[100 * (r['success_rate'] - r['success_ci95'][0]) for _, r in pts],
               [100 * (r['success_ci95'][1] - r['success_rate']) for _, r in pts]]
        ax.errorbar(xs, ys, yerr=err, marker='o', capsize=3, label=name)
    ax.set_xscale('log')
    ax.set_xlabel('training episodes')
    ax.set_ylabel('success (%)')
    ax.set_ylim(0, 105)
    ax.set_title(f'{title}: success vs data (Wilson 95% CI)', fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_scaling(points: list[dict[str, Any]], out: Path, title: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {'json': out / 'scaling.json', 'md': out / 'scaling.md',
             'png': out / 'scaling.png'}
    paths['json'].write_text(json.dumps({'title': title, 'points': points}, indent=1))
    paths['md'].write_text(_markdown(points, title))
    _plot(points, title, paths['png'])
    return paths


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='vidplan scaling', description=__doc__.split('\n')[0])
    p.add_argument('results', nargs='+', help='output directories of `vidplan eval` runs')
    p.add_argument('--out', required=True, help='directory for scaling.json/.md/.png')
    p.add_argument('--title', default='', help='default: the task of the first point')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    points = scaling_points(args.results)
    title = args.title or load_results(args.results[0])['config']['task']
    paths = write_scaling(points, Path(args.out), title)
    print(Path(paths['md']).read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
