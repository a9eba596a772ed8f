"""How well does a policy on the sim's TRUE task state push? The ceiling of a state head.

An MLP from (q, cube x y, cube yaw as sin/cos 4 yaw, goal x y) [SEL=min; SEL=full adds the
tool position and two differences] to the next 8 targets (0.2 s apart, relative to q),
trained on the executed commands of noisy expert episodes (the committed push recipe's DART
noise), executed alone at 5 Hz through the sim's trajectory follower. NOISE_CM adds Gaussian
noise of that many cm per replan to the cube and goal positions it reads.

    python state_policy_ceiling.py collect 100000 100800 d800.npz     # 2 processes
    SEL=min python state_policy_ceiling.py train d800.npz min.pt 2500
    SEL=min NOISE_CM=1 python state_policy_ceiling.py eval min.pt 31030 31070
"""
import math
import os
import sys
import time
from multiprocessing import Pool

import numpy as np

from vidplan_ros.sim.env import SimConfig, SimEnv
from vidplan_ros.sim.experts import ExpertAction, make_expert
from vidplan_ros.sim.perturb import NoiseConfig
from vidplan_ros.sim.rollout import run_episode

H, DT = 8, 0.2
NOISE = NoiseConfig(start_rad=0.2, noise_rad=0.03, noise_corr_s=0.6, detour_prob=0.3,
                    detour_rad=0.2)


SEL = os.environ.get('SEL', 'full')
NOISE = float(os.environ.get('NOISE_CM', '0')) / 100
MIN_IDX = list(range(0, 7)) + list(range(10, 16))


def features(q, ts):
    f = _features(q, ts)
    return f[MIN_IDX] if SEL == 'min' else f


def _features(q, ts):
    cube = np.asarray(ts.cube_pos_m) + np.r_[np.random.normal(0, NOISE, 2), 0]
    w, x, y, z = np.asarray(ts.cube_quat_wxyz)
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    goal = np.asarray(ts.goal_pos_m) + np.r_[np.random.normal(0, NOISE, 2), 0]
    tip = np.asarray(ts.tip_pos_m)
    d = goal[:2] - cube[:2]
    return np.concatenate([q, tip, cube[:2], [math.sin(4 * yaw), math.cos(4 * yaw)],
                           goal[:2], d, tip[:2] - cube[:2]]).astype(np.float32)


def chunk_targets(action, t, q):
    tq = t + DT * np.arange(1, H + 1)
    abs_t = action.stamp_s + np.asarray(action.times_from_start_s)
    pos = np.asarray(action.positions)
    out = np.stack([np.interp(tq, abs_t, pos[:, j], left=pos[0, j], right=pos[-1, j])
                    for j in range(pos.shape[1])], 1)
    return (out - q[None]).astype(np.float32)


def collect_one(seed):
    env = SimEnv(SimConfig(robot='franka_fr3', task='franka/push', cameras=('top',),
                           image_width=32, image_height=32))
    expert = make_expert('franka/push', env.spec)
    X, Y = [], []

    def on_step(env, t, action):
        q = env.q()
        X.append(features(q, env.task_state()))
        Y.append(chunk_targets(action, t, q))
    r = run_episode(env, expert, seed, plan_rate_hz=5.0, on_step=on_step, noise=NOISE)
    env.close()
    return seed, r.success, np.stack(X), np.stack(Y)


class MLPPolicy:
    def __init__(self, path):
        import torch
        self.torch = torch
        ck = torch.load(path, weights_only=False)
        self.net = build(ck['din'])
        self.net.load_state_dict(ck['net'])
        self.mx, self.sx, self.sy = ck['mx'], ck['sx'], ck['sy']
        self.gripper_width_m = 0.0

    def reset(self, ts, q):
        pass

    def act(self, t, q, ts):
        torch = self.torch
        x = (features(q, ts) - self.mx) / self.sx
        with torch.no_grad():
            y = self.net(torch.from_numpy(x)[None])[0].numpy().reshape(H, -1) * self.sy
        return ExpertAction(stamp_s=t, times_from_start_s=DT * np.arange(1, H + 1),
                            positions=q[None] + y, gripper_width_m=0.0)


def build(din):
    import torch.nn as nn
    return nn.Sequential(nn.Linear(din, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(),
                         nn.Linear(512, 512), nn.GELU(), nn.Linear(512, H * 7))


def train(data, out, steps=20000):
    import torch
    torch.set_num_threads(2)
    z = np.load(data)
    X, Y, ep = z['X'], z['Y'], z['ep']
    if SEL == 'min':
        X = X[:, MIN_IDX]
    held = ep % 20 == 0
    mx, sx = X[~held].mean(0), X[~held].std(0) + 1e-6
    sy = Y[~held].std(0) + 1e-6
    Xn = torch.from_numpy((X - mx) / sx)
    Yn = torch.from_numpy((Y / sy).reshape(len(Y), -1))
    tr, ho = np.where(~held)[0], np.where(held)[0]
    net = build(X.shape[1])
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for s in range(steps):
        b = np.random.choice(tr, 512)
        loss = ((net(Xn[b]) - Yn[b]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if s % 2000 == 0 or s == steps - 1:
            with torch.no_grad():
                p = net(Xn[ho])
                hl = ((p - Yn[ho]) ** 2).mean().item()
                a, b2 = p.reshape(-1, H, 7)[:, 0], Yn[ho].reshape(-1, H, 7)[:, 0]
                cos = torch.nn.functional.cosine_similarity(a, b2, dim=1).mean().item()
            print(f'step {s} train {loss.item():.4f} held {hl:.4f} cos1 {cos:.3f}', flush=True)
    torch.save({'net': net.state_dict(), 'din': X.shape[1], 'mx': mx, 'sx': sx, 'sy': sy}, out)


def eval_one(args):
    path, seed = args
    import torch
    torch.set_num_threads(1)
    env = SimEnv(SimConfig(robot='franka_fr3', task='franka/push', cameras=('top',),
                           image_width=32, image_height=32))
    pol = MLPPolicy(path)
    r = run_episode(env, pol, seed, plan_rate_hz=5.0)
    env.close()
    return seed, r.success, r.final_distance_m


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'collect':
        n0, n1, out = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        t0 = time.time()
        X, Y, E, ok = [], [], [], 0
        with Pool(2) as p:
            for i, (seed, s, x, y) in enumerate(p.imap_unordered(collect_one, range(n0, n1))):
                ok += s
                if s:
                    X.append(x)
                    Y.append(y)
                    E.append(np.full(len(x), seed))
                if i % 50 == 0:
                    print(i, ok, time.time() - t0, flush=True)
        np.savez(out, X=np.concatenate(X), Y=np.concatenate(Y), ep=np.concatenate(E))
        print('done', ok, n1 - n0, time.time() - t0)
    elif cmd == 'train':
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == 'eval':
        path, s0, s1 = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        with Pool(2) as p:
            res = p.map(eval_one, [(path, s) for s in range(s0, s1)])
        print(sum(r[1] for r in res), len(res), [round(r[2], 3) for r in res])
