"""Collect scripted-expert demonstrations in the embedded sim, one ROS 2 bag per episode.

    python -m vidplan_ros.data.collect --robot franka --task push --episodes 100 \\
        --out data/franka_push

runs the task's scripted expert in-process (no DDS, as fast as physics and rendering go) through
`sim.rollout.run_episode` with an `EpisodeRecorder` hook and writes `<out>/<task>_<seed>/`
(e.g. `data/franka_push/push_0/`), the same bag layout a user records on the robot (topics in
`vidplan_ros.data.recorder`). Episode metadata (robot, task, seed, success, policy, sim config,
...) is in each bag's custom_data and `episode.json`; `<out>/collect.json` lists every episode.

Failed episodes are kept (their metadata says `success: false`); the dataset builder chooses.
Bags already complete in `<out>` are kept and skipped, so an interrupted collection resumes;
`--overwrite` records them again (resuming with another image size, camera set or plan rate
is an error). `--workers 2` records in two processes (one per core is fastest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import vidplan_ros
from vidplan_ros.core.config import require, require_one_of, require_positive
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.robot_spec import ROBOT_ALIASES
from vidplan_ros.data.bags import COMPRESSIONS, BagError, BagReader, BagWriter, EpisodeMeta
from vidplan_ros.data.recorder import EpisodeRecorder
from vidplan_ros.sim.perturb import NoiseConfig

__all__ = ['CollectConfig', 'CollectResult', 'ROBOT_ALIASES', 'build_parser', 'collect',
           'episode_dir', 'main', 'resolve_robot_task', 'run']

# short robot names: the one table (core/robot_spec.py), re-exported for `vidplan collect`
TASK_FAMILY = {'franka_fr3': 'franka', 'unitree_g1': 'g1'}   # task names are <family>/<task>
SUMMARY = 'collect.json'


def resolve_robot_task(robot: str | None, task: str) -> tuple[str, str]:
    """Full (robot spec name, sim task name) from short or full names.

    `franka` -> `franka_fr3`, `g1` -> `unitree_g1`; `push` -> `<robot family>/push`. The robot
    may be left out (None or '') when the task names it (`franka/push`).
    """
    from vidplan_ros.sim.tasks import TASKS, task_robot

    robot = ROBOT_ALIASES.get(robot or '', robot or '')
    if robot and robot not in TASK_FAMILY:
        raise VidplanError(f'robot {robot!r} has no sim scene; robots: '
                           f'{sorted(TASK_FAMILY)} (or short: {sorted(ROBOT_ALIASES)})')
    full = task if '/' in task else (f'{TASK_FAMILY[robot]}/{task}' if robot else '')
    if full not in TASKS:
        names = sorted(t for t in TASKS if not robot or t.startswith(TASK_FAMILY[robot] + '/'))
        hint = '' if robot or '/' in task else ' (or give --robot)'
        raise VidplanError(f'no sim task {task!r} for robot {robot or "?"}; tasks: {names}{hint}')
    if robot and task_robot(full) != robot:
        raise VidplanError(f'task {full} is for robot {task_robot(full)}, not {robot}')
    return task_robot(full), full


def episode_dir(out_dir: str | Path, task: str, seed: int) -> Path:
    """`<out>/<task>_<seed>` with the task's short name (`franka/push`, 3 -> `push_3`)."""
    return Path(out_dir) / f'{task.split("/")[-1]}_{seed}'


@dataclass(frozen=True)
class CollectConfig:
    """What to collect. Sizes in pixels; rates in Hz; `cameras` empty = all of the scene."""

    robot: str
    task: str
    episodes: int
    seed0: int = 0
    image_width: int = 96
    image_height: int = 96
    cameras: tuple[str, ...] = ()
    plan_rate_hz: float = 10.0
    max_time_s: float | None = None
    domain_randomization: bool = False
    overwrite: bool = False
    workers: int = 1
    compression: str = 'zstd'          # mcap chunk compression ('' = none)
    noise: NoiseConfig = field(default_factory=NoiseConfig)   # DART perturbations (sim.perturb)

    def __post_init__(self) -> None:
        require(isinstance(self.episodes, int) and self.episodes >= 1, 'episodes',
                self.episodes, 'an integer >= 1')
        require(isinstance(self.seed0, int) and self.seed0 >= 0, 'seed0', self.seed0,
                'an integer >= 0')
        require(isinstance(self.workers, int) and self.workers >= 1, 'workers', self.workers,
                'a number of processes >= 1 (one per core is fastest)')
        require_positive(self, 'plan_rate_hz')
        if self.max_time_s is not None:
            require_positive(self, 'max_time_s')
        require_one_of(self, 'compression', COMPRESSIONS)


@dataclass(frozen=True)
class CollectResult:
    out_dir: Path
    bags: tuple[Path, ...]
    successes: int
    recorded: int                  # episodes recorded now (the rest were already there)
    wall_s: float
    episodes: tuple[dict[str, Any], ...] = field(default=())

    @property
    def success_rate(self) -> float:
        return self.successes / len(self.bags) if self.bags else float('nan')


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _complete_episode(path: Path, sim_config: dict[str, Any], plan_rate_hz: float,
                      noise: dict[str, Any]) -> dict[str, Any] | None:
    """The metadata of a complete bag at `path`, or None (missing, unfinished or unreadable).

    Raises `VidplanError` when the bag was recorded with another sim config or plan rate.
    """
    if not (path / 'metadata.yaml').exists():
        return None
    try:
        with BagReader(path) as bag:
            meta = bag.metadata
    except BagError:
        return None
    if meta.get('complete') is not True or 'success' not in meta:
        return None
    if meta.get('sim_config') != sim_config or meta.get('plan_rate_hz') != plan_rate_hz \
            or {**_jsonable(NoiseConfig()), **meta.get('noise', {})} != noise:
        raise VidplanError(
            f'{path} was recorded with sim config {meta.get("sim_config")} at '
            f'{meta.get("plan_rate_hz")} Hz and noise {meta.get("noise")}, not {sim_config} at '
            f'{plan_rate_hz} Hz and noise {noise}; collect '
            'into another --out directory, or pass --overwrite to record it again')
    return meta


def _summary(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    return {'bag': path.name, 'seed': meta.get('seed'), 'success': meta.get('success'),
            'duration_s': meta.get('duration_s')}


class _EpisodeMaker:
    """One sim env and expert that record episodes by seed (in this process or a worker)."""

    def __init__(self, cfg: CollectConfig, sim_cfg: Any) -> None:
        from vidplan_ros.sim.env import SimEnv
        from vidplan_ros.sim.experts import make_expert

        self.cfg = cfg
        self.sim_cfg = sim_cfg
        self.env = SimEnv(sim_cfg)
        self.expert = make_expert(sim_cfg.task, self.env.spec)

    def __call__(self, seed: int, path: Path) -> dict[str, Any]:
        from vidplan_ros.sim.rollout import run_episode

        env, cfg, sim_cfg = self.env, self.cfg, self.sim_cfg
        env.reset(seed)  # run_episode resets again with the same seed; this gives the task state
        meta = EpisodeMeta(robot=sim_cfg.robot, task=sim_cfg.task, seed=seed,
                           policy=f'expert:{sim_cfg.task}', source='sim',
                           sim_config=_jsonable(sim_cfg), extra={
                               'plan_rate_hz': cfg.plan_rate_hz,
                               'noise': _jsonable(cfg.noise),
                               'task_state_at_reset': _jsonable(env.task_state()),
                               'vidplan_version': vidplan_ros.__version__})
        with BagWriter(path, metadata=meta.to_metadata(), overwrite=True,
                       compression=cfg.compression) as bag:
            recorder = EpisodeRecorder(env, bag, record_labels=cfg.noise.active)
            bag.update_metadata(cameras=list(recorder.cameras),
                                command_topic=recorder.command_topic)
            result = run_episode(env, self.expert, seed, cfg.plan_rate_hz,
                                 max_time_s=cfg.max_time_s, on_step=recorder,
                                 noise=cfg.noise)
            recorder.record_end()
            bag.update_metadata(success=bool(result.success), **{
                k: _jsonable(v) for k, v in dataclasses.asdict(result).items()
                if k not in ('seed', 'success')})
        return _summary(path, bag.metadata)

    def close(self) -> None:
        self.env.close()


_WORKER: _EpisodeMaker | None = None


def _worker_init(cfg: CollectConfig, sim_cfg: Any) -> None:
    global _WORKER
    import atexit

    import torch
    torch.set_num_threads(1)  # the expert's IK; processes, not threads, share the cores
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent; see below
    _WORKER = _EpisodeMaker(cfg, sim_cfg)
    atexit.register(_WORKER.close)  # free the GL context before the interpreter goes


def _worker_episode(seed: int, path: Path) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER(seed, path)


def collect(cfg: CollectConfig, out_dir: str | Path, progress: bool = True) -> CollectResult:
    """Record `cfg.episodes` expert episodes (seeds seed0, seed0+1, ...) into `out_dir`, with
    `cfg.workers` processes. Complete bags already there are kept (see the module doc)."""
    from vidplan_ros.sim.env import SimConfig

    robot, task = resolve_robot_task(cfg.robot, cfg.task)
    out = Path(out_dir)
    sim_cfg = SimConfig(robot=robot, task=task, cameras=tuple(cfg.cameras),
                        image_width=cfg.image_width, image_height=cfg.image_height,
                        domain_randomization=cfg.domain_randomization)
    wall0 = time.perf_counter()
    paths = {seed: episode_dir(out, task, seed)
             for seed in range(cfg.seed0, cfg.seed0 + cfg.episodes)}
    done: dict[int, dict[str, Any]] = {}
    for seed, path in paths.items():
        meta = None if cfg.overwrite else _complete_episode(path, _jsonable(sim_cfg),
                                                            cfg.plan_rate_hz,
                                                            _jsonable(cfg.noise))
        if meta is not None:
            done[seed] = _summary(path, meta)
    todo = [seed for seed in paths if seed not in done]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.episodes, initial=len(done), desc=f'collect {task}', unit='ep',
                   file=sys.stderr)

    def finished(seed: int, summary: dict[str, Any]) -> None:
        done[seed] = summary
        if bar is not None:
            ok = sum(bool(e['success']) for e in done.values())
            bar.set_postfix(success=f'{ok}/{len(done)}')
            bar.update(1)

    try:
        if cfg.workers == 1 or len(todo) <= 1:
            maker = _EpisodeMaker(cfg, sim_cfg) if todo else None
            try:
                for seed in todo:
                    finished(seed, maker(seed, paths[seed]))
            finally:
                if maker is not None:
                    maker.close()
        else:
            _collect_in_workers(cfg, sim_cfg, todo, paths, finished)
    finally:
        if bar is not None:
            bar.close()
    episodes = [done[seed] for seed in paths]
    successes = sum(bool(e['success']) for e in episodes)
    wall = time.perf_counter() - wall0
    summary = {'robot': robot, 'task': task, 'policy': f'expert:{task}',
               'episodes': len(episodes), 'successes': successes,
               'success_rate': successes / len(episodes), 'recorded_now': len(todo),
               'wall_s': round(wall, 3), 'sim_config': _jsonable(sim_cfg),
               'collect_config': _jsonable(cfg), 'bags': episodes}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (SUMMARY + '.tmp')
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out / SUMMARY)
    return CollectResult(out, tuple(paths.values()), successes, len(todo), wall,
                         tuple(episodes))


def _collect_in_workers(cfg: CollectConfig, sim_cfg: Any, todo: list[int],
                        paths: dict[int, Path], finished: Any) -> None:
    """Episodes in `cfg.workers` fresh (spawned) processes, one env each, one episode in
    flight per worker. Workers ignore Ctrl-C: on Ctrl-C no new episode starts and the ones in
    progress finish, so every bag is complete."""
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # One software-GL thread per process: processes, not threads, use the cores (sim-notes).
    os.environ.setdefault('LP_NUM_THREADS', '1')
    ctx = multiprocessing.get_context('spawn')
    queue = iter(todo)
    running: dict[Any, int] = {}
    with ProcessPoolExecutor(min(cfg.workers, len(todo)), mp_context=ctx,
                             initializer=_worker_init, initargs=(cfg, sim_cfg)) as pool:

        def start_next() -> None:
            seed = next(queue, None)
            if seed is not None:
                running[pool.submit(_worker_episode, seed, paths[seed])] = seed

        for _ in range(cfg.workers):
            start_next()
        try:
            while running:
                ready, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in ready:
                    finished(running.pop(fut), fut.result())
                    start_next()
        except KeyboardInterrupt:
            print(f'stopping: finishing the {len(running)} episodes in progress',
                  file=sys.stderr, flush=True)
            for fut in list(running):
                try:
                    finished(running.pop(fut), fut.result())
                except Exception:  # noqa: BLE001 — we are stopping anyway; report the rest
                    pass
            raise


# --- python -m vidplan_ros.data.collect / vidplan collect -------------------------------------

def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of `vidplan collect` (fills `parser` when given, e.g. a CLI subparser)."""
    parser = parser or argparse.ArgumentParser(
        prog='vidplan collect',
        description='Record scripted-expert episodes in the embedded sim as ROS 2 bags.')
    parser.add_argument('--robot', default='',
                        help="franka (franka_fr3) or g1 (unitree_g1); default: the task's")
    parser.add_argument('--task', required=True,
                        help='sim task, short (push, reach) or full (franka/push, g1/reach)')
    parser.add_argument('--episodes', type=int, required=True, help='number of episodes')
    parser.add_argument('--out', required=True, help='output directory, one bag per episode')
    parser.add_argument('--seed0', type=int, default=0, help='first seed (then +1 per episode)')
    parser.add_argument('--image-size', type=int, nargs='+', default=[96], metavar='PX',
                        help='image size: one value (square) or WIDTH HEIGHT (default 96)')
    parser.add_argument('--cameras', nargs='*', default=[],
                        help='cameras to record (default: all of the scene)')
    parser.add_argument('--plan-rate-hz', type=float, default=10.0,
                        help='expert (and recording) rate')
    parser.add_argument('--max-time-s', type=float, default=None,
                        help="episode time limit (default: the task's)")
    parser.add_argument('--domain-randomization', action='store_true',
                        help='randomise lights, colours and camera poses per episode')
    noise = parser.add_argument_group(
        'recovery data (DART): the expert labels, perturbed commands execute (sim.perturb)')
    noise.add_argument('--start-noise-rad', type=float, default=0.0,
                       help='random start pose: ready pose + uniform offset per joint (rad)')
    noise.add_argument('--command-noise-rad', type=float, default=0.0,
                       help='std of the smooth joint offset on the executed commands (rad)')
    noise.add_argument('--noise-corr-s', type=float, default=0.6,
                       help='correlation time of that offset (s)')
    noise.add_argument('--detour-prob', type=float, default=0.0,
                       help='chance per episode of a mid-episode detour (push of the arm)')
    noise.add_argument('--detour-rad', type=float, default=0.35,
                       help='largest joint offset of a detour (rad)')
    noise.add_argument('--object-push-prob', type=float, default=0.0,
                       help="chance per episode of one shove of the task's object (push: the "
                            'cube), so the expert shows how a stroke that went wrong is finished')
    noise.add_argument('--object-push-m', type=float, default=0.04,
                       help='largest displacement of that shove (m)')
    parser.add_argument('--overwrite', action='store_true',
                        help='record again episodes whose bags exist (default: keep them)')
    parser.add_argument('--no-compress', action='store_true',
                        help='write mcap chunks uncompressed (default: zstd, ~20x smaller)')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes recording episodes in parallel (one per core)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def run(args: argparse.Namespace) -> int:
    """Run `vidplan collect` with parsed `args`; returns the exit code."""
    size = args.image_size
    if len(size) not in (1, 2):
        raise VidplanError(f'--image-size {size}: one value (square) or WIDTH HEIGHT')
    width, height = (size[0], size[0]) if len(size) == 1 else size
    robot, task = resolve_robot_task(args.robot, args.task)
    cfg = CollectConfig(robot=robot, task=task, episodes=args.episodes, seed0=args.seed0,
                        image_width=width, image_height=height, cameras=tuple(args.cameras),
                        plan_rate_hz=args.plan_rate_hz, max_time_s=args.max_time_s,
                        domain_randomization=args.domain_randomization,
                        overwrite=args.overwrite, workers=args.workers,
                        compression='' if args.no_compress else 'zstd',
                        noise=NoiseConfig(start_rad=args.start_noise_rad,
                                          noise_rad=args.command_noise_rad,
                                          noise_corr_s=args.noise_corr_s,
                                          detour_prob=args.detour_prob,
                                          detour_rad=args.detour_rad,
                                          object_push_prob=args.object_push_prob,
                                          object_push_m=args.object_push_m))
    try:
        result = collect(cfg, args.out, progress=not args.no_progress)
    except KeyboardInterrupt:
        print('interrupted: every bag written is complete (an episode cut short is marked '
              'complete: false). Run the same command again to resume.', file=sys.stderr)
        return 130
    n = len(result.bags)
    print(f'{task} ({robot}): success {result.successes}/{n} = {100 * result.success_rate:.1f}%'
          f', {result.recorded} recorded now in {result.wall_s:.1f} s '
          f'({result.wall_s / max(result.recorded, 1):.2f} s per episode) -> {result.out_dir}')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except VidplanError as exc:
        print(f'collect: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
