"""The whole stack against the embedded sim in one process: closed-loop episodes.

Every ``replan_period_s`` of sim time the cameras are rendered, the pipeline replans from that
observation and the executor splices the plan in; at every physics step the executor gets the
measured state and its command drives the sim's joint PD, exactly as the executor node drives a
robot. Latency (``EpisodeConfig.latency``):

- ``frozen`` (default): sim time stands still while the stack computes, so an episode depends
  only on the method and the seed, not on the machine (reproducible comparisons);
- ``real``: the sim keeps running on the previous plan for the replan's measured compute time
  (encode + imagine + ground) before the new plan reaches the executor, and the next
  observation comes when both the period and the compute have passed, as on a robot;
- ``fixed``: the same with a fixed ``latency_fixed_s`` per replan (machine-independent).

``run_expert_executor`` feeds the scripted expert's chunks straight to the executor instead
(the loop's ceiling; ``eval.expert_plan``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vidplan_ros.core.config import require, require_one_of, require_positive
from vidplan_ros.core.executor import Executor, ExecutorConfig, GroundedPlan
from vidplan_ros.eval.expert_plan import ExpertChunks
from vidplan_ros.runtime.pipeline import Pipeline, Replan
from vidplan_ros.sim.env import SimConfig, SimEnv

__all__ = ['EpisodeConfig', 'EpisodeOutcome', 'LATENCIES', 'make_env', 'run_closed_loop',
           'run_expert_executor']

LATENCIES = ('frozen', 'real', 'fixed')

# A hook that may change the video plan before grounding (corruptions): (replan index, z0,
# q0, plan) -> plan.
PlanHook = Callable[[int, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# Called after each replan with the rendered frames and the replan (videos, logs).
ReplanHook = Callable[[SimEnv, dict[str, np.ndarray], Replan], None]
# Makes the video plan (H, V, C, h, w) from the episode's state instead of the planner.
PlanSource = Callable[[SimEnv], np.ndarray]


@dataclass(frozen=True)
class EpisodeConfig:
    """Closed-loop episode settings (sim time)."""

    max_time_s: float = 10.0
    replan_period_s: float = 0.2
    post_success_s: float = 0.5      # stop once the task has held success this long
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    latency: str = 'frozen'          # frozen | real | fixed (module docstring)
    latency_fixed_s: float = 0.0     # the charge per replan with latency = fixed

    def __post_init__(self) -> None:
        require_positive(self, 'max_time_s', 'replan_period_s')
        require(self.post_success_s >= 0, 'post_success_s', self.post_success_s, '>= 0 s')
        require_one_of(self, 'latency', LATENCIES)
        require(math.isfinite(self.latency_fixed_s) and self.latency_fixed_s >= 0,
                'latency_fixed_s', self.latency_fixed_s, 'a time >= 0 s')

    def charge_s(self, timings_s: dict[str, float]) -> float:
        """Sim time that passes while a replan with these stage timings computes."""
        if self.latency == 'real':
            return float(sum(timings_s.get(k, 0.0) for k in ('encode', 'imagine', 'ground')))
        return self.latency_fixed_s if self.latency == 'fixed' else 0.0


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
    # the task's distance (tip-target, cube-goal) at its smallest, checked at the plan rate:
    # how near a failed episode came (nan in results written before it existed)
    closest_distance_m: float = math.nan


def make_env(pipeline: Pipeline, task: str, domain_randomization: bool = False) -> SimEnv:
    """A sim of ``task`` with the model's cameras rendered at the model's image size: the
    training data were rendered at that size, and rendering larger then resizing gives
    (slightly) different pixels."""
    size = pipeline.image_size
    return SimEnv(SimConfig(robot=pipeline.spec.name, task=task, cameras=pipeline.cameras,
                            image_width=size, image_height=size,
                            domain_randomization=domain_randomization))


class _Episode:
    """The executor driving the sim between replans, and the episode's bookkeeping."""

    def __init__(self, env: SimEnv, seed: int, cfg: EpisodeConfig) -> None:
        self.wall0 = time.perf_counter()
        env.reset(seed)
        self.env, self.seed, self.cfg = env, int(seed), cfg
        self.ex = Executor(env.spec, cfg.executor)
        self.dt = env.physics_dt_s
        self.steps = max(1, int(round(cfg.replan_period_s / self.dt)))
        self.replans = self.rejected = 0
        self.first_success: float | None = None
        self._since: float | None = None
        self.closest_m = float(env.task_state().distance_m)
        self.ex.on_state(env.q(), env.dq(), env.time_s)

    @property
    def running(self) -> bool:
        return self.env.time_s < self.cfg.max_time_s - 1e-9

    def apply(self, plan: GroundedPlan, charge_s: float = 0.0) -> bool:
        """Let `charge_s` of sim time pass on the current plan (latency), hand the executor
        `plan`, then run out the replan period. False once the task has held success."""
        env = self.env
        delay = min(int(round(charge_s / self.dt)), int(round(self.cfg.max_time_s / self.dt)))
        self._advance(delay)
        self.replans += 1
        if not self.ex.on_plan(plan).accepted:
            self.rejected += 1
        self._advance(max(self.steps - delay, 0))
        ok = env.success()
        self.closest_m = min(self.closest_m, float(env.task_state().distance_m))
        if ok and self.first_success is None:
            self.first_success = env.time_s
        self._since = (self._since if ok and self._since is not None
                       else env.time_s if ok else None)
        return not (self._since is not None and
                    env.time_s >= self._since + self.cfg.post_success_s - 1e-9)

    def _advance(self, n: int) -> None:
        env, ex = self.env, self.ex
        for _ in range(n):
            now = env.time_s
            ex.on_state(env.q(), env.dq(), now)
            cmd = ex.step(now)
            if cmd.mode != 'idle':
                env.set_joint_command(cmd.q_rad, cmd.dq_rad_s)
            env.step(1)

    def outcome(self, method: str, align: list[float], resid: list[float],
                timings: dict[str, list[float]]) -> EpisodeOutcome:
        status = self.ex.status()
        modes = {k[5:]: int(v) for k, v in status['counts'].items()  # type: ignore[union-attr]
                 if k.startswith('mode_')}
        return EpisodeOutcome(
            seed=self.seed, method=method, success=self.first_success is not None,
            time_to_success_s=self.first_success, duration_s=self.env.time_s,
            final_distance_m=float(self.env.task_state().distance_m), replans=self.replans,
            rejected_plans=self.rejected,
            rejected_reasons=dict(status['rejected']),  # type: ignore[arg-type]
            mean_alignment=_mean(align), mean_dynamics_residual=_mean(resid),
            timings_ms=timings, wall_s=time.perf_counter() - self.wall0,
            executor_modes=modes, closest_distance_m=self.closest_m)


def run_closed_loop(env: SimEnv, pipeline: Pipeline, seed: int, cfg: EpisodeConfig,
                    plan_hook: PlanHook | None = None,
                    on_replan: ReplanHook | None = None,
                    plan_source: PlanSource | None = None) -> EpisodeOutcome:
    """Reset ``env`` with ``seed`` and run the stack until success held or the time limit.

    ``plan_source(env)``, if given, makes the video plan in place of the planner (e.g. the
    expert's future, ``eval.expert_plan``); its time is recorded as ``plan_source`` and not
    charged as latency."""
    ep = _Episode(env, seed, cfg)
    pipeline.reset()
    timings: dict[str, list[float]] = {'encode': [], 'imagine': [], 'ground': []}
    if plan_source is not None:
        timings['plan_source'] = []
    align, resid = [], []
    while ep.running:
        t, q = env.time_s, env.q()
        frames = {c: env.render(c) for c in pipeline.cameras}
        video_plan = None
        if plan_source is not None:
            t0 = time.perf_counter()
            video_plan = plan_source(env)
            timings['plan_source'].append(1e3 * (time.perf_counter() - t0))
        rp = _replan(pipeline, frames, q, t, ep.replans, plan_hook, video_plan)
        for k, v in rp.timings_s.items():
            timings[k].append(1e3 * v)
        align.append(rp.result.rollout_alignment)
        resid.append(rp.result.dynamics_residual)
        if on_replan is not None:
            on_replan(env, frames, rp)
        if not ep.apply(rp.plan, cfg.charge_s(rp.timings_s)):
            break
    return ep.outcome(pipeline.method, align, resid, timings)


def run_expert_executor(env: SimEnv, chunks: ExpertChunks, seed: int, cfg: EpisodeConfig
                        ) -> EpisodeOutcome:
    """The scripted expert's chunks as the grounded plans, every replan period, through the
    same executor: what the loop achieves when every stage upstream is perfect."""
    ep = _Episode(env, seed, cfg)
    chunks.reset(env)
    while ep.running:
        if not ep.apply(chunks.plan(env), cfg.latency_fixed_s if cfg.latency == 'fixed'
                        else 0.0):
            break
    return ep.outcome('expert_executor', [], [], {})


def _replan(pipeline: Pipeline, frames: dict[str, np.ndarray], q: np.ndarray, t: float,
            index: int, plan_hook: PlanHook | None,
            video_plan: np.ndarray | None = None) -> Replan:
    if plan_hook is None:
        return pipeline.replan(frames, q, t, video_plan=video_plan)
    return pipeline.replan(frames, q, t, video_plan=video_plan,
                           plan_hook=lambda z0, q0, plan: plan_hook(index, z0, q0, plan))


def _mean(x: list[float]) -> float:
    return float(np.mean(x)) if x else math.nan
