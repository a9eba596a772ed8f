"""`vidplan train --only prior`: retrain the planner's action-prior head alone, the flow frozen.

    vidplan train --config config/models/franka_push.yaml --data /work/data/push_all \
        --out models/franka_push --only prior

The head (with `planner.state_dim`, a task-state estimate from the current latent and a policy
of that estimate and the joints) is small and learns from single frames, so it wants many more
samples than the flow's `planner_steps` give it: `train.prior_steps` steps at
`train.prior_batch` and peak `train.prior_lr` (warm-up, cosine) on the frozen autoencoder's
latents, the same loss as in the planner's training, all of its steps. It keeps the weights of
its best held-out evaluation by the head's action error alone: on franka_push the state
estimate's error is dominated by the cube's yaw, which 64 px do not resolve and which the head
overfits from the first evaluations on while its actions still improve. The flow is conditioned
on the recorded actions while it trains (teacher forcing) and on the head's only when sampling,
so it needs no retraining. A `planner.policy_width` / `policy_layers` other than the saved
set's gives the head a fresh policy MLP of that shape. The model set's held-out episodes stay
held out by name; metrics, curves and the card are rewritten. Resumable from `--work-dir` like
the other stages.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidplan_ros.data.dataset import build_dataset
from vidplan_ros.nn.checkpoint import load_checkpoint, save_checkpoint
from vidplan_ros.nn.curves import HeldoutTracker
from vidplan_ros.nn.model_config import ModelConfig
from vidplan_ros.nn.model_set import ModelSet, build_models, load_model_set
from vidplan_ros.nn.train import (PRIOR_TRACK, _bar, _ends, _prior_labels, _rows_of,
                                  _split_like, _state_labels, _window_actions,
                                  _windows, data_summary, encode_frames, optimizer_step,
                                  state_rmse, write_planner)

HELD_WINDOWS = 4000   # the fixed held-out draw the curve is measured on


def _with_policy_shape(old: ModelSet, cfg: ModelConfig, log: Any) -> ModelConfig:
    """The saved set's model config with `cfg`'s data, train and policy MLP shape
    (`planner.policy_width` / `policy_layers`); a new shape gives the head a fresh policy MLP
    (its state estimator kept)."""
    want = (cfg.planner.policy_width, cfg.planner.policy_layers)
    have = (old.cfg.planner.policy_width, old.cfg.planner.policy_layers)
    new = replace(old.cfg, data=cfg.data, train=cfg.train,
                  planner=replace(old.cfg.planner, policy_width=want[0], policy_layers=want[1]))
    if want != have:
        planner = build_models(new)['planner']
        keep = {k: v for k, v in old.planner.state_dict().items()
                if not k.startswith('prior.head.')}
        planner.load_state_dict(keep, strict=False)
        old.planner = planner
        log(f'the policy MLP changes shape (width, layers) {have} -> {want}: it starts afresh, '
            'the state estimator and the flow are kept')
    return new


def train_prior(cfg: ModelConfig, out: Path, work_dir: Path, progress: bool = True,
                log: Any = print, stop_after: int | None = None) -> dict[str, Any]:
    """Retrain the action-prior head of the model set in `out` (`cfg`'s data and train
    settings and policy MLP shape; its other model settings are the saved set's). Returns the
    new config.json info, or {} when stopped after `stop_after` steps (checkpointed)."""
    torch.manual_seed(cfg.train.seed)    # a fresh policy MLP's initial weights
    old = load_model_set(out)
    if old.planner.prior is None:
        raise ValueError(f'--only prior: the planner of {out} has no action-prior head '
                         '(planner.action_prior: false); train one with --only planner')
    cfg = _with_policy_shape(old, cfg, log)
    tc = cfg.train
    torch.set_num_threads(tc.threads)
    t_start = time.time()
    ds = build_dataset(cfg.data, progress=progress)
    log(ds.report.summary())
    train_seqs, held_seqs = _split_like(ds, old.info['dataset']['heldout_episodes'], out)
    planner = old.planner.train()
    head = planner.prior
    cpu = torch.device('cpu')
    z_all = encode_frames(old.autoencoder, ds, cpu)
    q_all = old.normalize_q(torch.as_tensor(ds.q, dtype=torch.float32))
    a_all = old.normalize_action(torch.as_tensor(ds.action, dtype=torch.float32))
    l_all = old.normalize_action(torch.as_tensor(_prior_labels(ds, tc), dtype=torch.float32))
    has = torch.as_tensor(ds.has_action, dtype=torch.float32)
    s_all = _state_labels(ds, cfg)
    horizon = cfg.planner.horizon
    win = torch.as_tensor(_windows(ds, train_seqs, horizon, full=False))
    held = torch.as_tensor(_windows(ds, held_seqs, horizon, full=True))
    h_rows = held[torch.randperm(len(held), generator=torch.Generator().manual_seed(
        tc.seed + 7))[:HELD_WINDOWS]]

    def head_loss(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return planner.prior_loss(z_all[rows[:, 0]], q_all[rows[:, 0]],
                                  *_window_actions(rows, has, a_all, l_all, cpu),
                                  _rows_of(s_all, rows[:, 0], cpu))

    opt = torch.optim.AdamW(head.parameters(), lr=tc.prior_lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(tc.seed + 3000)
    ckpt_path = work_dir / 'checkpoint_prior.pt'
    # all prior_steps, no early stop: the wide head's held-out action error rises and falls
    # again by 0.02 as the learning rate decays (0.69 at step 3000, 0.66 at 8000)
    track = HeldoutTracker(PRIOR_TRACK, head, 0)
    step, elapsed = 0, 0.0
    losses: list[float] = []
    ck = load_checkpoint(ckpt_path)
    if ck is not None:
        head.load_state_dict(ck['head'])
        opt.load_state_dict(ck['opt'])
        gen.set_state(ck['gen'])
        track.load_state_dict(ck['tracker'])
        step, elapsed = ck['step'], ck['elapsed_s']
        losses = list(ck['losses'])
        log(f'resumed from {ckpt_path}: prior step {step}')
    step0 = step

    def save() -> None:
        save_checkpoint(ckpt_path, {'head': head.state_dict(), 'opt': opt.state_dict(),
                                    'gen': gen.get_state(), 'step': step,
                                    'tracker': track.state_dict(), 'losses': losses,
                                    'elapsed_s': elapsed + time.time() - t_start})

    def held_rmse() -> list[float]:
        return [] if s_all is None else state_rmse(planner, z_all, s_all, h_rows[:, 0])

    with _bar(tc.prior_steps, step, 'prior', progress) as bar:
        while step < tc.prior_steps and not track.should_stop:
            if stop_after is not None and step - step0 >= stop_after:
                save()
                return {}
            rows = win[torch.randint(len(win), (tc.prior_batch,), generator=gen)]
            act_loss, state_loss = head_loss(rows)
            losses.append(optimizer_step(opt, act_loss + state_loss, head, tc.prior_lr, step,
                                         tc.prior_steps))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f'{losses[-1]:.4f}')
            if step % tc.checkpoint_every == 0:
                save()
            if step % tc.eval_every == 0 or step == tc.prior_steps:
                head.eval()
                with torch.no_grad():
                    h_act, h_state = (float(v) for v in head_loss(h_rows))
                head.train()
                track.add(step, float(np.mean(losses[-tc.eval_every:])),
                          {'total': h_act, 'state': h_state})
                log(f'step {step}: head loss {np.mean(losses[-50:]):.4f}, held-out actions '
                    f'{h_act:.4f}, state {h_state:.4f}'
                    + (f', state RMSE {held_rmse()}' if s_all is not None else ''))
    track.restore_best()
    save()
    section = {'steps': step, 'batch': tc.prior_batch, 'lr': tc.prior_lr,
               'wall_s': round(elapsed + time.time() - t_start, 1), 'threads': tc.threads,
               'torch': torch.__version__, 'params': sum(p.numel() for p in head.parameters()),
               'planner_params': sum(p.numel() for p in planner.parameters()),
               'loss_first_last': _ends(losses), 'best_step': track.best_step,
               **data_summary(ds, cfg, train_seqs, held_seqs)}
    if s_all is not None:
        section['state_rmse'] = dict(zip(ds.task_state_names, held_rmse()))
    return write_planner(out, cfg, old, planner, ds, held, track, {'prior_training': section})
