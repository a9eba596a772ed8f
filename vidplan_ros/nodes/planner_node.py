"""The planner node: the latent state -> a latent video plan of the next H frames, and a preview.

in   /vidplan/latent                 sensor_msgs/Image 32FC1 (V*C*h x w), stamp = observation
in   /vidplan/latent/joint_states    sensor_msgs/JointState, the same stamp (paired exactly)
out  /vidplan/video_plan             sensor_msgs/Image 32FC1, H*V*C*h rows x w, the same stamp;
                                     rows time-major: plan[k] is (k + 1) * plan_dt_s ahead
out  /vidplan/plan_preview           sensor_msgs/Image rgb8 (latched): the decoded plan, views
                                     stacked vertically, time left to right (every
                                     `preview_every` plans; 0 = never)
out  /diagnostics                    imagine / preview ms p50, plan rate, drops, the inference
                                     backend (pipeline.backend_name) (1 Hz)

The newest latent with its joint state is planned from; older unplanned ones are skipped (the
planner plans from the freshest observation). Replan k uses the pipeline's noise k (noise_seed +
k), so a run is reproducible. A latent of the wrong shape (another model set), non-finite
values or a joint state without the robot's joints is counted, warned about and skipped.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.nodes.diagnostics import OK, WARN, Diagnostics, spin, with_callback_errors
from vidplan_ros.nodes.stage import (StageStats, StampMatcher, open_pipeline,
                                      pipeline_values, put_latent_joint_state,
                                      validate_backend)
from vidplan_ros.runtime.pipeline import PipelineConfig
from vidplan_ros.transport import QOS_LATCHED, create_node
from vidplan_ros.transport import convert as cv


@dataclass(frozen=True)
class PlannerNodeConfig:
    model: str = 'franka_reach'          # model set under models/, or a directory
    latent_topic: str = '/vidplan/latent'    # + <latent_topic>/joint_states
    plan_topic: str = '/vidplan/video_plan'
    preview_topic: str = '/vidplan/plan_preview'
    preview_every: int = 1               # publish a preview every this many plans; 0 = never
    noise_seed: int = 0                  # replan k samples with noise seed noise_seed + k
    max_input_age_s: float = 1.0         # skip latents older than this (node clock); 0 = off
    poll_rate_hz: float = 100.0          # how often the worker looks for a new latent
    device: str = 'cpu'
    threads: int = 1                     # torch threads (the pipeline nodes share cores)
    # inference backend (runtime/backends.py): auto | tensorrt | onnxruntime_cuda |
    # onnxruntime | torch; auto takes the first usable of those in that order
    backend: str = PipelineConfig.backend
    precision: str = PipelineConfig.precision    # fp32 | fp16 (TensorRT engines)

    def __post_init__(self) -> None:
        validate_backend(self)
        require(self.preview_every >= 0, 'preview_every', self.preview_every,
                'a plan count >= 0 (0: no preview)')
        require(self.max_input_age_s >= 0, 'max_input_age_s', self.max_input_age_s,
                'an age >= 0 s (0: off)')
        require_positive(self, 'poll_rate_hz')
        require(self.threads >= 0, 'threads', self.threads, 'an integer >= 0 (0: torch default)')


def tile_plan_frames(frames: np.ndarray) -> np.ndarray:
    """Decoded plan frames (H, V, S, S, 3) -> one (V*S, H*S, 3) picture: views stacked
    vertically, time left to right."""
    h, v, s, _, c = frames.shape
    return np.ascontiguousarray(frames.transpose(1, 2, 0, 3, 4).reshape(v * s, h * s, c))


class PlannerNode:
    def __init__(self, argv: list[str] | None = None) -> None:
        self.node = create_node('vidplan_planner', argv)
        self.cfg = cfg = self.node.load_config(PlannerNodeConfig)
        self.pipeline = open_pipeline(self.node, PipelineConfig(
            model=cfg.model, device=cfg.device, threads=cfg.threads, noise_seed=cfg.noise_seed,
            backend=cfg.backend, precision=cfg.precision))
        self.spec = self.pipeline.spec
        self.last_stamp_ns = -1
        self.replans = 0
        self.stats = StageStats(self.node)
        self.match = StampMatcher(('joint_state', 'latent'), self.stats)  # latent: last
        self.diag = Diagnostics(self.node, 'vidplan_planner')
        n = self.node
        n.create_subscription('sensor_msgs/msg/Image', cfg.latent_topic, self._on_latent)
        n.create_subscription('sensor_msgs/msg/JointState', cfg.latent_topic + '/joint_states',
                              self._on_joint_state)
        self.pub_plan = n.create_publisher('sensor_msgs/msg/Image', cfg.plan_topic)
        self.pub_preview = (n.create_publisher('sensor_msgs/msg/Image', cfg.preview_topic,
                                               QOS_LATCHED) if cfg.preview_every else None)
        n.create_timer(1.0 / cfg.poll_rate_hz, self._work)
        n.create_timer(1.0, self._publish_status)

    # --- inputs: convert, pair by stamp -------------------------------------------------------
    def _on_latent(self, msg: Any) -> None:
        try:
            z = cv.latent_array(msg, self.pipeline.latent_shape)
        except cv.MessageError as exc:
            self.stats.drop('bad_latent', f'ignored a latent: {exc}')
            return
        self.match.put('latent', cv.time_to_ns(msg.header.stamp), z)

    def _on_joint_state(self, msg: Any) -> None:
        put_latent_joint_state(msg, self.spec.joint_names, self.stats, self.match)

    # --- work ---------------------------------------------------------------------------------
    def _work(self) -> None:
        taken = self.match.take()
        if taken is None:
            return
        stamp_ns, inputs = taken
        z0, q0 = inputs['latent'], inputs['joint_state']
        self.last_stamp_ns = stamp_ns
        age_s = self.node.now_s() - stamp_ns * 1e-9
        if self.cfg.max_input_age_s and age_s > self.cfg.max_input_age_s:
            self.stats.drop('stale', f'skipped a latent {age_s:.3f} s old (max_input_age_s='
                            f'{self.cfg.max_input_age_s}); check the clocks (use_sim_time)')
            return
        t0 = time.perf_counter()
        plan = self.pipeline.imagine(z0, q0, self.pipeline.noise(self.replans))
        t1 = time.perf_counter()
        self.replans += 1
        if not np.all(np.isfinite(plan)):
            self.stats.drop('non_finite_plan', 'the planner produced non-finite values; not '
                            'published')
            return
        t = self.node.msg_type
        self.pub_plan.publish(cv.latent_msg(t, stamp_ns, plan, 'video_plan'))
        self.stats.latency('imagine', t1 - t0)
        self.stats.latency('age', age_s + time.perf_counter() - t0)
        self.stats.event('plan')
        every = self.cfg.preview_every
        if self.pub_preview is not None and (self.replans - 1) % every == 0:
            t2 = time.perf_counter()
            tiled = tile_plan_frames(self.pipeline.decode(plan))
            self.pub_preview.publish(cv.image_msg(t, stamp_ns, 'plan_preview', tiled, 'rgb8'))
            self.stats.latency('preview', time.perf_counter() - t2)

    def _publish_status(self) -> None:
        drops = self.stats.new_drops()
        planning = self.stats.rate_hz('plan') > 0
        level = OK if planning and not drops else WARN
        message = ('planning' if level == OK else f'{drops} inputs dropped' if drops
                   else 'waiting for latents')
        values = {'model': self.pipeline.model_dir.name, **pipeline_values(self.pipeline),
                  'horizon': self.pipeline.horizon,
                  'plan_dt_s': self.pipeline.plan_dt_s, 'replans': self.replans,
                  'last_stamp_s': f'{max(self.last_stamp_ns, 0) * 1e-9:.6f}',
                  **self.stats.values(('imagine', 'preview', 'age'), ('plan',))}
        level = with_callback_errors(self.node, level, values)
        self.diag.publish(self.node.now_ns(), {'planner': (level, message, values)})

    def close(self) -> None:
        self.node.shutdown()


def main(argv: list[str] | None = None) -> int:
    return spin(PlannerNode(sys.argv if argv is None else argv))


if __name__ == '__main__':
    sys.exit(main())
