"""The whole stack against the embedded sim in one process: deterministic closed-loop episodes.

Every ``replan_period_s`` of sim time the cameras are rendered, the pipeline replans from that
observation (sim time stands still while it computes, so results do not depend on the machine)
and the executor splices the plan in; at every physics step the executor gets the measured
state and its command drives the sim's joint PD, exactly as the executor node drives a robot.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.executor import Executor, ExecutorConfig
from vidplan_ros.runtime.pipeline import Pipeline, Replan
from vidplan_ros.sim.env import SimConfig, SimEnv

__all__ = ['EpisodeConfig', 'EpisodeOutcome', 'make_env', 'run_closed_loop']

# A hook that may change the video plan before grounding (corruptions): (replan index, z0,
# q0, plan) -> plan.
PlanHook = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# Called after each replan with the rendered frames and the replan (videos, logs).
ReplanHook = Callable[[SimEnv, dict[str, np.ndarray], Replan], None]


@dataclass(frozen=True)
class EpisodeConfig:
    """Closed-loop episode settings (sim time)."""

    max_time_s: float = 10.0
    replan_period_s: float = 0.2
    post_success_s: float = 0.5      # stop once the task has held success this long
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        require_positive(self, 'max_time_s', 'replan_period_s')
        require(self.post_success_s >= 0, 'post_success_s', self.post_success_s, '>= 0 s')


@dataclass(frozen=True)
class EpisodeOutcome:
    """One closed-loop episode."""

    seed: int
    method: str
    success: bool
    time_to_success_s: float | None
    duration_s: float
    final_distance_m: float
    replans: int
    rejected_plans: int
    rejected_reasons: dict[str, int]  # executor's reasons for the rejected plans
    mean_alignment: float             # rollout alignment of the grounded plans
    mean_dynamics_residual: float
    timings_ms: dict[str, list[float]]   # per stage, one entry per replan
    wall_s: float
    executor_modes: dict[str, int]


def make_env(pipeline: Pipeline, task: str, domain_randomization: bool = False) -> SimEnv:
    """A sim of ``task`` with the model's cameras rendered at the model's image size: the
    training data were rendered at that size, and rendering larger then resizing gives
    (slightly) different pixels."""
    size = pipeline.image_size
    return SimEnv(SimConfig(robot=pipeline.spec.name, task=task, cameras=pipeline.cameras,
                            image_width=size, image_height=size,
                            domain_randomization=domain_randomization))


def run_closed_loop(env: SimEnv, pipeline: Pipeline, seed: int, cfg: EpisodeConfig,
                    plan_hook: PlanHook | None = None,
                    on_replan: ReplanHook | None = None) -> EpisodeOutcome:
    """Reset ``env`` with ``seed`` and run the stack until success held or the time limit."""
    wall0 = time.perf_counter()
    env.reset(seed)
    pipeline.reset()
    ex = Executor(env.spec, cfg.executor)
    dt = env.physics_dt_s
    steps = max(1, int(round(cfg.replan_period_s / dt)))
    timings: dict[str, list[float]] = {'encode': [], 'imagine': [], 'ground': []}
    align, resid = [], []
    replans = rejected = 0
    first_success: float | None = None
    since: float | None = None
    ex.on_state(env.q(), env.dq(), env.time_s)
    while env.time_s < cfg.max_time_s - 1e-9:
        t, q = env.time_s, env.q()
        frames = {c: env.render(c) for c in pipeline.cameras}
        rp = _replan(pipeline, frames, q, t, replans, plan_hook)
        replans += 1
        if not ex.on_plan(rp.plan).accepted:
            rejected += 1
        for k, v in rp.timings_s.items():
            timings[k].append(1e3 * v)
        align.append(rp.result.rollout_alignment)
        resid.append(rp.result.dynamics_residual)
        if on_replan is not None:
            on_replan(env, frames, rp)
        for _ in range(steps):
            now = env.time_s
            ex.on_state(env.q(), env.dq(), now)
            cmd = ex.step(now)
            if cmd.mode != 'idle':
                env.set_joint_command(cmd.q_rad, cmd.dq_rad_s)
            env.step(1)
        ok = env.success()
        if ok and first_success is None:
            first_success = env.time_s
        since = (since if ok and since is not None else env.time_s if ok else None)
        if since is not None and env.time_s >= since + cfg.post_success_s - 1e-9:
            break
    status = ex.status()
    modes = {k[5:]: int(v) for k, v in status['counts'].items()  # type: ignore[union-attr]
             if k.startswith('mode_')}
    return EpisodeOutcome(
        seed=int(seed), method=pipeline.method, success=first_success is not None,
        time_to_success_s=first_success, duration_s=env.time_s,
        final_distance_m=float(env.task_state().distance_m), replans=replans,
        rejected_plans=rejected, rejected_reasons=dict(status['rejected']),  # type: ignore
        mean_alignment=_mean(align),
        mean_dynamics_residual=_mean(resid), timings_ms=timings,
        wall_s=time.perf_counter() - wall0, executor_modes=modes)


def _replan(pipeline: Pipeline, frames: dict[str, np.ndarray], q: np.ndarray, t: float,
            index: int, plan_hook: PlanHook | None) -> Replan:
    if plan_hook is None:
        return pipeline.replan(frames, q, t)
    return pipeline.replan(frames, q, t,
                           plan_hook=lambda z0, q0, plan: plan_hook(index, z0, q0, plan))


def _mean(x: list[float]) -> float:
    return float(np.mean(x)) if x else math.nan
