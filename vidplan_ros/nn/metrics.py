"""Held-out metrics of a model set on windows of H + 1 consecutive plan-rate frames.

Windows (W of them): images (W, H+1, V, S, S, 3) uint8, q (W, H+1, n) rad, action (W, H, n)
rad (a_t for t = 0..H-1). Metrics:

    recon_psnr_db                  autoencoder reconstruction PSNR over every frame
    planner_cosine[k]              cosine(planned z_{t+k}, encoded true z_{t+k}), k = 1..H, in
                                   the normalised latent space, noise from `seed`
                                   scaled by planner.noise_scale (as deployed)
    planner_cosine_copy[k]         the same for the trivial plan z_{t+k} = z_t (baseline)
    world_model_cosine[k], _mse[k] k-step open-loop rollout with the true actions vs the
                                   encoded true latents
    world_model_q_rmse_rad[k]      the rollout's joint positions vs the true ones
    inverse_dynamics_rmse_rad      g(z_t, z_{t+1}, q_t) vs the true a_t, over all t
    inverse_dynamics_zero_rmse_rad the same for a = 0 (baseline)
    plan_action_cosine             cosine(g(z_t, planned z_{t+1}, q_t), a_t): does the plan
                                   move the arm the way the recorded (executed) command did,
                                   the expert's target plus any DART noise (the planner's share
                                   of a closed-loop failure, measured without the sim)
    plan_action_cosine_true        the same with the encoded true z_{t+1} (the ceiling)
    plan_action_cosine_copy        the same with z_{t+1} = z_t: what g infers from the
                                   current state alone (a plan no better is uninformative)
"""

from __future__ import annotations

import json

from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ['evaluate_windows']


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.flatten(2), b.flatten(2), dim=-1)


@torch.no_grad()
def evaluate_windows(ms: Any, images: np.ndarray, q: np.ndarray, action: np.ndarray,
                     seed: int = 0, batch: int = 64) -> dict[str, Any]:
    """Metrics (module docstring) of model set `ms` (a `ModelSet`) on the windows."""
    w, t1 = q.shape[:2]
    horizon = t1 - 1
    # frames go to float a batch at a time: a model card's thousands of held-out windows
    # would take several GB as one float tensor (and did run a 24 GB machine out of memory)
    flat = images.reshape(w * t1, *images.shape[2:])     # (W*(H+1), V, S, S, 3) uint8
    sq_err, n_px, z = 0.0, 0, []
    for i in range(0, len(flat), batch):
        x = torch.as_tensor(flat[i:i + batch]).permute(0, 1, 4, 2, 3).float() / 255.0
        sq_err += float(((ms.autoencoder(x) - x) ** 2).double().sum())
        n_px += x.numel()
        z.append(ms.autoencoder.encode(x))
    psnr = float(10 * np.log10(1.0 / max(sq_err / n_px, 1e-12)))
    z_all = torch.cat(z).unflatten(0, (w, t1))            # (W, H+1, V, C, h, w)
    qn = ms.normalize_q(torch.as_tensor(q, dtype=torch.float32))
    an = ms.normalize_action(torch.as_tensor(action, dtype=torch.float32))
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((w, horizon, *z_all.shape[2:]), generator=gen)
    noise = noise * ms.cfg.planner.noise_scale            # as the pipeline samples
    plan = ms.planner(z_all[:, 0], qn[:, 0], noise)
    true = z_all[:, 1:]
    z_roll, q_roll = ms.world_model.rollout(z_all[:, 0], qn[:, 0], an)
    q_roll_rad = ms.denormalize_q(q_roll)
    q_true = torch.as_tensor(q[:, 1:], dtype=torch.float32)
    a_pred = ms.inverse_dynamics(z_all[:, :-1].flatten(0, 1), z_all[:, 1:].flatten(0, 1),
                                 qn[:, :-1].flatten(0, 1))
    a_rad = ms.denormalize_action(a_pred)
    a_true = torch.as_tensor(action, dtype=torch.float32).flatten(0, 1)

    a0 = torch.as_tensor(action[:, 0], dtype=torch.float32)

    def action_cos(z1: torch.Tensor) -> float:
        a = ms.denormalize_action(ms.inverse_dynamics(z_all[:, 0], z1, qn[:, 0]))
        return round(float(torch.nn.functional.cosine_similarity(a, a0, dim=-1).mean()), 5)

    def per_step(x: torch.Tensor) -> list[float]:
        return [round(float(v), 5) for v in x.mean(0)]

    return {
        'windows': int(w),
        'recon_psnr_db': round(psnr, 4),
        'planner_cosine': per_step(_cos(plan, true)),
        'planner_cosine_copy': per_step(_cos(z_all[:, :1].expand_as(true), true)),
        'world_model_cosine': per_step(_cos(z_roll, true)),
        'world_model_mse': per_step(((z_roll - true) ** 2).flatten(2).mean(-1)),
        'world_model_q_rmse_rad': per_step(((q_roll_rad - q_true) ** 2).mean(-1).sqrt()),
        'inverse_dynamics_rmse_rad': round(float(((a_rad - a_true) ** 2).mean().sqrt()), 6),
        'inverse_dynamics_zero_rmse_rad': round(float((a_true ** 2).mean().sqrt()), 6),
        'plan_action_cosine': action_cos(plan[:, 0]),
        'plan_action_cosine_true': action_cos(true[:, 0]),
        'plan_action_cosine_copy': action_cos(z_all[:, 0]),
    }


def _fmt(xs: list[float]) -> str:
    return ' '.join(f'{x:.3f}' for x in xs)


def collection_summary(data_dir: str | Path) -> dict[str, Any]:
    """How the episodes under `data_dir` were recorded (their `episode.json`s, written by
    `vidplan collect`): count, expert successes, policy, cameras, image size, noise settings."""
    metas = []
    for f in sorted(Path(data_dir).glob('*/episode.json')):
        try:
            metas.append(json.loads(f.read_text()).get('metadata', {}))
        except (OSError, ValueError):
            continue
    if not metas:
        return {}
    first = metas[0]
    sim = first.get('sim_config', {})
    return {'episodes': len(metas), 'successes': sum(bool(m.get('success')) for m in metas),
            'policy': first.get('policy', ''), 'cameras': first.get('cameras', []),
            'image_size': [sim.get('image_width'), sim.get('image_height')],
            'seeds': [min(m.get('seed', 0) for m in metas), max(m.get('seed', 0) for m in metas)],
            'noise': first.get('noise', {}),
            'sim_s': round(sum(float(m.get('duration_s', 0.0)) for m in metas), 1)}


def _collection_lines(c: dict[str, Any]) -> list[str]:
    if not c:
        return []
    n = c.get('noise') or {}
    noise = (f"start pose +-{n.get('start_rad', 0):g} rad, command noise {n.get('noise_rad', 0):g}"
             f" rad (correlation {n.get('noise_corr_s', 0):g} s), detours with probability "
             f"{n.get('detour_prob', 0):g} up to {n.get('detour_rad', 0):g} rad") if n else 'none'
    return [f"- recorded by `vidplan collect` ({c['policy']}, seeds {c['seeds'][0]}-"
            f"{c['seeds'][1]}, {c['image_size'][0]}x{c['image_size'][1]} px, cameras "
            f"{c['cameras']}, {c['sim_s']:.0f} s of sim time): the expert succeeded in "
            f"{c['successes']} of {c['episodes']} episodes; recovery noise (DART, "
            f'sim/perturb.py): {noise}']


def write_model_card(out: Path, cfg: Any, info: dict[str, Any]) -> None:
    """README.md model card of a model set directory from its config.json `info`."""
    d, t, m, s = (info['dataset'], info['training'], info['metrics_heldout'],
                  info['metrics_heldout_npz'])
    v, c, h, w = cfg.latent_shape
    pt = info.get('planner_training')
    pr = info.get('prior_training')
    rmse = (pr or pt or {}).get('state_rmse') or {}
    lines = [
        f'# {cfg.name}: latent video planner, world model, inverse dynamics ({cfg.task})', '',
        'Trained by `vidplan train` (vidplan_ros/nn/train.py) on expert sim episodes.', '',
        '## Command', '', '```',
        f'vidplan train --config config/models/{cfg.name}.yaml --data {d["data_dir"]} '
        f'--out models/{cfg.name}', *([
            f'vidplan train --config config/models/{cfg.name}.yaml --data '
            f'{pt.get("data_dir", d["data_dir"])} --out models/{cfg.name} --only planner'
            '   # then: retrain only the planner']
            if pt else []), *([
            f'vidplan train --config config/models/{cfg.name}.yaml --data '
            f'{pr["data_dir"]} --out models/{cfg.name} --only prior'
            '   # then: the action-prior head alone'] if pr else []), '```', '',
        '## Model', '',
        f'- robot `{cfg.data.robot}`, {cfg.views} views {list(cfg.data.cameras)} '
        f'{cfg.image_size}x{cfg.image_size} rgb, plan period {cfg.data.plan_dt_s} s',
        f'- latent per view C x h x w = {c} x {h} x {w} (normalised per channel)',
        f'- proprio / action dim {cfg.action_dim}: arm joint positions; action = '
        f'q_target(t + {cfg.data.plan_dt_s} s) - q(t) in rad; both normalised '
        '(norm_stats.json)',
        f'- planner: rectified flow over H = {cfg.planner.horizon} future latents as the '
        'residual from the current latent (scaled per step and channel); conv denoiser on the '
        f'{h}x{w} grid ({cfg.planner.horizon}*{v}*{c} stacked channels + the current latent), '
        f'{cfg.planner.layers} FiLM residual blocks x {cfg.planner.d_model} channels '
        '(flow time, q, task) and one cross-attention layer to [task, q, time] tokens, '
        f'K = {cfg.planner.sample_steps} Euler steps'
        + (', self-attention over the grid' if cfg.planner.self_attention else '')
        + (', a global state token' if cfg.planner.global_state else '')
        + (', conditioned on an action-prior head' if cfg.planner.action_prior else '')
        + (f' that first estimates the task state ({cfg.planner.state_dim} values from '
           f'{cfg.data.state_topic}; held-out RMSE '
           + ', '.join(f'{k} {v:g}' for k, v in rmse.items())
           + ') and acts on that and the joints alone through an MLP of '
           f'{cfg.planner.policy_layers} x {cfg.planner.policy_hidden}'
           if cfg.planner.state_dim and pt else '')
        + (f', {pr["planner_params"]} parameters' if pr
           else f', {pt["params"]} parameters' if pt else ''),
        '- files: autoencoder.pt, planner.pt, world_model.pt, inverse_dynamics.pt (state '
        'dicts), config.json (config params, data, training, metrics), norm_stats.json', '',
        '## Data', '',
        f'- {d["episodes"]} episodes ({d["train_episodes"]} train, '
        f'{len(d["heldout_episodes"])} held out), {d["sequences"]} sequences, {d["frames"]} '
        f'frames at {d["plan_rate_hz"]:g} Hz from `{d["data_dir"]}`',
        f'- topics: {", ".join(d["topics"])}',
        f'- held-out episodes: {", ".join(d["heldout_episodes"])}',
        *_collection_lines(info.get('collection') or {}), '',
        '## Training', '',
        f'- autoencoder {t["autoencoder_steps"]} steps, then planner + world model + inverse '
        f'dynamics {t["dynamics_steps"]} steps; seed {cfg.train.seed}',
        f'- wall time {t["wall_s"]:.0f} s on {t["device"]} ({t["threads"]} threads), '
        f'torch {t["torch"]}',
        f'- autoencoder loss (first/last 50 steps) {t["autoencoder_loss_first_last"]}; '
        f'flow / world-model / inverse-dynamics loss {t["dynamics_loss_first_last"]}',
        *(['- planner retrained alone (`--only planner`) on the frozen latents'
           + (f' of {pt["train_episodes"]} training episodes from `{pt["data_dir"]}` '
              f'({pt["heldout_episodes"]} of the held-out episodes above held out; best '
              f'held-out flow loss at step {pt["best_step"]})' if 'data_dir' in pt else '')
           + f': {pt["steps"]} steps, batch {pt["batch"]}, lr {pt["lr"]:g}, flow loss (first/last '
           f'50 steps) {pt["flow_loss_first_last"]}, wall time {pt["wall_s"]:.0f} s on '
           f'{pt["device"]} ({pt["threads"]} threads); the autoencoder, world model and '
           'inverse dynamics above are unchanged'] if pt else []),
        *([f'- then its action-prior head alone (`--only prior`, the flow frozen) on '
           f'{pr["train_episodes"]} training episodes from `{pr["data_dir"]}`: {pr["steps"]} '
           f'steps, batch {pr["batch"]}, lr {pr["lr"]:g}, head loss (first/last 50 steps) '
           f'{pr["loss_first_last"]}, best held-out head loss at step {pr["best_step"]}, wall '
           f'time {pr["wall_s"]:.0f} s ({pr["threads"]} threads)'] if pr else []), '',
        f'## Held-out metrics ({m["windows"]} windows of H + 1 frames)', '',
        '| metric | value |', '|---|---|',
        f'| reconstruction PSNR | {m["recon_psnr_db"]:.2f} dB |',
        f'| planner latent cosine, k = 1..H | {_fmt(m["planner_cosine"])} |',
        f'| baseline: copy current latent | {_fmt(m["planner_cosine_copy"])} |',
        f'| world model open-loop cosine, k = 1..H | {_fmt(m["world_model_cosine"])} |',
        f'| world model open-loop latent MSE | {_fmt(m["world_model_mse"])} |',
        f'| world model open-loop q RMSE (rad) | {_fmt(m["world_model_q_rmse_rad"])} |',
        f'| inverse dynamics action RMSE | {m["inverse_dynamics_rmse_rad"]:.4f} rad |',
        f'| baseline: zero action | {m["inverse_dynamics_zero_rmse_rad"]:.4f} rad |',
        *_plan_action_rows(m), '',
        f'`heldout.npz` holds {s["windows"]} of these windows; on them (the numbers '
        'test/nn/test_committed_models.py reproduces, `metrics_heldout_npz` in config.json): '
        f'PSNR {s["recon_psnr_db"]:.2f} dB, planner cosine at H '
        f'{s["planner_cosine"][-1]:.3f}, world-model cosine at H '
        f'{s["world_model_cosine"][-1]:.3f}, inverse dynamics RMSE '
        f'{s["inverse_dynamics_rmse_rad"]:.4f} rad.', '']
    lines += _curves_section(t.get('curves')) + _framing_section(info.get('framing'), cfg)
    lines += _calibration_section(cfg, info.get('calibration'))
    (out / 'README.md').write_text('\n'.join(lines))


def _plan_action_rows(m: dict[str, Any]) -> list[str]:
    """Card rows: how well the plan's first step carries the recorded action (older cards
    were written before this metric)."""
    if 'plan_action_cosine' not in m:
        return []
    return [f'| plan -> action: cosine of g(z_t, planned z_t+1) to the recorded a_t | '
            f'{m["plan_action_cosine"]:.3f} |',
            f'| the same with the true z_t+1 (ceiling) | {m["plan_action_cosine_true"]:.3f} |',
            f'| the same with z_t+1 = z_t (no plan) | {m["plan_action_cosine_copy"]:.3f} |']


def _calibration_section(cfg: Any, cal: dict[str, Any] | None) -> list[str]:
    """The closed-loop calibration (`inverse_dynamics.step_gain`) and how it was measured
    (`calibration` in config.json: `how`, the command and seeds, and `rows`, gain -> result)."""
    lines = ['## Closed-loop calibration', '',
             f"Inverse dynamics' grounded step is scaled by `inverse_dynamics.step_gain` = "
             f'{cfg.inverse_dynamics.step_gain:g}.']
    if not cal:
        return lines + ['Not swept: the default.', '']
    lines += [cal.get('how', ''), '', '| step gain | result |', '|---|---|']
    lines += [f'| {g} | {r} |' for g, r in cal.get('rows', {}).items()]
    return lines + ['']


def _curves_section(curves: dict[str, Any] | None) -> list[str]:
    if not curves:
        return []
    out = ['## Held-out loss curves', '', '![loss curves](loss_curves.png)', '',
           '| stage | evaluations | best held-out | at step | last step |',
           '|---|---|---|---|---|']
    for name, c in curves.items():
        pts = c.get('points') or []
        if pts:
            out.append(f'| {name} | {len(pts)} | {c["best_heldout"]} | {c["best_step"]} | '
                       f'{pts[-1]["step"]} |')
    return out + ['', 'Each stage keeps its weights of the best held-out evaluation.', '']


def _framing_section(rows: list[dict[str, Any]] | None, cfg: Any) -> list[str]:
    if not rows or 'error' in rows[0]:
        return []
    out = [f'## Framing: pixels per centimetre at {cfg.image_size} px', '',
           '(`python -m vidplan_ros.sim.framing`, 20 seeds; the tip at the ready pose)', '',
           '| camera | object | px/cm (mean) | min | in view |', '|---|---|---|---|---|']
    out += [f'| {r["camera"]} | {r["point"]} | {r["px_per_cm_mean"]:.2f} | '
            f'{r["px_per_cm_min"]:.2f} | {100 * r["visible_fraction"]:.0f}% |' for r in rows]
    return out + ['']
