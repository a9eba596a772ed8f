"""`vidplan train`: train a model set (autoencoder, planner, world model, inverse dynamics).

    vidplan train --config config/models/franka_reach.yaml --data /work/data/franka_reach \
        --out models/franka_reach

Stage 1 trains the autoencoder on frames of the training episodes; it is then frozen, every
frame is encoded once, and stage 2 trains the planner (flow matching), the world model
(k-step open-loop loss) and the inverse dynamics together on latents. Held-out episodes
(`train.heldout_fraction`, seeded) give the metrics of the model card. `--only planner`
retrains just the planner (`train.planner_steps` steps, flow loss only) on the frozen
autoencoder latents of the model set already in `--out`, keeping its autoencoder, world model,
inverse dynamics, norm stats and held-out split, and rewrites the card's metrics; `--only prior`
retrains the planner's action-prior head alone (vidplan_ros/nn/train_prior.py). Checkpoints go to
`--work-dir` (default build/train/<name>) every `train.checkpoint_every` steps and a rerun
resumes from them; seeds make runs repeatable. Under torchrun (WORLD_SIZE > 1) the steps run
data-parallel (DDP; NCCL on GPUs, gloo on CPU); the default is one CPU process.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vidplan_ros.core.config import load_config
from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.data.dataset import Dataset, build_dataset, split_sequences
from vidplan_ros.nn.checkpoint import load_checkpoint, save_checkpoint
from vidplan_ros.nn.curves import HeldoutTracker, plot_curves
from vidplan_ros.nn.metrics import collection_summary, evaluate_windows, write_model_card
from vidplan_ros.nn.model_config import ModelConfig, TrainConfig
from vidplan_ros.nn.model_set import (MODEL_FILES, ModelSet, NormStats, build_models,
                                      save_model_set)

__all__ = ['build_parser', 'main', 'train', 'train_planner']


class _DynLoss(nn.Module):
    """Stage-2 loss as one module (so DDP can wrap it): planner + world model + inverse dyn."""

    def __init__(self, models: dict[str, nn.Module], rollout: int) -> None:
        super().__init__()
        self.planner = models['planner']
        self.world_model = models['world_model']
        self.inverse_dynamics = models['inverse_dynamics']
        self.rollout = rollout

    def forward(self, z: torch.Tensor, q: torch.Tensor, a: torch.Tensor, mask: torch.Tensor,
                noise: torch.Tensor, tau: torch.Tensor, label: torch.Tensor,
                state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, H+1, V, C, h, w), q (B, H+1, n), a (B, H, n) executed and label (B, H, n)
        the prior head's targets, mask (B, H) of valid steps; state (B, S) the task-state
        labels of the first frame (planner.state_dim)."""
        fm = self.planner.loss(z[:, 0], q[:, 0], z[:, 1:], noise, tau, a, mask, label, state)
        k = self.rollout
        zr, qr = self.world_model.rollout(z[:, 0], q[:, 0], a[:, :k])
        m = mask[:, :k]
        err = (((zr - z[:, 1:k + 1]) ** 2).flatten(2).mean(-1)
               + ((qr - q[:, 1:k + 1]) ** 2).mean(-1))
        wm = (err * m).sum() / m.sum().clamp(min=1)
        a_pred = self.inverse_dynamics(z[:, 0], z[:, 1], q[:, 0])
        idl = (((a_pred - a[:, 0]) ** 2).mean(-1) * mask[:, 0]).sum() / mask[:, 0].sum().clamp(
            min=1)
        return fm, wm, idl


def _windows(ds: Dataset, seqs: np.ndarray, horizon: int, full: bool) -> np.ndarray:
    """(M, H+1) frame indices of windows starting at frames with an action; future indices
    past a sequence's end repeat its last frame (`full`: only windows that do not need it)."""
    rows = []
    for e in seqs:
        s, t = int(ds.seq_start[e]), int(ds.seq_start[e + 1])
        last = t - 1
        for i in range(s, last - horizon + 1 if full else last):
            rows.append([min(i + k, last) for k in range(horizon + 1)])
    return np.asarray(rows, np.int64).reshape(-1, horizon + 1)


def _dist() -> tuple[int, int, torch.device]:
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
        rank = dist.get_rank()
        if torch.cuda.is_available():
            local = int(os.environ.get('LOCAL_RANK', '0'))
            torch.cuda.set_device(local)
            return rank, world, torch.device('cuda', local)
        return rank, world, torch.device('cpu')
    return 0, 1, torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def _wrap(m: nn.Module, world: int, device: torch.device) -> nn.Module:
    if world == 1:
        return m
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(m, device_ids=[device.index] if device.type == 'cuda'
                                   else None)


def _bar(total: int, initial: int, desc: str, show: bool) -> Any:
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, disable=not show, unit='step')


def _norm_stats(ds: Dataset, seqs: np.ndarray, robot: str) -> NormStats:
    idx = np.concatenate([np.arange(ds.seq_start[e], ds.seq_start[e + 1]) for e in seqs])
    q = ds.q[idx]
    a = ds.action[idx][ds.has_action[idx]]
    return NormStats(joint_names=list(load_robot_spec(robot).joint_names),
                     q_mean=q.mean(0), q_std=np.maximum(q.std(0), 1e-3),
                     action_mean=a.mean(0), action_std=np.maximum(a.std(0), 1e-4))


def _images(ds: Dataset, idx: np.ndarray) -> torch.Tensor:
    """(B, V, 3, S, S) float in [0, 1] of frames `idx`."""
    return torch.as_tensor(ds.images[idx]).permute(0, 1, 4, 2, 3).float() / 255.0


def train(cfg: ModelConfig, out: Path, work_dir: Path, progress: bool = True,
          log: Any = print, stop_after: int | None = None) -> dict[str, Any]:
    """Train the model set `cfg` and write it to `out`; returns the config.json info.

    `stop_after` ends this run after that many steps with a checkpoint (and returns {}); a
    later call resumes from it.
    """
    tc = cfg.train
    rank, world, device = _dist()
    torch.manual_seed(tc.seed)
    torch.set_num_threads(tc.threads)
    t_start = time.time()
    ds = build_dataset(cfg.data, progress=progress and rank == 0)
    log(ds.report.summary())
    n = ds.q.shape[1]
    if n != cfg.action_dim:
        raise ValueError(f'{cfg.data.robot} has {n} arm joints but action_dim = '
                         f'{cfg.action_dim}; fix action_dim in the model config')
    train_seqs, held_seqs = split_sequences(ds, tc.heldout_fraction, tc.seed)
    norm = _norm_stats(ds, train_seqs, cfg.data.robot)
    models = {k: m.to(device) for k, m in build_models(cfg).items()}
    ae = models['autoencoder']
    ckpt_path = work_dir / 'checkpoint.pt'
    ck = load_checkpoint(ckpt_path)
    gen = torch.Generator().manual_seed(tc.seed + 1000 * rank)
    ae_opt = torch.optim.AdamW(ae.parameters(), lr=tc.ae_lr, weight_decay=0.0)
    dyn = _DynLoss(models, min(tc.wm_rollout, cfg.planner.horizon)).to(device)
    dyn_opt = torch.optim.AdamW(dyn.parameters(), lr=tc.dyn_lr, weight_decay=1e-4)
    ae_track = HeldoutTracker('autoencoder', ae, tc.patience)
    dyn_track = HeldoutTracker('planner+wm+id', dyn, tc.patience)
    ae_step = dyn_step = 0
    elapsed = 0.0
    if ck is not None:
        for k, m in models.items():
            m.load_state_dict(ck['models'][k])
        ae_opt.load_state_dict(ck['ae_opt'])
        dyn_opt.load_state_dict(ck['dyn_opt'])
        gen.set_state(ck['gen'])
        for t in (ae_track, dyn_track):   # checkpoints before 2026-12 have no trackers
            if t.name in ck.get('trackers', {}):
                t.load_state_dict(ck['trackers'][t.name])
        ae_step, dyn_step, elapsed = ck['ae_step'], ck['dyn_step'], ck['elapsed_s']
        log(f'resumed from {ckpt_path}: autoencoder step {ae_step}, dynamics step {dyn_step}')

    steps0 = ae_step + dyn_step

    def save() -> None:
        if rank == 0:
            save_checkpoint(ckpt_path, {
                'models': {k: m.state_dict() for k, m in models.items()},
                'ae_opt': ae_opt.state_dict(), 'dyn_opt': dyn_opt.state_dict(),
                'gen': gen.get_state(), 'ae_step': ae_step, 'dyn_step': dyn_step,
                'trackers': {t.name: t.state_dict() for t in (ae_track, dyn_track)},
                'elapsed_s': elapsed + time.time() - t_start})

    train_frames = np.concatenate([np.arange(ds.seq_start[e], ds.seq_start[e + 1])
                                   for e in train_seqs])
    ae_run = _wrap(ae, world, device)
    ae_losses: list[float] = []
    held_frames = np.concatenate([np.arange(ds.seq_start[e], ds.seq_start[e + 1])
                                  for e in held_seqs]) if len(held_seqs) else train_frames
    held_frames = np.random.default_rng(tc.seed).choice(
        held_frames, size=min(256, len(held_frames)), replace=False)

    def ae_eval() -> None:
        ae.eval()
        with torch.no_grad():
            x = _images(ds, held_frames).to(device)
            held = float(((ae(x) - x) ** 2).mean())
        ae.train()
        recent = ae_losses[-tc.eval_every:] or [math.nan]
        ae_track.add(ae_step, float(np.mean(recent)), {'total': held})
        log(f'autoencoder step {ae_step}: held-out MSE {held:.5f}')

    with _bar(tc.ae_steps, ae_step, 'autoencoder', progress and rank == 0) as bar:
        while ae_step < tc.ae_steps and not ae_track.should_stop:
            if stop_after is not None and ae_step + dyn_step - steps0 >= stop_after:
                save()
                return {}
            pick = torch.randint(len(train_frames), (tc.ae_batch,), generator=gen).numpy()
            x = _images(ds, train_frames[pick]).to(device)
            _set_lr(ae_opt, tc.ae_lr, ae_step, tc.ae_steps)
            loss = ((ae_run(x) - x) ** 2).mean()
            ae_opt.zero_grad()
            loss.backward()
            ae_opt.step()
            ae_step += 1
            ae_losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f'{loss.item():.5f}')
            if ae_step % tc.checkpoint_every == 0:
                save()
            if ae_step % tc.eval_every == 0 or ae_step == tc.ae_steps:
                ae_eval()
    ae_track.restore_best()
    ae.eval()
    for p in ae.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        raw = torch.cat([ae.encode_raw(_images(ds, np.arange(i, min(i + 256, len(ds.q))))
                                       .to(device)) for i in range(0, len(ds.q), 256)])
        tr = raw[torch.as_tensor(train_frames)]
        ae.latent_mean.copy_(tr.mean(dim=(0, 1, 3, 4)))
        ae.latent_std.copy_(tr.std(dim=(0, 1, 3, 4)).clamp(min=1e-4))
        z_all = (raw - ae.latent_mean[:, None, None]) / ae.latent_std[:, None, None]
    q_all = torch.as_tensor((ds.q - norm.q_mean) / norm.q_std, dtype=torch.float32)
    a_all = torch.as_tensor((ds.action - norm.action_mean) / norm.action_std,
                            dtype=torch.float32)
    l_all = torch.as_tensor((_prior_labels(ds, tc) - norm.action_mean) / norm.action_std,
                            dtype=torch.float32)
    has = torch.as_tensor(ds.has_action, dtype=torch.float32)
    horizon = cfg.planner.horizon
    win = torch.as_tensor(_windows(ds, train_seqs, horizon, full=False))
    s_all = _state_labels(ds, cfg)
    if dyn_step == 0:
        _set_planner_scales(models['planner'], z_all, win, s_all, device)
    dyn_run = _wrap(dyn, world, device)
    dyn_losses: list[list[float]] = []
    held_win = torch.as_tensor(_windows(ds, held_seqs, horizon, full=False)) \
        if len(held_seqs) else win
    eval_rows, held_noise, held_tau = _heldout_draw(z_all, held_win, 256, tc.seed + 7)

    def dyn_eval() -> None:
        dyn.eval()
        with torch.no_grad():
            mask = has[eval_rows[:, :-1]] * (eval_rows[:, 1:] != eval_rows[:, :-1]).float()
            parts = [float(v) for v in dyn(
                z_all[eval_rows].to(device), q_all[eval_rows].to(device),
                a_all[eval_rows[:, :-1]].to(device), mask.to(device), held_noise.to(device),
                held_tau.to(device), l_all[eval_rows[:, :-1]].to(device),
                _rows_of(s_all, eval_rows[:, 0], device))]
        dyn.train()
        recent = [sum(r) for r in dyn_losses[-tc.eval_every:]] or [math.nan]
        dyn_track.add(dyn_step, float(np.mean(recent)),
                      {'total': sum(parts), 'flow': parts[0], 'world_model': parts[1],
                       'inverse_dynamics': parts[2]})
        log(f'dynamics step {dyn_step}: held-out flow {parts[0]:.4f} wm {parts[1]:.4f} '
            f'id {parts[2]:.4f}')

    with _bar(tc.dyn_steps, dyn_step, 'planner+wm+id', progress and rank == 0) as bar:
        while dyn_step < tc.dyn_steps and not dyn_track.should_stop:
            if stop_after is not None and ae_step + dyn_step - steps0 >= stop_after:
                save()
                return {}
            rows = win[torch.randint(len(win), (tc.dyn_batch,), generator=gen)]
            z = z_all[rows]
            mask = has[rows[:, :-1]] * (rows[:, 1:] != rows[:, :-1]).float()
            noise = torch.randn(z[:, 1:].shape, generator=gen)
            tau = torch.rand(len(rows), generator=gen)
            fm, wm, idl = dyn_run(z.to(device), q_all[rows].to(device),
                                  a_all[rows[:, :-1]].to(device), mask.to(device),
                                  noise.to(device), tau.to(device),
                                  l_all[rows[:, :-1]].to(device),
                                  _rows_of(s_all, rows[:, 0], device))
            optimizer_step(dyn_opt, fm + wm + idl, dyn, tc.dyn_lr, dyn_step, tc.dyn_steps)
            dyn_step += 1
            dyn_losses.append([fm.item(), wm.item(), idl.item()])
            bar.update(1)
            bar.set_postfix(fm=f'{fm.item():.4f}', wm=f'{wm.item():.4f}', id=f'{idl.item():.4f}')
            if dyn_step % tc.checkpoint_every == 0:
                save()
            if dyn_step % tc.eval_every == 0 or dyn_step == tc.dyn_steps:
                dyn_eval()
    dyn_track.restore_best()
    save()
    wall = elapsed + time.time() - t_start
    if rank != 0:
        return {}
    for m in models.values():
        m.cpu().eval()
    ms = ModelSet(cfg=cfg, norm=norm, info={}, **models)  # type: ignore[arg-type]
    held_rows = _windows(ds, held_seqs, horizon, full=True)
    images = ds.images[held_rows]
    q_raw = ds.q[held_rows]
    a_raw = ds.action[held_rows[:, :-1]]
    metrics = evaluate_windows(ms, images, q_raw, a_raw, seed=tc.seed)
    pick = np.random.default_rng(tc.seed).choice(len(held_rows), size=min(
        tc.heldout_windows, len(held_rows)), replace=False)
    pick.sort()
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / 'heldout.npz', images=images[pick], q=q_raw[pick],
                        action=a_raw[pick])
    small = evaluate_windows(ms, images[pick], q_raw[pick], a_raw[pick], seed=tc.seed)
    info = {
        'dataset': {**ds.report.__dict__, 'train_episodes': int(len(set(
            ds.seq_episode[train_seqs].tolist()))), 'heldout_episodes': sorted(
            ds.episode_names[i] for i in set(ds.seq_episode[held_seqs].tolist()))},
        'training': {'autoencoder_steps': ae_step, 'dynamics_steps': dyn_step,
                     'wall_s': round(wall, 1), 'threads': tc.threads, 'world_size': world,
                     'device': str(device), 'torch': torch.__version__,
                     'autoencoder_loss_first_last': _ends(ae_losses),
                     'dynamics_loss_first_last': [_ends([r[i] for r in dyn_losses])
                                                  for i in range(3)],
                     'curves': {'autoencoder': ae_track.summary(),
                                'planner+wm+id': dyn_track.summary()}},
        'metrics_heldout': metrics,
        'metrics_heldout_npz': small,
        'framing': _framing(cfg),
        'collection': collection_summary(cfg.data.data_dir),
    }
    save_model_set(out, cfg, models, norm, info)
    plot_curves(info['training']['curves'], out / 'loss_curves.png')
    write_model_card(out, cfg, info)
    return info


def _framing(cfg: ModelConfig) -> list[dict[str, Any]]:
    """Pixels per cm of the task's objects in the model's views (sim tasks only)."""
    try:
        from dataclasses import asdict

        from vidplan_ros.sim.framing import measure_framing
        rows = measure_framing(cfg.task, cfg.data.cameras, cfg.image_size, range(20))
    except (ImportError, ValueError, KeyError) as exc:   # no sim, or not a sim task/camera
        return [{'error': str(exc)}]
    return [asdict(r) for r in rows]


def _future_pairs(z_all: torch.Tensor, win: torch.Tensor, device: torch.device,
                  max_windows: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    """(z_t, z_{t+1..t+H}) of the windows `win` (a seeded draw of `max_windows` where there
    are more: all 520k windows of 2125 push episodes would take 19 GB), for the planner's
    residual scale."""
    if len(win) > max_windows:
        pick = torch.randperm(len(win), generator=torch.Generator().manual_seed(0))
        win = win[pick[:max_windows].sort().values]
    return z_all[win[:, 0]].to(device), z_all[win[:, 1:]].to(device)


def _set_planner_scales(planner: nn.Module, z_all: torch.Tensor, win: torch.Tensor,
                        s_all: torch.Tensor | None, device: torch.device) -> None:
    """A fresh planner's residual scale from the training windows `win`, and its state head's
    label scale from their first frames (`planner.state_dim`)."""
    planner.set_residual_scale(*_future_pairs(z_all, win, device))
    if s_all is not None:
        planner.set_state_scale(s_all[win[:, 0]])


def _load_except_planner(cfg: ModelConfig, out: Path) -> ModelSet:
    """The model set in `out` with its weights but a fresh planner of `cfg` (whose other
    model configs must match the saved ones)."""
    import json
    info = json.loads((out / 'config.json').read_text())
    models = build_models(cfg)
    for name in MODEL_FILES:
        if name != 'planner':
            models[name].load_state_dict(torch.load(out / f'{name}.pt', map_location='cpu',
                                                    weights_only=True))
            models[name].eval()
    norm = NormStats.from_json(json.loads((out / 'norm_stats.json').read_text()))
    return ModelSet(cfg=cfg, norm=norm, info=info, **models)  # type: ignore[arg-type]


def train_planner(cfg: ModelConfig, out: Path, work_dir: Path, progress: bool = True,
                  log: Any = print, stop_after: int | None = None) -> dict[str, Any]:
    """Retrain only the planner of the model set in `out` (`--only planner`).

    The autoencoder (and its latent normalisation), world model, inverse dynamics and norm
    stats stay. The data may be another set of episodes (a data-scaling point, more data):
    the model set's held-out episodes present in it are held out again, by name, and every
    other episode trains. The planner is trained from scratch for up to
    `train.planner_steps` steps on the training windows' latents, stopping early when the
    held-out flow loss has not improved for `train.patience` evaluations and keeping its best
    weights; the held-out metrics are recomputed and config.json / README.md / planner.pt
    rewritten. Resumable like `train`.
    """
    tc = cfg.train
    steps_total = tc.planner_steps or tc.dyn_steps
    bsz = tc.planner_batch or tc.dyn_batch
    lr = tc.planner_lr or tc.dyn_lr
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    torch.manual_seed(tc.seed)
    torch.set_num_threads(tc.threads)
    t_start = time.time()
    old = _load_except_planner(cfg, out)
    ds = build_dataset(cfg.data, progress=progress)
    log(ds.report.summary())
    train_seqs, held_seqs = _split_like(ds, old.info['dataset']['heldout_episodes'], out)
    planner = build_models(cfg)['planner'].to(device)
    ae = old.autoencoder.to(device)
    z_all = encode_frames(ae, ds, device)
    q_all = old.normalize_q(torch.as_tensor(ds.q, dtype=torch.float32))
    horizon = cfg.planner.horizon
    win = torch.as_tensor(_unperturbed(ds, _windows(ds, train_seqs, horizon, full=False),
                                       tc.planner_max_perturbation_rad, log))
    held = torch.as_tensor(_windows(ds, held_seqs, horizon, full=True))
    opt = torch.optim.AdamW(planner.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(tc.seed + 2000)
    ckpt_path = work_dir / 'checkpoint_planner.pt'
    ck = load_checkpoint(ckpt_path)
    track = HeldoutTracker('planner (--only planner)', planner, tc.patience)
    step, elapsed = 0, 0.0
    if ck is not None:
        planner.load_state_dict(ck['planner'])
        opt.load_state_dict(ck['opt'])
        gen.set_state(ck['gen'])
        if 'tracker' in ck:
            track.load_state_dict(ck['tracker'])
        step, elapsed = ck['step'], ck['elapsed_s']
        log(f'resumed from {ckpt_path}: planner step {step}')
    s_all = _state_labels(ds, cfg)
    if ck is None:
        _set_planner_scales(planner, z_all, win, s_all, device)
    step0 = step

    def save() -> None:
        save_checkpoint(ckpt_path, {'planner': planner.state_dict(), 'opt': opt.state_dict(),
                                    'gen': gen.get_state(), 'step': step,
                                    'tracker': track.state_dict(),
                                    'elapsed_s': elapsed + time.time() - t_start})

    h_rows, h_noise, h_tau = _heldout_draw(z_all, held, 512, tc.seed + 7)
    a_all = old.normalize_action(torch.as_tensor(ds.action, dtype=torch.float32))
    l_all = old.normalize_action(torch.as_tensor(_prior_labels(ds, tc), dtype=torch.float32))
    has = torch.as_tensor(ds.has_action, dtype=torch.float32)

    def window_actions(rows: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _window_actions(rows, has, a_all, l_all, device)

    def held_flow() -> float:
        planner.eval()
        with torch.no_grad():
            v = planner.loss(z_all[h_rows[:, 0]].to(device), q_all[h_rows[:, 0]].to(device),
                             z_all[h_rows[:, 1:]].to(device), h_noise.to(device),
                             h_tau.to(device), *window_actions(h_rows),
                             _rows_of(s_all, h_rows[:, 0], device))
        planner.train()
        return float(v)

    def held_cos() -> tuple[float, float, float]:
        planner.eval()
        with torch.no_grad():
            z0, fut = z_all[h_rows[:, 0]].to(device), z_all[h_rows[:, 1:]].to(device)
            plan = planner(z0, q_all[h_rows[:, 0]].to(device),   # sampled as deployed
                           cfg.planner.noise_scale * h_noise.to(device))
            cos = torch.nn.functional.cosine_similarity(plan.flatten(2), fut.flatten(2), -1)
            copy = torch.nn.functional.cosine_similarity(
                z0[:, None].expand_as(fut).flatten(2), fut.flatten(2), -1)
        planner.train()
        return float(cos[:, 0].mean()), float(cos[:, -1].mean()), float(copy[:, -1].mean())

    def held_state() -> list[float]:
        return [] if s_all is None else state_rmse(planner, z_all, s_all, h_rows[:, 0])

    inv = old.inverse_dynamics.to(device).eval().requires_grad_(False)

    def planner_loss(rows: torch.Tensor, z: torch.Tensor, noise: torch.Tensor,
                     tau: torch.Tensor) -> torch.Tensor:
        """The planner's loss, plus `planner_action_weight` x the frozen inverse dynamics'
        error on the planner's estimate of the first future frame."""
        q0 = q_all[rows[:, 0]].to(device)
        acts, valid, labels = window_actions(rows)
        state = _rows_of(s_all, rows[:, 0], device)
        if tc.planner_action_weight == 0:
            return planner.loss(z[:, 0], q0, z[:, 1:], noise, tau, acts, valid, labels, state)
        fm, first = planner.loss_and_first(z[:, 0], q0, z[:, 1:], noise, tau, acts, valid,
                                           labels, state)
        m = valid[:, 0]   # has_action of the first frame (its next frame is in its sequence)
        err = ((inv(z[:, 0], first, q0) - acts[:, 0]) ** 2).mean(-1)
        return fm + tc.planner_action_weight * (err * m).sum() / m.sum().clamp(min=1)

    losses: list[float] = []
    with _bar(steps_total, step, 'planner', progress) as bar:
        while step < steps_total and not track.should_stop:
            if stop_after is not None and step - step0 >= stop_after:
                save()
                return {}
            rows = win[torch.randint(len(win), (bsz,), generator=gen)]
            z = z_all[rows].to(device)
            noise = torch.randn(z[:, 1:].shape, generator=gen).to(device)
            tau = torch.rand(len(rows), generator=gen).to(device)
            losses.append(optimizer_step(opt, planner_loss(rows, z, noise, tau), planner, lr,
                                         step, steps_total))
            step += 1
            bar.update(1)
            bar.set_postfix(fm=f'{losses[-1]:.4f}')
            if step % tc.checkpoint_every == 0:
                save()
            if step % tc.eval_every == 0 or step == steps_total:
                flow = held_flow()
                track.add(step, float(np.mean(losses[-tc.eval_every:])), {'total': flow})
                c1, ch, cc = held_cos()
                log(f'step {step}: flow loss {np.mean(losses[-50:]):.4f}, held-out flow '
                    f'{flow:.4f}, planner cos@1 {c1:.3f} cos@H {ch:.3f} (copy@H {cc:.3f})'
                    + (f', state RMSE {held_state()}' if s_all is not None else ''))
    track.restore_best()
    save()
    section = {
        'steps': step, 'batch': bsz, 'lr': lr, 'wall_s': round(elapsed + time.time() - t_start, 1),
        'threads': tc.threads, 'device': str(device), 'torch': torch.__version__,
        'params': sum(p.numel() for p in planner.parameters()),
        'flow_loss_first_last': _ends(losses), 'best_step': track.best_step,
        **data_summary(ds, cfg, train_seqs, held_seqs),
        'windows': int(len(win)), 'max_perturbation_rad': tc.planner_max_perturbation_rad}
    if s_all is not None:
        section['state_rmse'] = dict(zip(ds.task_state_names, held_state()))
    # a new planner has a new head: what a former `--only prior` recorded no longer holds
    return write_planner(out, cfg, old, planner, ds, held, track, {'planner_training': section},
                         drop=('prior_training', PRIOR_TRACK))


def data_summary(ds: Dataset, cfg: ModelConfig, train_seqs: np.ndarray, held_seqs: np.ndarray
                 ) -> dict[str, Any]:
    """The data a retraining stage read, for its config.json section."""
    return {'data_dir': str(cfg.data.data_dir), 'episodes': len(ds.episode_names),
            'train_episodes': int(len(set(ds.seq_episode[train_seqs].tolist()))),
            'heldout_episodes': int(len(set(ds.seq_episode[held_seqs].tolist())))}


def write_planner(out: Path, cfg: ModelConfig, old: ModelSet, planner: nn.Module, ds: Dataset,
                  held: torch.Tensor, track: HeldoutTracker, sections: dict[str, Any],
                  drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """Write `old` with the retrained `planner` to `out`: held-out metrics and heldout.npz
    recomputed, `sections` and the stage's curve added to config.json (the sections and
    curves named in `drop` removed), curves and card."""
    tc = cfg.train
    planner.cpu().eval()
    ms = ModelSet(cfg=cfg, norm=old.norm, info={}, autoencoder=old.autoencoder.cpu(),
                  planner=planner, world_model=old.world_model,  # type: ignore[arg-type]
                  inverse_dynamics=old.inverse_dynamics)
    held_rows = held.numpy()
    images = ds.images[held_rows]
    q_raw = ds.q[held_rows]
    a_raw = ds.action[held_rows[:, :-1]]
    metrics = evaluate_windows(ms, images, q_raw, a_raw, seed=tc.seed)
    pick = np.random.default_rng(tc.seed).choice(len(held_rows), size=min(
        tc.heldout_windows, len(held_rows)), replace=False)
    pick.sort()
    np.savez_compressed(out / 'heldout.npz', images=images[pick], q=q_raw[pick],
                        action=a_raw[pick])
    small = evaluate_windows(ms, images[pick], q_raw[pick], a_raw[pick], seed=tc.seed)
    info = {k: v for k, v in old.info.items() if k != 'params' and k not in drop}
    info.update(sections)
    info['training'] = {**info['training'], 'curves': {
        **{k: v for k, v in info['training'].get('curves', {}).items()
           if k != track.name and k not in drop}, track.name: track.summary()}}
    info['metrics_heldout'] = metrics
    info['metrics_heldout_npz'] = small
    save_model_set(out, cfg, ms.modules(), old.norm, info)
    plot_curves(info['training']['curves'], out / 'loss_curves.png')
    write_model_card(out, cfg, info)
    return info


PRIOR_TRACK = 'action prior (--only prior)'   # the curve of `--only prior` (train_prior.py)


def _heldout_draw(z_all: torch.Tensor, windows: torch.Tensor, n: int, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed held-out evaluation batch: up to `n` of `windows` (W, H + 1), their flow noise
    (like the future latents) and flow times, all from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    rows = windows[torch.randperm(len(windows), generator=gen)[:n]]
    noise = torch.randn(z_all[rows][:, 1:].shape, generator=gen)
    return rows, noise, torch.rand(len(rows), generator=gen)


def _state_labels(ds: Dataset, cfg: ModelConfig) -> torch.Tensor | None:
    """(N, S) raw task-state labels for `planner.state_dim`, None without a state head; a clear
    error when the data has none or another number of them."""
    want = cfg.planner.state_dim
    if not want:
        return None
    got = ds.task_state.shape[1]
    if got != want:
        raise ValueError(f'planner.state_dim is {want} but the data records {got} task-state '
                         f'values {list(ds.task_state_names)} on {cfg.data.state_topic}; '
                         'collect the episodes again with this vidplan collect, or set '
                         f'planner.state_dim: {got}')
    return torch.as_tensor(ds.task_state, dtype=torch.float32)


def _rows_of(values: torch.Tensor | None, rows: torch.Tensor, device: torch.device
             ) -> torch.Tensor | None:
    return None if values is None else values[rows].to(device)


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module,
                   base_lr: float, step: int, total: int) -> float:
    """Step `step` of `total` of `opt` on `loss` (learning rate by `_set_lr`), the gradient of
    `module` clipped to norm 1; returns the loss."""
    _set_lr(opt, base_lr, step, total)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(module.parameters(), 1.0)
    opt.step()
    return loss.item()


def encode_frames(ae: nn.Module, ds: Dataset, device: torch.device) -> torch.Tensor:
    """Every frame of `ds` through the frozen autoencoder `ae` on `device`, in batches of 256:
    the normalised latents (N, V, C, h, w) on the CPU."""
    with torch.no_grad():
        return torch.cat([ae.encode(_images(ds, np.arange(i, min(i + 256, len(ds.q))))
                                    .to(device)).cpu() for i in range(0, len(ds.q), 256)])


def _window_actions(rows: torch.Tensor, has: torch.Tensor, a_all: torch.Tensor,
                    l_all: torch.Tensor, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised executed actions (B, H, n) of windows (B, H + 1) of frame indices, their
    mask (B, H): 1 where a step has a recorded action (`has` (N,)) inside its sequence, and
    the prior head's targets (B, H, n) from `l_all` (N, n)."""
    valid = has[rows[:, :-1]] * (rows[:, 1:] != rows[:, :-1]).float()
    return a_all[rows[:, :-1]].to(device), valid.to(device), l_all[rows[:, :-1]].to(device)


def state_rmse(planner: nn.Module, z_all: torch.Tensor, s_all: torch.Tensor,
               frames: torch.Tensor) -> list[float]:
    """RMSE of the planner's state-head estimate per task-state value (label units) on
    `frames` (M,) of `z_all` (N, V, C, h, w) against the labels `s_all` (N, S)."""
    head = planner.prior
    was = head.training
    head.eval()
    with torch.no_grad():
        dev = head.state_mean.device
        est = head.estimate(z_all[frames].to(dev)).cpu()
        est = est * head.state_std.cpu() + head.state_mean.cpu()
    head.train(was)
    err = (est - s_all[frames]) ** 2
    ok = ~torch.isnan(err).any(dim=1)
    return [round(float(v), 4) for v in err[ok].mean(0).sqrt()]


def _prior_labels(ds: Dataset, tc: TrainConfig) -> np.ndarray:
    """(N, n) rad: what the planner's action-prior head imitates (`train.prior_target`)."""
    return ds.label_action if tc.prior_target == 'expert' else ds.action


def _unperturbed(ds: Dataset, win: np.ndarray, max_rad: float, log: Any) -> np.ndarray:
    """The windows (W, H + 1) whose commands up to the last frame stayed within `max_rad` of
    the expert's (all of them when `max_rad` is 0)."""
    if max_rad <= 0:
        return win
    keep = ds.perturbation[win[:, :-1]].max(axis=1) <= max_rad
    if not keep.any():
        raise ValueError(f'no training window has its commands within planner_max_perturbation'
                         f"_rad = {max_rad} rad of the expert's; raise it (0 keeps all)")
    log(f'planner windows: {int(keep.sum())} of {len(win)} within {max_rad} rad of the '
        "expert's commands")
    return win[keep]


def _split_like(ds: Dataset, heldout_names: list[str], out: Path
                ) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) sequences: held out = the episodes named in `heldout_names` (the
    model set's, which its autoencoder never trained on); every other episode trains."""
    names = set(heldout_names)
    held_eps = np.array([n in names for n in ds.episode_names], bool)
    if not held_eps.any():
        raise ValueError(f'none of the held-out episodes of {out}/config.json '
                         f'({", ".join(sorted(names)[:4])}, ...) is in {ds.report.data_dir}; '
                         'planner retraining holds them out again, so the data must include '
                         'some of them')
    held = held_eps[ds.seq_episode]
    seqs = np.arange(ds.num_sequences)
    return seqs[~held], seqs[held]


def _set_lr(opt: torch.optim.Optimizer, base: float, step: int, total: int) -> None:
    """Linear warm-up over 5% of the steps, then cosine decay to 5% of `base`."""
    warm = max(1, total // 20)
    frac = min(1.0, (step + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * step / total)))
    for g in opt.param_groups:
        g['lr'] = base * frac


def _ends(xs: list[float], k: int = 50) -> list[float]:
    if not xs:
        return []
    return [round(float(np.mean(xs[:k])), 6), round(float(np.mean(xs[-k:])), 6)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='vidplan train', description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, help='model params YAML (config/models/...)')
    p.add_argument('--data', default=None, help='directory of episode bags (data.data_dir)')
    p.add_argument('--out', default=None, help='model directory (default models/<name>)')
    p.add_argument('--work-dir', default=None,
                   help='checkpoints (default build/train/<name>); reruns resume from it')
    p.add_argument('--fresh', action='store_true', help='ignore an existing checkpoint')
    p.add_argument('-p', '--param', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config param, e.g. -p train.dyn_steps=100')
    p.add_argument('--only', choices=['planner', 'prior'], default=None,
                   help='retrain only this model of the model set in --out (keeps the others): '
                   "'planner', or 'prior', the planner's action-prior head alone")
    p.add_argument('--no-progress', action='store_true')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import yaml
    overrides = {k: yaml.safe_load(v) for k, _, v in (s.partition('=') for s in args.param)}
    if args.data:
        overrides['data.data_dir'] = args.data
    cfg = load_config(ModelConfig, args.config, overrides=overrides)
    out = Path(args.out or f'models/{cfg.name}')
    work = Path(args.work_dir or f'build/train/{cfg.name}')
    ckpt = work / (f'checkpoint_{args.only}.pt' if args.only else 'checkpoint.pt')
    if args.fresh and ckpt.exists():
        ckpt.unlink()
    from vidplan_ros.nn.train_prior import train_prior
    fn = {'planner': train_planner, 'prior': train_prior}.get(args.only or '', train)
    info = fn(cfg, out, work, progress=not args.no_progress,
              log=lambda s: print(s, file=sys.stderr))
    if info:
        m = info['metrics_heldout']
        print(f'wrote {out}: PSNR {m["recon_psnr_db"]:.2f} dB, planner cos@H '
              f'{m["planner_cosine"][-1]:.3f} (copy {m["planner_cosine_copy"][-1]:.3f}), '
              f'ID RMSE {m["inverse_dynamics_rmse_rad"]:.4f} rad, '
              f'{info.get(f"{args.only}_training", info["training"])["wall_s"]:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
