"""Run scripted experts in the embedded sim, the way the stack runs on a robot.

`run_episode` steps a `SimEnv` with a `TrajectoryFollower` (JointTrajectoryController
semantics) sampled at the physics rate (PD in the env); at the plan rate the expert sees the
state and sends a trajectory chunk (`ExpertAction`), which replaces the active trajectory, and
a gripper width. An `on_step(env, t_s, action)` hook runs at the plan rate right after the
action is applied and before the physics advances: a recorder writes the observation at t_s
and the chunk made from it.

    python -m vidplan_ros.sim.rollout --task franka/push --episodes 100
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from vidplan_ros.sim.env import SimConfig, SimEnv
from vidplan_ros.sim.experts import Expert, ExpertAction, ExpertConfig, make_expert
from vidplan_ros.sim.perturb import NoiseConfig, Perturber
from vidplan_ros.sim.tasks import TASKS, task_robot
from vidplan_ros.sim.trajectory import TrajectoryFollower

__all__ = ['DEFAULT_MAX_TIME_S', 'EpisodeResult', 'evaluate_expert', 'main', 'run_episode']

# Episode time limits (sim s) per task: a few times what the experts need.
DEFAULT_MAX_TIME_S = {'franka/reach': 10.0, 'franka/push': 20.0, 'g1/reach': 10.0,
                      'g1/reach_left': 10.0, 'g1/reach_right': 10.0}

OnStep = Callable[[SimEnv, float, ExpertAction], None]


@dataclass(frozen=True)
class EpisodeResult:
    """One episode. Times are sim seconds from reset; wall_s is real time."""

    seed: int
    success: bool                      # the task succeeded (checked at the plan rate)
    time_to_success_s: float | None    # first plan tick at which it succeeded
    success_at_end: bool               # succeeding when the episode stopped
    duration_s: float
    final_distance_m: float            # the task's distance (tip-target, cube-goal) at the end
    num_actions: int
    rejected_actions: int              # chunks the follower rejected (should be 0)
    expert_ik_error_m: float           # the expert's worst IK position error (nan: unknown)
    wall_s: float
    object_pushes: int = 0             # external shoves of the task's object (sim.perturb)


def run_episode(env: SimEnv, expert: Expert, seed: int, plan_rate_hz: float = 10.0,
                max_time_s: float | None = None, on_step: OnStep | None = None,
                post_success_s: float = 0.5, stop_on_success: bool = True,
                noise: NoiseConfig | None = None) -> EpisodeResult:
    """Reset `env` with `seed` and run `expert` until the task has succeeded for
    `post_success_s` without a break (with `stop_on_success`) or `max_time_s` passed
    (default: DEFAULT_MAX_TIME_S of the env's task). Success is checked at the plan rate.

    With `noise` (sim.perturb), the episode starts from a random pose and the executed chunks
    are perturbed (drawn from `seed`); `on_step` gets the executed action, whose
    `label_positions` hold the expert's own chunk."""
    if not (math.isfinite(plan_rate_hz) and plan_rate_hz > 0):
        raise ValueError(f'plan_rate_hz must be > 0, got {plan_rate_hz}')
    dt = env.physics_dt_s
    steps = max(1, int(round(1.0 / (plan_rate_hz * dt))))
    limit = DEFAULT_MAX_TIME_S.get(env.cfg.task, 15.0) if max_time_s is None else max_time_s
    wall0 = time.perf_counter()
    env.reset(seed)
    perturber = None
    if noise is not None and noise.active:
        perturber = Perturber(env.spec, noise, np.random.default_rng((seed, 0xDA27)))
        env.set_joint_positions(perturber.start_pose())
    follower = TrajectoryFollower(env.joint_names, env.q())
    expert.reset(env.task_state(), env.q())
    has_gripper = env.spec.gripper.width_max_m > 0
    first_success: float | None = None
    success_since: float | None = None
    num_actions = rejected = object_pushes = 0
    success_now = False
    while env.time_s < limit - 1e-9:
        t = env.time_s
        shove = perturber.object_push_due(t) if perturber is not None else None
        if shove is not None:
            object_pushes += int(env.nudge_object(*shove))
        q, dq = env.q(), env.dq()
        action = expert.act(t, q, env.task_state())
        if perturber is not None:
            action = perturber.perturb(action)
        num_actions += 1
        try:
            follower.set_trajectory(action.stamp_s, action.times_from_start_s,
                                    action.positions, None, t, q, dq)
        except ValueError:
            rejected += 1
        if has_gripper and action.gripper_width_m is not None:
            env.set_gripper_width(float(np.clip(action.gripper_width_m, 0.0,
                                                env.spec.gripper.width_max_m)))
        if on_step is not None:
            on_step(env, t, action)
        for _ in range(steps):
            q_des, dq_des, _ = follower.sample(env.time_s)
            env.set_joint_command(q_des, dq_des)
            env.step(1)
        success_now = env.success()
        if success_now and first_success is None:
            first_success = env.time_s
        success_since = (success_since if success_now and success_since is not None else
                         env.time_s if success_now else None)
        if stop_on_success and success_since is not None and \
                env.time_s >= success_since + post_success_s - 1e-9:
            break
    return EpisodeResult(
        seed=int(seed), success=first_success is not None, time_to_success_s=first_success,
        success_at_end=bool(success_now), duration_s=env.time_s,
        final_distance_m=float(env.task_state().distance_m), num_actions=num_actions,
        rejected_actions=rejected,
        expert_ik_error_m=float(getattr(expert, 'worst_ik_error_m', float('nan'))),
        wall_s=time.perf_counter() - wall0, object_pushes=object_pushes)


def evaluate_expert(robot: str | None, task: str, seeds: Sequence[int],
                    plan_rate_hz: float = 10.0, max_time_s: float | None = None,
                    expert_cfg: ExpertConfig | None = None, progress: bool = True,
                    physics_dt_s: float = 0.002) -> dict[str, Any]:
    """Success rate of `task`'s scripted expert over `seeds` (no rendering).

    Returns {robot, task, episodes, successes, success_rate, mean_time_to_success_s,
    failed_seeds, wall_s, results: [EpisodeResult as dict]}.
    """
    robot = robot or task_robot(task)
    env = SimEnv(SimConfig(robot=robot, task=task, physics_dt_s=physics_dt_s))
    expert = make_expert(task, env.spec, expert_cfg)
    results: list[EpisodeResult] = []
    wall0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(seeds), desc=f'{task} expert', unit='ep', file=sys.stderr)
    try:
        for seed in seeds:
            res = run_episode(env, expert, seed, plan_rate_hz, max_time_s)
            results.append(res)
            if bar is not None:
                ok = sum(r.success for r in results)
                bar.set_postfix(success=f'{ok}/{len(results)}')
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        env.close()
    times = [r.time_to_success_s for r in results if r.time_to_success_s is not None]
    n_ok = sum(r.success for r in results)
    return {
        'robot': robot, 'task': task, 'episodes': len(results), 'successes': n_ok,
        'success_rate': n_ok / len(results) if results else float('nan'),
        'mean_time_to_success_s': float(np.mean(times)) if times else None,
        'failed_seeds': [r.seed for r in results if not r.success],
        'wall_s': time.perf_counter() - wall0,
        'results': [asdict(r) for r in results],
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='vidplan experts',
        description="Measure a scripted expert's success rate in the embedded sim.")
    p.add_argument('--task', required=True, choices=sorted(TASKS))
    p.add_argument('--robot', default=None,
                   help="robot spec name (default: the task's robot)")
    p.add_argument('--episodes', type=int, default=100)
    p.add_argument('--seed-start', type=int, default=0, help='seeds are seed-start + 0..N-1')
    p.add_argument('--plan-rate-hz', type=float, default=10.0)
    p.add_argument('--max-time-s', type=float, default=None)
    p.add_argument('--json', default=None, help='also write the full results to this file')
    p.add_argument('--no-progress', action='store_true')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.robot is not None and args.robot != task_robot(args.task):
        print(f'task {args.task} is for robot {task_robot(args.task)}, not {args.robot}',
              file=sys.stderr)
        return 2
    if args.episodes < 1:
        print('--episodes must be >= 1', file=sys.stderr)
        return 2
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    out = evaluate_expert(args.robot, args.task, seeds, args.plan_rate_hz, args.max_time_s,
                          progress=not args.no_progress)
    mean_t = out['mean_time_to_success_s']
    print(f"{out['task']} ({out['robot']}): success {out['successes']}/{out['episodes']} = "
          f"{100 * out['success_rate']:.1f}%, mean time to success "
          f"{'-' if mean_t is None else f'{mean_t:.2f} s'}, wall {out['wall_s']:.1f} s")
    if out['failed_seeds']:
        print(f"failed seeds: {out['failed_seeds']}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
