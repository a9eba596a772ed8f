"""The grounding node: latent state + video plan -> a feasible, timed joint plan (GVP-WM).

in   /vidplan/latent                      sensor_msgs/Image 32FC1 (V*C*h x w), stamp = observation
in   /vidplan/latent/joint_states         sensor_msgs/JointState, the same stamp
in   /vidplan/video_plan                  sensor_msgs/Image 32FC1 (H*V*C*h x w), the same stamp
out  /vidplan/grounded_plan               trajectory_msgs/JointTrajectory: the robot spec's
                                          joints, header.stamp = the observation's stamp,
                                          point k at time_from_start (k + 1) * plan_dt_s
out  /vidplan/grounded_plan/feasibility   std_msgs/Float64MultiArray [stamp_s, dynamics_residual,
                                          alignment] (published just before the plan)
out  /diagnostics                         ground ms p50, plan age, rate, residual, alignment,
                                          the inference backend (pipeline.backend_name), the
                                          inverse dynamics step gain in use (1 Hz)

Parameters: the grounding method's (config/grounding.yaml: `method`, one section per method,
the same file `load_config(GrounderConfig, ...)` reads) plus this node's own
(config/grounding_node.yaml: model, topics, threads, ...). The latent, its joint state and the
video plan of one observation are matched by stamp; the newest complete set is grounded and
older ones are skipped, as are sets older than `max_input_age_s`. With `warm_start` each
grounding starts from the previous solution shifted to the new stamp, as in the closed loop.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidplan_ros.core.baselines import GrounderConfig
from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.nodes.diagnostics import OK, WARN, Diagnostics, spin, with_callback_errors
from vidplan_ros.nodes.stage import (StageStats, StampMatcher, open_pipeline,
                                      pipeline_values, put_latent_joint_state,
                                      validate_backend)
from vidplan_ros.runtime.pipeline import PipelineConfig, require_step_gain
from vidplan_ros.transport import create_node
from vidplan_ros.transport import convert as cv


@dataclass(frozen=True)
class GroundingNodeConfig(GrounderConfig):
    """The grounding method's settings (GrounderConfig, config/grounding.yaml) + the node's."""

    model: str = 'franka_reach'              # model set under models/, or a directory
    latent_topic: str = '/vidplan/latent'    # + <latent_topic>/joint_states
    video_plan_topic: str = '/vidplan/video_plan'
    plan_topic: str = '/vidplan/grounded_plan'   # + <plan_topic>/feasibility
    # seed each grounding with the last solution shifted to the new stamp (the pipeline's
    # default: off, a cold start from inverse dynamics aligns better on the trained models)
    warm_start: bool = PipelineConfig.warm_start
    action_velocity_scale: float = PipelineConfig.action_velocity_scale  # box: x v_max x dt
    # ... intersected with mean +- this x std of the training actions (0: off)
    action_std_bound: float = PipelineConfig.action_std_bound
    # inverse dynamics' step gain (GVP-WM's cold start too); 0: the model set's calibration
    step_gain: float = PipelineConfig.step_gain
    max_input_age_s: float = 1.0             # skip observations older than this; 0 = off
    poll_rate_hz: float = 100.0              # how often the worker looks for a new set
    device: str = 'cpu'
    threads: int = 1                         # torch threads (the pipeline nodes share cores)
    # inference backend (runtime/backends.py): auto | tensorrt | onnxruntime_cuda |
    # onnxruntime | torch; auto takes the first usable of those in that order
    backend: str = PipelineConfig.backend
    precision: str = PipelineConfig.precision    # fp32 | fp16 (TensorRT engines)
    # the world model's gradient: torch autograd, or vjp_graph (an exported forward+VJP graph
    # run on the backend; needs onnxscript to export)
    world_model_grad: str = PipelineConfig.world_model_grad

    def __post_init__(self) -> None:
        super().__post_init__()
        validate_backend(self)
        require_positive(self, 'action_velocity_scale', 'poll_rate_hz')
        require(self.action_std_bound >= 0, 'action_std_bound', self.action_std_bound,
                'a number of standard deviations >= 0 (0: off)')
        require_step_gain(self.step_gain)
        require(self.max_input_age_s >= 0, 'max_input_age_s', self.max_input_age_s,
                'an age >= 0 s (0: off)')
        require(self.threads >= 0, 'threads', self.threads, 'an integer >= 0 (0: torch default)')

    def grounder(self) -> GrounderConfig:
        """The GrounderConfig part."""
        return GrounderConfig(**{f.name: getattr(self, f.name)
                                 for f in dataclasses.fields(GrounderConfig)})


class GroundingNode:
    def __init__(self, argv: list[str] | None = None) -> None:
        self.node = create_node('vidplan_grounding', argv)
        self.cfg = cfg = self.node.load_config(GroundingNodeConfig)
        self.pipeline = open_pipeline(self.node, PipelineConfig(
            model=cfg.model, device=cfg.device, threads=cfg.threads, backend=cfg.backend,
            precision=cfg.precision, world_model_grad=cfg.world_model_grad,
            action_velocity_scale=cfg.action_velocity_scale,
            action_std_bound=cfg.action_std_bound, warm_start=cfg.warm_start,
            step_gain=cfg.step_gain, grounding=cfg.grounder()))
        p = self.pipeline
        self.spec = p.spec
        self.plan_shape = (p.horizon, *p.latent_shape)
        self.last_stamp_ns = -1
        self.grounded = self.warm_starts = 0
        self.figures: dict[str, float] = {}
        self.stats = StageStats(self.node)
        self.match = StampMatcher(('latent', 'joint_state', 'video_plan'), self.stats)
        self.diag = Diagnostics(self.node, 'vidplan_grounding')
        n = self.node
        n.create_subscription('sensor_msgs/msg/Image', cfg.latent_topic,
                              lambda m: self._on_latent('latent', m, p.latent_shape))
        n.create_subscription('sensor_msgs/msg/JointState', cfg.latent_topic + '/joint_states',
                              self._on_joint_state)
        n.create_subscription('sensor_msgs/msg/Image', cfg.video_plan_topic,
                              lambda m: self._on_latent('video_plan', m, self.plan_shape))
        self.pub_feas = n.create_publisher('std_msgs/msg/Float64MultiArray',
                                           cfg.plan_topic + '/feasibility')
        self.pub_plan = n.create_publisher('trajectory_msgs/msg/JointTrajectory', cfg.plan_topic)
        # Grounding runs off the spinning thread: on rclpy a 0.1-0.3 s grounding inside a timer
        # callback starves the subscriptions (one message each per wait), their queues back up
        # and every plan came out ~1 s old (`vidplan launch sim --task push`: age p50 1.07 s,
        # the executor rejecting them as stale). Meanwhile the matcher keeps the newest set.
        # Publishing from the worker is safe: rclpy/publisher.py publishes under the handle's
        # context (rcl_publish is thread-safe); close() joins the worker before shutdown.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='vidplan_grounding')
        self._job: Future[None] | None = None
        n.create_timer(1.0 / cfg.poll_rate_hz, self._work)
        n.create_timer(1.0, self._publish_status)

    # --- inputs: convert, match by stamp ------------------------------------------------------
    def _on_latent(self, name: str, msg: Any, shape: tuple[int, ...]) -> None:
        try:
            value = cv.latent_array(msg, shape)
        except cv.MessageError as exc:
            self.stats.drop(f'bad_{name}', f'ignored a {name}: {exc}')
            return
        self.match.put(name, cv.time_to_ns(msg.header.stamp), value)

    def _on_joint_state(self, msg: Any) -> None:
        put_latent_joint_state(msg, self.spec.joint_names, self.stats, self.match)

    # --- work ---------------------------------------------------------------------------------
    def _work(self) -> None:
        if self._job is not None and not self._job.done():
            return
        taken = self.match.take()
        if taken is not None:
            self._job = self._pool.submit(self._ground_safely, *taken)

    def _ground_safely(self, stamp_ns: int, inputs: dict[str, Any]) -> None:
        try:
            self._ground(stamp_ns, inputs)
        except Exception as exc:  # noqa: BLE001 — a worker's error must not vanish in its Future
            self.stats.drop('grounding_failed', f'grounding failed: {type(exc).__name__}: {exc}')

    def _ground(self, stamp_ns: int, inputs: dict[str, Any]) -> None:
        stamp_s = stamp_ns * 1e-9
        self.last_stamp_ns = stamp_ns
        age_s = self.node.now_s() - stamp_s
        if self.cfg.max_input_age_s and age_s > self.cfg.max_input_age_s:
            self.stats.drop('stale', f'skipped an observation {age_s:.3f} s old (max_input_age_s='
                            f'{self.cfg.max_input_age_s}); check the clocks (use_sim_time)')
            return
        p = self.pipeline
        z0, q0, video_plan = inputs['latent'], inputs['joint_state'], inputs['video_plan']
        t0 = time.perf_counter()
        try:
            done = p.ground_plan(z0, q0, video_plan, stamp_s)
        except (VidplanError, ValueError, RuntimeError) as exc:
            self.stats.drop('grounding_failed', f'grounding failed: {type(exc).__name__}: {exc}')
            return
        ground_s = time.perf_counter() - t0
        plan = done.plan
        figures = (plan.dynamics_residual, plan.alignment)
        if not (np.all(np.isfinite(plan.positions_rad)) and np.all(np.isfinite(figures))):
            self.stats.drop('non_finite_plan', 'the grounded plan or its figures are not '
                            'finite; not published')
            return
        t = self.node.msg_type
        self.pub_feas.publish(t('std_msgs/msg/Float64MultiArray')(
            data=[stamp_s, float(figures[0]), float(figures[1])]))
        self.pub_plan.publish(cv.joint_trajectory_msg(
            t, stamp_ns, self.spec.joint_names, plan.times_from_stamp_s, plan.positions_rad,
            velocities=plan.velocities_rad_s))
        self.grounded += 1
        self.warm_starts += done.warm_started
        self.figures = {'dynamics_residual': figures[0], 'alignment': figures[1]}
        self.stats.latency('ground', ground_s)
        self.stats.latency('age', age_s + time.perf_counter() - t0)
        self.stats.event('plan')

    def _publish_status(self) -> None:
        drops = self.stats.new_drops()
        grounding = self.stats.rate_hz('plan') > 0
        level = OK if grounding and not drops else WARN
        message = ('grounding' if level == OK else f'{drops} inputs dropped' if drops
                   else 'waiting for a latent, its joint state and a video plan')
        values = {'model': self.pipeline.model_dir.name, **pipeline_values(self.pipeline),
                  'method': self.pipeline.method,
                  'step_gain': f'{self.pipeline.inverse_dynamics.step_gain:g}',
                  'grounded': self.grounded, 'warm_starts': self.warm_starts,
                  'last_stamp_s': f'{max(self.last_stamp_ns, 0) * 1e-9:.6f}',
                  **{k: f'{v:.6g}' for k, v in self.figures.items()},
                  **self.stats.values(('ground', 'age'), ('plan',))}
        level = with_callback_errors(self.node, level, values)
        self.diag.publish(self.node.now_ns(), {'grounding': (level, message, values)})

    def close(self) -> None:
        self._pool.shutdown(wait=True)      # no publish after the node is gone
        self.node.shutdown()


def main(argv: list[str] | None = None) -> int:
    return spin(GroundingNode(sys.argv if argv is None else argv))


if __name__ == '__main__':
    sys.exit(main())
