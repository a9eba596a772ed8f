"""Held-out loss curves of a training stage, early stopping on them, and their plot."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from torch import nn

__all__ = ['HeldoutTracker', 'plot_curves']


class HeldoutTracker:
    """Records (step, mean training loss since the last point, held-out loss) of one stage.

    Keeps a copy of `module`'s weights at its best held-out loss; `should_stop` once that has
    not improved for `patience` evaluations (0: never). `restore_best` puts the best weights
    back, so a stage that overfits at the end keeps what generalised best.
    """

    def __init__(self, name: str, module: nn.Module, patience: int) -> None:
        self.name = name
        self.module = module
        self.patience = patience
        self.points: list[dict[str, Any]] = []
        self.best = math.inf
        self.best_step = 0
        self._best_state: dict[str, Any] | None = None
        self._since_best = 0

    def add(self, step: int, train_loss: float, held: dict[str, float]) -> None:
        """A point at `step`; `held` = {'total': criterion, other named parts ...}."""
        self.points.append({'step': int(step), 'train': round(float(train_loss), 6),
                            **{k: round(float(v), 6) for k, v in held.items()}})
        if held['total'] < self.best - 1e-6:
            self.best, self.best_step, self._since_best = float(held['total']), int(step), 0
            self._best_state = copy.deepcopy(self.module.state_dict())
        else:
            self._since_best += 1

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self._since_best >= self.patience

    def restore_best(self) -> None:
        if self._best_state is not None:
            self.module.load_state_dict(self._best_state)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a resumed run still knows its best weights and curve."""
        return {'points': list(self.points), 'best': self.best, 'best_step': self.best_step,
                'best_state': self._best_state, 'since_best': self._since_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.points = list(state['points'])
        self.best, self.best_step = float(state['best']), int(state['best_step'])
        self._best_state, self._since_best = state['best_state'], int(state['since_best'])

    def summary(self) -> dict[str, Any]:
        return {'points': self.points, 'best_step': self.best_step,
                'best_heldout': round(self.best, 6) if math.isfinite(self.best) else None}


def plot_curves(curves: dict[str, dict[str, Any]], path: Path) -> None:
    """One panel per stage: training and held-out losses against steps (log scale)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    stages = [(k, v) for k, v in curves.items() if v.get('points')]
    if not stages:
        return
    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.6), squeeze=False)
    for ax, (name, c) in zip(axes[0], stages):
        pts = c['points']
        steps = [p['step'] for p in pts]
        for key in [k for k in pts[0] if k != 'step']:
            style = '--' if key == 'train' else '-'
            label = 'train' if key == 'train' else f'held-out {key}'
            ax.plot(steps, [p[key] for p in pts], style, label=label)
        ax.axvline(c['best_step'], color='grey', lw=0.8)
        ax.set_yscale('log')
        ax.set_xlabel('step')
        ax.set_title(f'{name} (best held-out at step {c["best_step"]})', fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
