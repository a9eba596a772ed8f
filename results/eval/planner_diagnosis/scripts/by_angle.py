"""Closed-loop success per push-direction bin (60-degree bins) for one or more eval runs.

Usage: by_angle.py RESULTS_DIR [RESULTS_DIR ...]   (each holding a results.json)
"""
import json
import sys
import numpy as np
from vidplan_ros.sim.env import SimConfig, SimEnv
env = SimEnv(SimConfig(robot='franka_fr3', task='franka/push', cameras=('top',),
                       image_width=64, image_height=64))
res = {p: {e['seed']: e['success'] for e in json.load(open(p + '/results.json'))['episodes']}
       for p in sys.argv[1:]}
seeds = sorted(next(iter(res.values())))
ang = {}
for s in seeds:
    env.reset(s)
    d = env.task_state().push_dir
    ang[s] = np.degrees(np.arctan2(d[1], d[0]))
bins = [(-180, -120), (-120, -60), (-60, 0), (0, 60), (60, 120), (120, 180)]
print('bins', bins)
for p, r in res.items():
    row = []
    for lo, hi in bins:
        ss = [s for s in seeds if lo <= ang[s] < hi]
        row.append(f'{sum(r[s] for s in ss)}/{len(ss)}')
    print(p.split('/')[-1], sum(r.values()), row)
