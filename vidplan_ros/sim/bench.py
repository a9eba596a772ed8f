"""Sim speed: physics steps/s per scene and rendered frames/s per camera, per GL backend.

    python -m vidplan_ros.sim.bench --out benchmarks/sim_<machine>.json

Every number is the best of 3 runs (these machines are shared). Physics is measured in this
process (the GL backend does not matter): `env_steps_per_s` is
`SimEnv.step()` with a new joint command every step (the Python PD path a trajectory controller
uses), `mj_steps_per_s` is bare `mujoco.mj_step` on the same model. Rendering is measured per
backend in a child process (MuJoCo binds its GL backend once per process), with the env's fast
render settings: frames/s of `SimEnv.render(camera)` including read-back to a numpy array.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from vidplan_ros.core import provenance

SCENES = (('franka_fr3', 'franka/reach'), ('franka_fr3', 'franka/push'),
          ('unitree_g1', 'g1/reach'))
RENDER_SCENES = (('franka_fr3', 'franka/reach'), ('unitree_g1', 'g1/reach'))
SIZES = (64, 128, 256)
BACKENDS = ('egl', 'osmesa')


def _best_time(run: Callable[[], object], repeats: int) -> float:
    """Shortest wall time of `repeats` runs (s): the least disturbed by other load."""
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def bench_physics(steps: int = 2000, repeats: int = 3) -> dict[str, dict[str, float]]:
    """{task: {'env_steps_per_s', 'mj_steps_per_s'}} for every scene, best of `repeats`."""
    from vidplan_ros.sim.env import SimConfig, SimEnv
    from vidplan_ros.sim.render import mujoco
    out: dict[str, dict[str, float]] = {}
    for robot, task in SCENES:
        with SimEnv(SimConfig(robot=robot, task=task)) as env:
            env.reset(0)
            q0 = env.q()
            env.step(50)

            def env_steps() -> None:
                for k in range(steps):
                    env.set_joint_command(q0 + 0.1 * np.sin(2e-3 * k))  # noqa: B023
                    env.step()

            env_rate = steps / _best_time(env_steps, repeats)
            mj_rate = steps / _best_time(lambda: mujoco.mj_step(env.model, env.data, steps),
                                         repeats)
        out[task] = {'env_steps_per_s': round(env_rate, 1), 'mj_steps_per_s': round(mj_rate, 1)}
    return out


def bench_render(sizes: tuple[int, ...] = SIZES, frames: int = 60, repeats: int = 3
                 ) -> dict[str, Any]:
    """{robot: {camera: {'WxH': frames/s}}} with this process's GL backend, best of
    `repeats`."""
    from vidplan_ros.sim.env import SimConfig, SimEnv
    out: dict[str, Any] = {}
    for robot, task in RENDER_SCENES:
        per_camera: dict[str, dict[str, float]] = {}
        for size in sizes:
            with SimEnv(SimConfig(robot=robot, task=task, image_width=size,
                                  image_height=size)) as env:
                env.step(10)
                for camera in env.camera_names:
                    for _ in range(5):           # context creation, first uploads
                        env.render(camera)
                    rate = frames / _best_time(
                        lambda c=camera: [env.render(c) for _ in range(frames)], repeats)
                    per_camera.setdefault(camera, {})[f'{size}x{size}'] = round(rate, 1)
        out[robot] = per_camera
    return out


def _render_in_child(backend: str, sizes: tuple[int, ...], frames: int,
                     lp_threads: int | None) -> dict[str, Any]:
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    if lp_threads is not None:
        env['LP_NUM_THREADS'] = str(lp_threads)
    cmd = [sys.executable, '-m', 'vidplan_ros.sim.bench', '--render-worker',
           '--sizes', *map(str, sizes), '--frames', str(frames)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800,
                          check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {'error': lines[-1] if lines else f'exit status {proc.returncode}'}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine_info() -> dict[str, Any]:
    """The machine (core/provenance.py), with the MuJoCo version."""
    return provenance.machine_info(packages=('mujoco',))


def run_benchmark(backends: tuple[str, ...] = BACKENDS, sizes: tuple[int, ...] = SIZES,
                  physics_steps: int = 2000, frames: int = 60,
                  lp_threads: tuple[int | None, ...] = (None, 1)) -> dict[str, Any]:
    """Everything: machine, physics per scene, rendering per backend (and llvmpipe thread
    setting: None = Mesa's default, one thread per core). Backends that fail are reported with
    their error instead of numbers."""
    result: dict[str, Any] = {'machine': machine_info(), 'physics': bench_physics(physics_steps),
                              'render': {}}
    for backend in backends:
        for threads in lp_threads:
            key = backend if threads is None else f'{backend}, LP_NUM_THREADS={threads}'
            result['render'][key] = _render_in_child(backend, sizes, frames, threads)
    result['machine']['load_average_1min_at_end'] = round(os.getloadavg()[0], 2)
    return result


def to_markdown(result: dict[str, Any]) -> str:
    """Tables of a `run_benchmark` result."""
    lines = ['| scene | env.step() steps/s | mj_step steps/s |', '|---|---|---|']
    for task, rates in result['physics'].items():
        lines.append(f"| {task} | {rates['env_steps_per_s']:.0f} | "
                     f"{rates['mj_steps_per_s']:.0f} |")
    for backend, robots in result['render'].items():
        lines += ['', f'Rendering, {backend} (frames/s per camera):', '']
        if 'error' in robots:
            lines.append(f"failed: {robots['error']}")
            continue
        sizes = sorted({s for cams in robots.values() for c in cams.values() for s in c},
                       key=lambda s: int(s.split('x')[0]))
        lines += ['| robot | camera | ' + ' | '.join(sizes) + ' |',
                  '|---|---|' + '---|' * len(sizes)]
        for robot, cams in robots.items():
            for camera, rates in cams.items():
                lines.append(f'| {robot} | {camera} | ' +
                             ' | '.join(f'{rates.get(s, float("nan")):.0f}' for s in sizes) +
                             ' |')
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='vidplan bench sim', description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, help='write the result as JSON here')
    parser.add_argument('--backends', nargs='+', default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument('--sizes', nargs='+', type=int, default=list(SIZES))
    parser.add_argument('--frames', type=int, default=60)
    parser.add_argument('--physics-steps', type=int, default=2000)
    parser.add_argument('--render-worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.render_worker:
        print(json.dumps(bench_render(tuple(args.sizes), args.frames)))
        return 0
    result = run_benchmark(tuple(args.backends), tuple(args.sizes), args.physics_steps,
                           args.frames)
    print(to_markdown(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
