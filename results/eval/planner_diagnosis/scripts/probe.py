"""Probe: how well do the model set's latents locate the cube and the goal? (cm error)

Fits a small MLP from the autoencoder latents of each sequence's first frame to the reset
cube / goal xy, on the model set's train split, and reports the error on its held-out split.

Usage: probe.py MODEL_CONFIG DATA_DIR MODEL_DIR
  e.g. probe.py config/models/franka_push.yaml /work/data/franka_push models/franka_push
"""
import json
import sys
import numpy as np
import torch
from pathlib import Path
from vidplan_ros.core.config import load_config
from vidplan_ros.data.dataset import build_dataset
from vidplan_ros.nn.model_config import ModelConfig
from vidplan_ros.nn.model_set import load_model_set
from vidplan_ros.nn import train as T
torch.set_num_threads(1)
torch.manual_seed(0)
cfgp, data, mdir = sys.argv[1:4]
cfg = load_config(ModelConfig, cfgp, overrides={'data.data_dir': data})
ms = load_model_set(Path(mdir))
ds = build_dataset(cfg.data, progress=False)
tr, he = T._split_like(ds, ms.info['dataset']['heldout_episodes'], Path(mdir))
ep_state = {}
for n in set(ds.episode_names):
    st = json.load(open(Path(data) / n / 'episode.json'))['metadata']['task_state_at_reset']
    ep_state[n] = np.r_[st['cube_pos_m'][:2], st['goal_pos_m'][:2]]


def rows(seqs, first_only):
    idx, y = [], []
    for e in seqs:
        s, t = int(ds.seq_start[e]), int(ds.seq_start[e + 1])
        r = [s] if first_only else list(range(s, t))
        idx += r
        y += [ep_state[ds.episode_names[ds.seq_episode[e]]]] * len(r)
    return np.array(idx), np.array(y, np.float32)


if True:
    def enc(idx):
        with torch.no_grad():
            return torch.cat([ms.autoencoder.encode(T._images(ds, idx[i:i+512])).flatten(1)
                              for i in range(0, len(idx), 512)])

    for first in (True,):
        itr, ytr = rows(tr, first)
        ihe, yhe = rows(he, first)
        ztr, zhe = enc(itr), enc(ihe)
        mu, sd = ztr.mean(0), ztr.std(0) + 1e-6
        ztr, zhe = (ztr - mu) / sd, (zhe - mu) / sd
        ytr, yhe = torch.as_tensor(ytr), torch.as_tensor(yhe)
        ym = ytr.mean(0)
        print('frames', len(itr), len(ihe), 'predict-mean err cm',
              ((yhe - ym)[:, :2].norm(dim=1).mean()*100).item(),
              ((yhe - ym)[:, 2:].norm(dim=1).mean()*100).item())
        for wd in (1e-3, 1e-2):
            net = torch.nn.Sequential(torch.nn.Linear(ztr.shape[1], 256), torch.nn.SiLU(),
                                      torch.nn.Dropout(0.2), torch.nn.Linear(256, 4))
            opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=wd)
            for _ in range(3000):
                b = torch.randint(len(ztr), (128,))
                zb = ztr[b] + 0.1 * torch.randn_like(ztr[b])
                loss = ((net(zb) - (ytr[b] - ym) * 10) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
            p = net(zhe) / 10 + ym
            e = (p - yhe)
            print(f'wd {wd} first_only {first}: '
                  f'cube err cm {e[:, :2].norm(dim=1).mean()*100:.2f} '
                  f'goal err cm {e[:, 2:].norm(dim=1).mean()*100:.2f}  '
                  f'(train cube {((net(ztr)/10+ym-ytr)[:, :2].norm(dim=1).mean()*100):.2f})',
                  flush=True)
