"""How large the task's objects are in each camera: pixels per centimetre at the model's size.

A model can only act on what it sees. `measure_framing` resets the sim on several seeds and
projects the task's points (reach target; push cube and goal; the tip) into each camera with the
pinhole model (`SimEnv.camera_intrinsics` / `camera_pose`): pixels per centimetre = focal length
in pixels / depth in cm, and whether the point lies inside the image. Model cards report it.

    python -m vidplan_ros.sim.framing --task franka/push --cameras top front --size 64
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

__all__ = ['Framing', 'measure_framing', 'point_pixels_per_cm']


@dataclass(frozen=True)
class Framing:
    """One camera and one task point over the seeds measured."""

    camera: str
    point: str                   # 'target' | 'cube' | 'goal' | 'tip'
    px_per_cm_min: float
    px_per_cm_mean: float
    visible_fraction: float      # seeds on which the point projects inside the image


def point_pixels_per_cm(K: np.ndarray, cam_pose: np.ndarray, p_m: np.ndarray,
                        size_px: tuple[int, int]) -> tuple[float, bool]:
    """(pixels per cm, inside the image) of base-frame point `p_m` (3,) for a camera with
    pinhole `K` (3, 3) and optical-frame pose `cam_pose` (4, 4, z forward) in the base frame;
    `size_px` = (width, height)."""
    p_cam = cam_pose[:3, :3].T @ (np.asarray(p_m, float) - cam_pose[:3, 3])
    depth_m = float(p_cam[2])
    if depth_m <= 1e-6:
        return 0.0, False
    uv = (K @ (p_cam / depth_m))[:2]
    inside = bool(-0.5 <= uv[0] <= size_px[0] - 0.5 and -0.5 <= uv[1] <= size_px[1] - 0.5)
    return float(K[0, 0] / (100.0 * depth_m)), inside


def _points(state: object) -> dict[str, np.ndarray]:
    names = {'target': 'target_pos_m', 'cube': 'cube_pos_m', 'goal': 'goal_pos_m',
             'tip': 'tip_pos_m'}
    return {k: np.asarray(getattr(state, a)) for k, a in names.items() if hasattr(state, a)}


def measure_framing(task: str, cameras: Sequence[str], size_px: int, seeds: Sequence[int]
                    ) -> list[Framing]:
    """Framing of every task point in every camera over `seeds` (square images of size_px)."""
    from vidplan_ros.sim.env import SimConfig, SimEnv
    from vidplan_ros.sim.tasks import task_robot

    env = SimEnv(SimConfig(robot=task_robot(task), task=task, cameras=tuple(cameras),
                           image_width=size_px, image_height=size_px))
    acc: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    try:
        for seed in seeds:
            env.reset(int(seed))
            points = _points(env.task_state())
            for cam in cameras:
                K, pose = env.camera_intrinsics(cam), env.camera_pose(cam)
                for name, p in points.items():
                    acc.setdefault((cam, name), []).append(
                        point_pixels_per_cm(K, pose, p, (size_px, size_px)))
    finally:
        env.close()
    out = []
    for (cam, name), vals in acc.items():
        ppc = np.array([v[0] for v in vals])
        out.append(Framing(cam, name, round(float(ppc.min()), 3), round(float(ppc.mean()), 3),
                           float(np.mean([v[1] for v in vals]))))
    return out


def to_markdown(rows: Sequence[Framing], size_px: int) -> str:
    lines = [f'| camera | point | px/cm at {size_px} px (mean) | min | in view |',
             '|---|---|---|---|---|']
    lines += [f'| {r.camera} | {r.point} | {r.px_per_cm_mean:.2f} | {r.px_per_cm_min:.2f} | '
              f'{100 * r.visible_fraction:.0f}% |' for r in rows]
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog='python -m vidplan_ros.sim.framing',
                                description='Pixels per cm of the task objects per camera.')
    p.add_argument('--task', required=True)
    p.add_argument('--cameras', nargs='+', required=True)
    p.add_argument('--size', type=int, default=64)
    p.add_argument('--seeds', type=int, default=20, help='seeds 0..N-1')
    p.add_argument('--json', action='store_true')
    a = p.parse_args(argv)
    rows = measure_framing(a.task, a.cameras, a.size, range(a.seeds))
    print(json.dumps([asdict(r) for r in rows], indent=1) if a.json
          else to_markdown(rows, a.size))
    return 0


if __name__ == '__main__':
    sys.exit(main())
