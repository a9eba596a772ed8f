"""Train the planner's state head + policy alone (the flow frozen), longer and at batch 256.

    python train_head.py models/franka_push /tmp/fp_head_long 8000   # /work/data/push_all

A measurement, not yet a `vidplan train` stage: results/eval/state_head/README.md."""
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vidplan_ros.data.dataset import build_dataset
from vidplan_ros.nn.model_set import load_model_set
from vidplan_ros.nn.train import _images, _split_like, _windows

src, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
teacher_cm = float(sys.argv[4]) if len(sys.argv) > 4 else -1.0
torch.set_num_threads(2)
torch.manual_seed(0)
ms = load_model_set(src)
cfg = ms.cfg
ds = build_dataset(cfg.data.__class__(**{**cfg.data.__dict__, 'data_dir': '/work/data/push_all'}))
tr_seqs, held_seqs = _split_like(ds, ms.info['dataset']['heldout_episodes'], Path(src))
ae = ms.autoencoder.eval()
t0 = time.time()
with torch.no_grad():
    z_all = torch.cat([ae.encode(_images(ds, np.arange(i, min(i + 512, len(ds.q)))))
                       for i in range(0, len(ds.q), 512)])
print('encoded', time.time() - t0, flush=True)
q_all = ms.normalize_q(torch.as_tensor(ds.q))
a_all = ms.normalize_action(torch.as_tensor(ds.action))
s_all = torch.as_tensor(ds.task_state)
H = cfg.planner.horizon
win = torch.as_tensor(_windows(ds, tr_seqs, H, full=False))
held = torch.as_tensor(_windows(ds, held_seqs, H, full=True))
has = torch.as_tensor(ds.has_action, dtype=torch.float32)
head = ms.planner.prior
head.train()
opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-4)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
mu, sd = head.state_mean, head.state_std
noise_n = teacher_cm / 100 / sd


def batch_loss(rows):
    z0, q0 = z_all[rows[:, 0]], q_all[rows[:, 0]]
    acts = a_all[rows[:, :-1]]
    valid = has[rows[:, :-1]] * (rows[:, 1:] != rows[:, :-1]).float()
    s = (s_all[rows[:, 0]] - mu) / sd
    est = head.estimate(z0)
    s_loss = ((est - s) ** 2).mean()
    if teacher_cm >= 0:
        inp = s + torch.randn_like(s) * noise_n
    else:
        inp = est.detach()
    pred = head.policy(q0, inp)
    m = valid[..., None]
    a_loss = (((pred - acts) ** 2) * m).sum() / (m.sum() * acts.shape[-1])
    return s_loss, a_loss


for step in range(steps):
    rows = win[torch.randint(len(win), (256,))]
    s_loss, a_loss = batch_loss(rows)
    loss = s_loss + a_loss
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    if step % 1000 == 0 or step == steps - 1:
        head.eval()
        with torch.no_grad():
            hr = held[:4000]
            est = head.estimate(z_all[hr[:, 0]]) * sd + mu
            rmse = ((est - s_all[hr[:, 0]]) ** 2).mean(0).sqrt()
            hs, ha = batch_loss(hr)
        head.train()
        print(step, f'train s {s_loss.item():.3f} a {a_loss.item():.3f} held s {hs.item():.3f} '
              f'a {ha.item():.3f}', [round(float(v), 4) for v in rmse], flush=True)
shutil.copytree(src, out, dirs_exist_ok=True)
torch.save(ms.planner.state_dict(), f'{out}/planner.pt')
print('saved', out, time.time() - t0)
