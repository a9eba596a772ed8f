"""Expert wrist yaw (q7) 3 s into each franka_push episode, per push-direction bin (20 degrees).

Usage: yaw.py   (no arguments; reads config/models/franka_push.yaml and /work/data/franka_push,
run from the repo root)
"""
import json
import numpy as np
from vidplan_ros.core.config import load_config
from vidplan_ros.data.dataset import build_dataset
from vidplan_ros.nn.model_config import ModelConfig
cfg = load_config(ModelConfig, 'config/models/franka_push.yaml',
                  overrides={'data.data_dir': '/work/data/franka_push'})
ds = build_dataset(cfg.data, progress=False)
rows = []
for e in range(0, ds.num_sequences, 2):
    s, t = int(ds.seq_start[e]), int(ds.seq_start[e + 1])
    n = ds.episode_names[ds.seq_episode[e]]
    st = json.load(open(f'/work/data/franka_push/{n}/episode.json'))['metadata'][
        'task_state_at_reset']
    d = st['push_dir']
    ang = np.degrees(np.arctan2(d[1], d[0]))
    rows.append((ang, ds.q[min(s + 15, t - 1), 6], ds.q[s, 6]))
rows = np.array(rows)
for lo in range(-180, 180, 20):
    sel = (rows[:, 0] >= lo) & (rows[:, 0] < lo + 20)
    print(f'{lo:5d}..{lo+20:4d}: n {sel.sum():3d}  q7@3s mean {rows[sel,1].mean():+.2f} '
          f'min {rows[sel,1].min():+.2f} max {rows[sel,1].max():+.2f}')
