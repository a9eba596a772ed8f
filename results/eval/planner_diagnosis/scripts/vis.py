"""Cube / goal visibility per camera over noisy expert push episodes (segmentation counts).

Adds four extra cameras to the franka_fr3 scene, then per camera reports the cube and goal
pixel counts at t=0 and their visible fraction over the episodes (mean, share of steps < 50%).

Usage: vis.py [IMAGE_SIZE [EPISODES]]   (defaults 64 and 6; seeds 5000..5000+EPISODES-1)
"""
import sys
import dataclasses
import numpy as np
import mujoco
import vidplan_ros.sim.scene as sc
from vidplan_ros.sim.scene import CameraMount
S = int(sys.argv[1]) if len(sys.argv) > 1 else 64
extra = (
    CameraMount('top_high', '', (0.5, 0.0, 2.4), xyaxes=(0.0, -1.0, 0.0, 1.0, 0.0, 0.0),
                fovy_deg=14.0),
    CameraMount('left45', '', (0.5, 0.62, 0.62), look_at_m=(0.5, 0.0, 0.0), fovy_deg=40.0),
    CameraMount('right45', '', (0.5, -0.62, 0.62), look_at_m=(0.5, 0.0, 0.0), fovy_deg=40.0),
    CameraMount('front45', '', (1.05, 0.0, 0.6), look_at_m=(0.5, 0.0, 0.0), fovy_deg=40.0),
)
# The scene must be patched before the env modules are imported.
fr = sc.ROBOT_SCENES['franka_fr3']
sc.ROBOT_SCENES['franka_fr3'] = dataclasses.replace(fr, cameras=fr.cameras + extra)
from vidplan_ros.sim.env import SimConfig, SimEnv  # noqa: E402
from vidplan_ros.sim.experts import make_expert  # noqa: E402
from vidplan_ros.sim.rollout import run_episode  # noqa: E402
from vidplan_ros.sim.perturb import NoiseConfig  # noqa: E402
cams = ['top', 'front', 'side', 'top_high', 'left45', 'right45', 'front45']
env = SimEnv(SimConfig(robot='franka_fr3', task='franka/push', cameras=tuple(cams),
                       image_width=S, image_height=S))
m = env.model
r = mujoco.Renderer(m, S, S)
r.enable_segmentation_rendering()
gid = {'cube': m.geom('cube').id, 'goal': m.geom('goal_marker').id}
stats = {c: {'cube': [], 'goal': []} for c in cams}


def seg_counts(cam):
    r.update_scene(env.data, cam)
    s = r.render()
    ok = s[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
    return {k: int(((s[..., 0] == g) & ok).sum()) for k, g in gid.items()}


base = {}


def on_step(env_, t, action):
    for c in cams:
        n = seg_counts(c)
        for k in n:
            if t == 0.0:
                base[(c, k)] = max(n[k], 1)
            stats[c][k].append(n[k] / base[(c, k)])


noise = NoiseConfig(start_rad=0.2, noise_rad=0.03, noise_corr_s=0.6, detour_prob=0.3,
                    detour_rad=0.2)
for seed in range(int(sys.argv[2]) if len(sys.argv) > 2 else 6):
    env._update_kinematics() if hasattr(env, '_update_kinematics') else None
    res = run_episode(env, make_expert('franka/push', env.spec), 5000 + seed, noise=noise,
                      on_step=on_step)
    print('seed', seed, res.success, flush=True)
print(f'{"camera":10s} cube_px0 cube_vis_mean cube<50% goal_px0 goal_vis_mean goal<50%')
for c in cams:
    cu, go = np.array(stats[c]['cube']), np.array(stats[c]['goal'])
    print(f'{c:10s} {base[(c,"cube")]:5d} {cu.mean():.2f} {np.mean(cu<0.5):.2f}   '
          f'{base[(c,"goal")]:5d} {go.mean():.2f} {np.mean(go<0.5):.2f}')
