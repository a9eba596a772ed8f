"""Noisy push-expert success per push-direction bin, with the expert's IK yaw left free or fixed.

Usage: fixed_yaw.py MODE FIRST_SEED END_SEED   (MODE 'fixed' keeps the hand at HAND_DOWN
instead of yawing it along the push; anything else is the stock expert; seeds FIRST..END-1)
"""
import sys
import numpy as np
import vidplan_ros.sim.experts as ex
from vidplan_ros.sim.env import SimConfig, SimEnv
from vidplan_ros.sim.rollout import run_episode
from vidplan_ros.sim.perturb import NoiseConfig
mode = sys.argv[1]
orig = ex.FrankaPushExpert._aim


def aim(self, ts):
    orig(self, ts)
    if mode == 'fixed':
        self._ik = ex.ToolIK(self.chain, ex.HAND_DOWN, self.cfg.ik_seeds,
                             margin_rad=self.ik_margin_rad)


ex.FrankaPushExpert._aim = aim
env = SimEnv(SimConfig(robot='franka_fr3', task='franka/push', cameras=('top',),
                       image_width=32, image_height=32))
n = NoiseConfig(start_rad=0.2, noise_rad=0.03, detour_prob=0.3, detour_rad=0.2)
res = []
for s in range(int(sys.argv[2]), int(sys.argv[3])):
    r = run_episode(env, ex.make_expert('franka/push', env.spec), s, noise=n)
    env.reset(s)
    d = env.task_state().push_dir
    res.append((np.degrees(np.arctan2(d[1], d[0])), r.success, r.duration_s))
res = np.array(res)
print(mode, 'success', res[:, 1].mean(), 'mean dur', res[:, 2].mean())
for lo in range(-180, 180, 60):
    sel = (res[:, 0] >= lo) & (res[:, 0] < lo + 60)
    print(lo, int(res[sel, 1].sum()), int(sel.sum()))
