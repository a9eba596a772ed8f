"""The scripted expert as a stage of the loop, to say which stage limits a result.

- `ExpertPlanSource`: the expert's future as the video plan (GVP-WM's "expert video"
  condition). One expert runs through the episode as in collection (reset at its start, its
  phases on the episode's clock, each phase planned from where the arm is when it starts). At
  every replan it acts on the measured joints, then a copy of it drives a copy of the sim, which
  took the episode's exact state, for the planner's horizon, and the copy's cameras at
  `(k + 1) * plan_dt_s` are encoded by the model set's encoder. Grounding and the world model
  then run on a plan that is right by construction: what is left is their own error.
  (A fresh reactive expert per replan, `PhaseExpert.resume`, restarts every move from rest,
  so its first 0.2 s barely move, and it switches between the pre-pose and the approach at the
  boundary: its videos stalled the arm about 0.1 m from reach targets.)
- `ExpertChunks`: the expert's own trajectory chunks as grounded plans, straight into the
  executor (no perception, planner or grounding): the ceiling of the loop.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from vidplan_ros.core.executor import GroundedPlan
from vidplan_ros.sim.env import SimEnv
from vidplan_ros.sim.experts import make_expert
from vidplan_ros.sim.trajectory import TrajectoryFollower

__all__ = ['ExpertChunks', 'ExpertPlanSource', 'GroundingVsExpert', 'PLAN_SOURCES']

PLAN_SOURCES = ('learned', 'expert')
EXPERT_RATE_HZ = 10.0          # the rate the experts act at (as in collection)


class ExpertPlanSource:
    """`plan(env)` -> the expert's future latent video ``(H, V, C, h, w)`` from `env`'s state.

    `pipeline` supplies the encoder, cameras, image size, horizon and plan period."""

    def __init__(self, pipeline: object, env: SimEnv) -> None:
        self.pipeline = pipeline
        self.copy = SimEnv(env.cfg)
        self.expert = make_expert(env.cfg.task, env.spec)
        self.q_future_rad = np.zeros((0, len(env.joint_names)))  # (H, n) of the last plan
        self._last_t_s: float | None = None

    def plan(self, env: SimEnv) -> np.ndarray:
        p, c = self.pipeline, self.copy
        if self._last_t_s is None or env.time_s <= self._last_t_s:    # a new episode
            self.expert.reset(env.task_state(), env.q())
        self._last_t_s = env.time_s
        self.expert.act(env.time_s, env.q(), env.task_state())        # the episode's clock
        expert = copy.deepcopy(self.expert)
        c.copy_state_from(env)
        follower = TrajectoryFollower(c.joint_names, c.q())
        act_every = max(1, int(round(1.0 / (EXPERT_RATE_HZ * c.physics_dt_s))))
        frame_every = max(1, int(round(p.plan_dt_s / c.physics_dt_s)))
        has_gripper = c.spec.gripper.width_max_m > 0
        latents, qs = [], []
        step = 0
        while len(latents) < p.horizon:
            if step % act_every == 0:
                a = expert.act(c.time_s, c.q(), c.task_state())
                try:
                    follower.set_trajectory(a.stamp_s, a.times_from_start_s, a.positions, None,
                                            c.time_s, c.q(), c.dq())
                except ValueError:
                    pass            # keep the previous chunk, as the follower would
                if has_gripper and a.gripper_width_m is not None:
                    c.set_gripper_width(float(np.clip(a.gripper_width_m, 0.0,
                                                      c.spec.gripper.width_max_m)))
            q_des, dq_des, _ = follower.sample(c.time_s)
            c.set_joint_command(q_des, dq_des)
            c.step(1)
            step += 1
            if step % frame_every == 0:
                frames = {cam: c.render(cam) for cam in p.cameras}
                latents.append(p.encode(p.preprocess(frames)))
                qs.append(c.q())
        self.q_future_rad = np.stack(qs)
        return np.stack(latents).astype(np.float32)

    def close(self) -> None:
        self.copy.close()


class GroundingVsExpert:
    """Per replan, how the grounded joint plan compares with the expert's own joints in the
    future it rendered: `gains` (the grounded displacement projected on the expert's, 1 =
    as far as the expert went, < 1 = short of it) and `errors_rad` (RMS over the horizon and
    joints). An `on_replan` hook of `run_closed_loop`; `then` is called after it."""

    def __init__(self, source: ExpertPlanSource, then: object = None) -> None:
        self.source, self.then = source, then
        self.gains: list[float] = []
        self.errors_rad: list[float] = []

    def __call__(self, env: SimEnv, frames: dict[str, np.ndarray], rp: object) -> None:
        expert = self.source.q_future_rad
        grounded = np.asarray(rp.plan.positions_rad)[1:]          # after the measured row
        n = min(len(expert), len(grounded))
        if n:
            q = env.q()
            d_exp, d_gnd = expert[:n] - q, grounded[:n] - q
            norm = float((d_exp ** 2).sum())
            if norm > 1e-10:
                self.gains.append(float((d_gnd * d_exp).sum()) / norm)
            self.errors_rad.append(float(np.sqrt(((grounded[:n] - expert[:n]) ** 2).mean())))
        if self.then is not None:
            self.then(env, frames, rp)

    def summary(self) -> dict[str, float]:
        """Median gain and mean error over the episode's replans (NaN when none)."""
        return {'expert_step_gain': float(np.median(self.gains)) if self.gains else math.nan,
                'expert_plan_error_rad': float(np.mean(self.errors_rad))
                if self.errors_rad else math.nan}


class ExpertChunks:
    """The expert acting on the episode itself; `plan(env)` -> its chunk as a GroundedPlan
    (the measured joints at the stamp, then the chunk's points)."""

    def __init__(self, env: SimEnv) -> None:
        self.expert = make_expert(env.cfg.task, env.spec)

    def reset(self, env: SimEnv) -> None:
        self.expert.reset(env.task_state(), env.q())

    def plan(self, env: SimEnv) -> GroundedPlan:
        t, q = env.time_s, env.q()
        a = self.expert.act(t, q, env.task_state())
        if env.spec.gripper.width_max_m > 0 and a.gripper_width_m is not None:
            env.set_gripper_width(float(np.clip(a.gripper_width_m, 0.0,
                                                env.spec.gripper.width_max_m)))
        times = np.concatenate([[0.0], a.times_from_start_s])
        return GroundedPlan(stamp_s=float(t), times_from_stamp_s=times,
                            positions_rad=np.vstack([q, a.positions]), velocities_rad_s=None,
                            dynamics_residual=0.0, alignment=1.0, source='expert')
