"""Variants of the push head trained alone (the flow frozen): what its policy reads while
training (its estimate, or the true state + noise), what it imitates, and its MLP's shape.

    python head_exp.py /tmp/fp_prior /tmp/e1_teacher1 --teacher-cm 1.0       # 22/30
    python head_exp.py /tmp/fp_prior /tmp/e2_wide --width 512 --layers 3      # 26/30

(/tmp/fp_prior: models/franka_push after `--only prior` at 2 x 256; data /work/data/push_all.)
A measurement: the committed set was made by `vidplan train --only prior` (README.md)."""
import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from vidplan_ros.data.dataset import build_dataset
from vidplan_ros.nn.model_set import load_model_set
from vidplan_ros.nn.planner import _ActionPrior
from vidplan_ros.nn.train import _images, _split_like, _windows

ap = argparse.ArgumentParser()
ap.add_argument('src')
ap.add_argument('out')
ap.add_argument('--data', default='/work/data/push_all')
ap.add_argument('--steps', type=int, default=8000)
ap.add_argument('--batch', type=int, default=256)
ap.add_argument('--teacher-cm', type=float, default=-1,
                help='>= 0: the policy reads the true state + this much noise (cm)')
ap.add_argument('--target', default='executed', choices=['executed', 'expert'])
ap.add_argument('--width', type=int, default=0, help='a fresh policy MLP of this width ...')
ap.add_argument('--layers', type=int, default=0, help='... and this many hidden layers')
a = ap.parse_args()
torch.set_num_threads(2)
torch.manual_seed(0)
ms = load_model_set(a.src)
cfg = ms.cfg
ds = build_dataset(cfg.data.__class__(**{**cfg.data.__dict__, 'data_dir': a.data}))
tr, he = _split_like(ds, ms.info['dataset']['heldout_episodes'], Path(a.src))
t0 = time.time()
with torch.no_grad():
    z_all = torch.cat([ms.autoencoder.encode(_images(ds, np.arange(i, min(i + 512, len(ds.q)))))
                       for i in range(0, len(ds.q), 512)])
q_all = ms.normalize_q(torch.as_tensor(ds.q))
labels = ds.label_action if a.target == 'expert' else ds.action
a_all = ms.normalize_action(torch.as_tensor(labels, dtype=torch.float32))
s_all = torch.as_tensor(ds.task_state)
H = cfg.planner.horizon
win = torch.as_tensor(_windows(ds, tr, H, full=False))
held = torch.as_tensor(_windows(ds, he, H, full=True))
has = torch.as_tensor(ds.has_action, dtype=torch.float32)
head = ms.planner.prior
if a.layers:
    v, c, h, w = cfg.latent_shape
    new = _ActionPrior(v, c, h, w, cfg.action_dim, H, cfg.planner.d_model,
                       cfg.planner.state_dim, a.width or cfg.planner.policy_hidden, a.layers)
    new.load_state_dict({k: t for k, t in head.state_dict().items()
                         if not k.startswith('head.')}, strict=False)
    ms.planner.prior = head = new
head.train()
opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-4)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.steps)
mu, sd = head.state_mean, head.state_std
noise_n = a.teacher_cm / 100 / sd


def loss_of(rows):
    z0, q0 = z_all[rows[:, 0]], q_all[rows[:, 0]]
    acts = a_all[rows[:, :-1]]
    valid = has[rows[:, :-1]] * (rows[:, 1:] != rows[:, :-1]).float()
    s = (s_all[rows[:, 0]] - mu) / sd
    est = head.estimate(z0)
    inp = s + torch.randn_like(s) * noise_n if a.teacher_cm >= 0 else est.detach()
    pred = head.policy(q0, inp)
    m = valid[..., None]
    return ((est - s) ** 2).mean(), (((pred - acts) ** 2) * m).sum() / (m.sum() * acts.shape[-1])


for step in range(a.steps):
    s_loss, a_loss = loss_of(win[torch.randint(len(win), (a.batch,))])
    opt.zero_grad()
    (s_loss + a_loss).backward()
    opt.step()
    sched.step()
    if step % 1000 == 0 or step == a.steps - 1:
        head.eval()
        with torch.no_grad():
            hs, ha = loss_of(held[:4000])
        head.train()
        print(step, f'train s {s_loss.item():.3f} a {a_loss.item():.3f} held s {hs.item():.3f} '
              f'a {ha.item():.3f}', flush=True)
shutil.copytree(a.src, a.out, dirs_exist_ok=True)
torch.save(ms.planner.state_dict(), f'{a.out}/planner.pt')
if a.layers:
    doc = json.loads(Path(a.out, 'config.json').read_text())
    doc['params'].update({'planner.policy_width': a.width, 'planner.policy_layers': a.layers})
    Path(a.out, 'config.json').write_text(json.dumps(doc, indent=1))
print('saved', a.out, time.time() - t0)
