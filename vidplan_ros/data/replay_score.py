"""The score of a replay: what the stack planned against what the recorded robot did. ROS-free.

All times are the bag's log time in s; joints are rad in the robot spec's order.

- action error: the grounded plan's target `plan_dt_s` after the observation, minus the
  observed joints, against the same for the recorded command (the chunk active at the
  observation, interpolated as the dataset builder labels actions) and for the recorded motion
  (the recorded joints `plan_dt_s` later);
- plan error: every point of the grounded plan against the recorded joints at its time;
- shadow deviation: the executor's shadow command against the recorded joints at that time;
- world-model residual and alignment of each grounded plan, the executor's decision on it
  (the feasibility gate is its `dynamics_residual` / `alignment` rejections) and the latency of
  each stage.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ['GATE_REASONS', 'ReplanRecord', 'ReplayLog', 'score', 'write_report']

GATE_REASONS = ('dynamics_residual', 'alignment')   # the executor's world-model gate


@dataclass(frozen=True, eq=False)
class ReplanRecord:
    """One pass of the stack on one recorded observation."""

    stamp_s: float
    q0_rad: np.ndarray            # (n,) observed joints
    times_s: np.ndarray           # (K,) plan point times from the stamp
    positions_rad: np.ndarray     # (K, n) grounded plan
    dynamics_residual: float
    alignment: float
    decision: str                 # 'accepted' or the executor's reason for rejecting it
    timings_ms: Mapping[str, float]


class ReplayLog:
    """What a replay saw and did, collected while it runs (appends only)."""

    def __init__(self, n_joints: int) -> None:
        self.n = n_joints
        self.replans: list[ReplanRecord] = []
        self.joint_t: list[float] = []
        self.joint_q: list[np.ndarray] = []
        self.reference: list[tuple[float, np.ndarray, np.ndarray]] = []  # (start, times, pos)
        self.shadow_t: list[float] = []
        self.shadow_q: list[np.ndarray] = []
        self.step_s: list[float] = []     # executor step compute time
        self.skipped: dict[str, int] = {}  # observations not planned from, by reason

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _interp(t: np.ndarray, q: np.ndarray, at: float) -> np.ndarray | None:
    """Recorded joints at `at` (linear between samples); None outside the recording."""
    if not len(t) or at < t[0] - 1e-9 or at > t[-1] + 1e-9:
        return None
    return np.array([np.interp(at, t, q[:, j]) for j in range(q.shape[1])])


def _plan_at(rec: ReplanRecord, dt: float) -> np.ndarray:
    return np.array([np.interp(dt, rec.times_s, rec.positions_rad[:, j])
                     for j in range(rec.positions_rad.shape[1])])


def _reference_target(log: ReplayLog, t: float, q0: np.ndarray, dt: float,
                      tol: float) -> np.ndarray | None:
    """The recorded command's target at t + dt: the newest chunk started by t (+ tol) and not
    yet over, from the observed joints at t (as the dataset builder labels actions)."""
    best = None
    for start, times, pos in log.reference:
        if start <= t + tol and start + times[-1] >= t - tol:
            best = (start, times, pos)
        elif start > t + tol:
            break
    if best is None:
        return None
    start, times, pos = best
    abs_t = start + times
    keep = abs_t > t
    tt = np.concatenate([[t], abs_t[keep]])
    pp = np.concatenate([q0[None], pos[keep]])
    return np.array([np.interp(t + dt, tt, pp[:, j]) for j in range(pp.shape[1])])


def _stats(values: Sequence[float]) -> dict[str, float | int]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if not v.size:
        return {'count': 0}
    return {'count': int(v.size), 'mean': float(v.mean()), 'median': float(np.median(v)),
            'p95': float(np.percentile(v, 95)), 'max': float(v.max())}


def _error_block(per_replan: list[np.ndarray]) -> dict[str, Any]:
    """{mean-abs per replan stats, rms, per joint mean abs} of (n,) absolute errors."""
    if not per_replan:
        return {'count': 0}
    e = np.stack(per_replan)
    out: dict[str, Any] = _stats(np.abs(e).mean(axis=1).tolist())
    out['rms'] = float(np.sqrt(np.mean(e ** 2)))
    out['per_joint_mean_abs'] = np.abs(e).mean(axis=0).round(6).tolist()
    return out


def score(log: ReplayLog, plan_dt_s: float, joint_names: Sequence[str],
          align_tolerance_s: float = 0.02) -> dict[str, Any]:
    """The figures of a replay (see the module docstring) as a JSON-able dict."""
    jt = np.asarray(log.joint_t, float)
    jq = np.stack(log.joint_q) if log.joint_q else np.zeros((0, log.n))
    vs_cmd, vs_motion, plan_err, plan_end = [], [], [], []
    rows: list[dict[str, Any]] = []
    for rec in log.replans:
        action = _plan_at(rec, plan_dt_s) - rec.q0_rad
        ref = _reference_target(log, rec.stamp_s, rec.q0_rad, plan_dt_s, align_tolerance_s)
        row: dict[str, Any] = {'stamp_s': round(rec.stamp_s, 6), 'decision': rec.decision,
                               'dynamics_residual': _finite(rec.dynamics_residual),
                               'alignment': _finite(rec.alignment),
                               'action_error_vs_command': None, 'action_error_vs_motion': None}
        if ref is not None:
            vs_cmd.append(action - (ref - rec.q0_rad))
            row['action_error_vs_command'] = float(np.abs(vs_cmd[-1]).mean())
        moved = _interp(jt, jq, rec.stamp_s + plan_dt_s)
        if moved is not None:
            vs_motion.append(action - (moved - rec.q0_rad))
            row['action_error_vs_motion'] = float(np.abs(vs_motion[-1]).mean())
        rows.append(row)
        errs = [(k, _interp(jt, jq, rec.stamp_s + tk)) for k, tk in enumerate(rec.times_s)
                if k > 0]
        errs = [np.abs(rec.positions_rad[k] - q).mean() for k, q in errs if q is not None]
        if errs:
            plan_err.append(float(np.mean(errs)))
            if len(errs) == len(rec.times_s) - 1:
                plan_end.append(float(errs[-1]))
    shadow = []
    for t, q in zip(log.shadow_t, log.shadow_q):
        rec_q = _interp(jt, jq, t)
        if rec_q is not None:
            shadow.append(float(np.abs(q - rec_q).max()))
    decisions: dict[str, int] = {}
    for rec in log.replans:
        decisions[rec.decision] = decisions.get(rec.decision, 0) + 1
    stages = sorted({k for rec in log.replans for k in rec.timings_ms})
    latency = {s: _pct([rec.timings_ms[s] for rec in log.replans if s in rec.timings_ms])
               for s in stages}
    if log.step_s:
        latency['executor_step'] = _pct([1e3 * s for s in log.step_s])
    return {
        'replans': len(log.replans),
        'observations_skipped': dict(log.skipped),
        'joint_names': list(joint_names),
        'plan_dt_s': plan_dt_s,
        'action_error_rad': {'vs_recorded_command': _error_block(vs_cmd),
                             'vs_recorded_motion': _error_block(vs_motion)},
        'plan_error_rad': {'mean_over_horizon': _stats(plan_err),
                           'at_horizon_end': _stats(plan_end)},
        'shadow_command_deviation_rad': _stats(shadow),
        'dynamics_residual': _stats([r.dynamics_residual for r in log.replans]),
        'alignment': _stats([r.alignment for r in log.replans]),
        'plans': {'accepted': decisions.get('accepted', 0),
                  'rejected': {k: v for k, v in sorted(decisions.items()) if k != 'accepted'},
                  'feasibility_gate_rejected': sum(decisions.get(k, 0) for k in GATE_REASONS)},
        'latency_ms': latency,
        'per_replan': rows,
    }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _pct(values: Sequence[float]) -> dict[str, float | int]:
    v = np.asarray(values, float)
    if not v.size:
        return {'count': 0}
    p50, p95 = np.percentile(v, [50, 95])
    return {'count': int(v.size), 'p50': round(float(p50), 3), 'p95': round(float(p95), 3),
            'max': round(float(v.max()), 3)}


def _fmt(block: Mapping[str, Any], key: str, scale: float = 1.0, digits: int = 4) -> str:
    value = block.get(key)
    return '–' if value is None or not math.isfinite(value) else f'{value * scale:.{digits}f}'


def _markdown(report: Mapping[str, Any]) -> str:
    s = report['score']
    act = s['action_error_rad']
    lines = [f'# vidplan replay: {report["bag"]}', '',
             f'`{report["command"]}`', '',
             f'- model `{report["model"]}`, grounding `{report["method"]}`, timing '
             f'`{report["timing"]}`, latency `{report["latency"]}`',
             f'- output bag `{report["output"]}` '
             f'({"complete" if report["complete"] else "INCOMPLETE"})',
             f'- {s["replans"]} replans from {report["messages"]} messages over '
             f'{report["bag_span_s"]:.2f} s of bag in {report["wall_s"]:.2f} s: '
             f'**{report["frames_per_s"]:.2f} frames/s**, {report["realtime_factor"]:.2f}x '
             'real time']
    if report.get('error'):
        lines.append(f'- **error**: {report["error"]}')
    for note in report.get('notes', []):
        lines.append(f'- note: {note}')
    lines += ['', '## Inputs', '', '```', report['topics_summary'], '```', '',
              '## Score (rad; mean abs over joints per replan)', '',
              '| figure | n | mean | median | p95 | max |', '|---|---|---|---|---|---|']
    rows = [('action error vs recorded command', act['vs_recorded_command']),
            ('action error vs recorded motion', act['vs_recorded_motion']),
            ('plan error over the horizon', s['plan_error_rad']['mean_over_horizon']),
            ('plan error at the horizon end', s['plan_error_rad']['at_horizon_end']),
            ('shadow command deviation (max joint)', s['shadow_command_deviation_rad']),
            ('world-model residual', s['dynamics_residual']),
            ('alignment (cosine)', s['alignment'])]
    for name, b in rows:
        lines.append(f'| {name} | {b.get("count", 0)} | {_fmt(b, "mean")} | '
                     f'{_fmt(b, "median")} | {_fmt(b, "p95")} | {_fmt(b, "max")} |')
    plans = s['plans']
    lines += ['', f'Plans: {plans["accepted"]} accepted, rejected {plans["rejected"] or "none"}'
              f'; the feasibility gate rejected {plans["feasibility_gate_rejected"]}.']
    if s['observations_skipped']:
        lines.append(f'Observations not planned from: {s["observations_skipped"]}.')
    per_joint = act['vs_recorded_command'].get('per_joint_mean_abs') or \
        act['vs_recorded_motion'].get('per_joint_mean_abs')
    if per_joint:
        which = ('recorded command' if act['vs_recorded_command'].get('per_joint_mean_abs')
                 else 'recorded motion')
        lines += ['', f'Action error per joint vs the {which} (mean abs, rad):', '',
                  '| ' + ' | '.join(s['joint_names']) + ' |',
                  '|' + '---|' * len(per_joint),
                  '| ' + ' | '.join(f'{v:.4f}' for v in per_joint) + ' |']
    lines += ['', '## Latency per stage (ms)', '', '| stage | n | p50 | p95 | max |',
              '|---|---|---|---|---|']
    for stage, b in s['latency_ms'].items():
        lines.append(f'| {stage} | {b.get("count", 0)} | {b.get("p50", "–")} | '
                     f'{b.get("p95", "–")} | {b.get("max", "–")} |')
    ex = report.get('executor', {})
    if ex:
        lines += ['', f'Executor (shadow, commanding nothing): modes {ex.get("modes")}, '
                  f'clamps {ex.get("clamps")}.']
    return '\n'.join(lines) + '\n'


def write_report(report: Mapping[str, Any], out_dir: str | Path,
                 stem: str = 'replay_report') -> tuple[Path, Path]:
    """`<out_dir>/<stem>.json` and `.md`; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / f'{stem}.json', out / f'{stem}.md'
    for path, text in zip(paths, (json.dumps(report, indent=1, allow_nan=False,
                                             default=_plain) + '\n', _markdown(report))):
        tmp = path.with_suffix(path.suffix + '.tmp')
        tmp.write_text(text)
        tmp.replace(path)
    return paths


def _plain(value: Any) -> Any:
    if hasattr(value, 'tolist'):
        return value.tolist()
    raise TypeError(f'{type(value).__name__} is not JSON')
