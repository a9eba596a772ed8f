"""Trace the policy on seeds: tip, cube, the fresh expert's phase and action agreement.

At every replan it restarts a push expert from the current state and compares its 0.2 s
joint step with the plan's (cosine, norms); prints every 5th replan per seed.

Usage: trace.py MODEL METHOD SEED[,SEED...]   e.g. trace.py franka_push policy 20001
"""
import sys
import numpy as np
import torch
from vidplan_ros.core.config import load_config
from vidplan_ros.core.executor import ExecutorConfig
from vidplan_ros.core.baselines import GrounderConfig
from vidplan_ros.eval.closed_loop import make_env, run_closed_loop, EpisodeConfig
from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
from vidplan_ros.sim.experts import make_expert
torch.set_num_threads(1)
model, method = sys.argv[1], sys.argv[2]
seeds = [int(s) for s in sys.argv[3].split(',')]
g = load_config(GrounderConfig, 'config/grounding.yaml')
ex = load_config(ExecutorConfig, 'config/executor.yaml', prefix='executor.')
pl = Pipeline(PipelineConfig(model=model, threads=1, grounding=g)).with_method(method)
env = make_env(pl, 'franka/push')
for seed in seeds:
    log = []

    def hook(env_, frames, rp, log=log):
        ts = env_.task_state()
        q = env_.q()
        e = make_expert('franka/push', env_.spec)
        e.resume(env_.time_s, ts, q)
        a = e.act(env_.time_s, q, ts)
        i = int(np.searchsorted(a.times_from_start_s, 0.2 - 1e-9))
        de = a.positions[min(i, len(a.positions) - 1)] - q
        p = rp.plan
        j = int(np.searchsorted(p.times_from_stamp_s, 0.2 - 1e-9))
        dp = p.positions_rad[min(j, len(p.positions_rad) - 1)] - q
        cos = float(de @ dp / (np.linalg.norm(de) * np.linalg.norm(dp) + 1e-9))
        log.append((env_.time_s, e.phase,
                    np.asarray(ts.tip_pos_m), np.asarray(ts.cube_pos_m), ts.distance_m, cos,
                    np.linalg.norm(de), np.linalg.norm(dp), q[6]))
    out = run_closed_loop(env, pl, seed, EpisodeConfig(max_time_s=20.0, executor=ex),
                          on_replan=hook)
    ts = env.task_state()
    d = ts.push_dir
    print(f'seed {seed} success {out.success} angle {np.degrees(np.arctan2(d[1], d[0])):.0f}')
    for k in range(0, len(log), 5):
        t, ph, tip, cube, dist, cos, ne, npl, q7 = log[k]
        print(f'  t {t:5.1f} phase {ph:8s} tip {tip[0]:.2f} {tip[1]:+.2f} {tip[2]:.3f} '
              f'cube {cube[0]:.2f} {cube[1]:+.2f} dist {dist:.3f} cos {cos:+.2f} '
              f'|de| {ne:.3f} |dp| {npl:.3f} q7 {q7:+.2f}')
