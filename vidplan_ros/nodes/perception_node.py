"""The perception node: synchronised camera frames + joint states -> the latent state.

in   /cameras/<cam>/image_raw               sensor_msgs/Image rgb8|bgr8|mono8 (image_transport raw)
in   /cameras/<cam>/image_raw/compressed    sensor_msgs/CompressedImage JPEG|PNG (... compressed)
in   <joint_states_topic> (/joint_states)   sensor_msgs/JointState, joints matched by name
 or  <lowstate_topic> (the spec's, /lowstate) unitree_hg/LowState, q from the robot spec's motor
                                            slots (joint_source lowstate; stamped on receipt)
out  /vidplan/latent                        sensor_msgs/Image 32FC1, V*C*h rows x w columns
out  /vidplan/latent/joint_states           sensor_msgs/JointState, the robot spec's joints
out  /diagnostics                           decode/encode ms p50, latent rate, drops, the
                                            inference backend (pipeline.backend_name) (1 Hz)

As soon as a set of frames is complete (one per camera within `max_skew_s` of the first
camera's frame) the newest such set is centre-cropped and resized, encoded, and published with
the first camera's stamp (the observation's stamp); sets closer than 0.9 / `rate_hz` in stamp
time to the last one used are skipped, which bounds the encode rate without adding latency.
The joint positions published with it are interpolated at that stamp (or the nearest sample
within `joint_max_skew_s`). `cameras` names the topics feeding the model's views, in the
model's camera order. Bad input (an
unsupported encoding, an empty or corrupt picture, a NaN joint, a camera that stops) is counted,
warned about (rate-limited) and reported in /diagnostics; the node keeps running.
"""

from __future__ import annotations

import bisect
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.nodes.diagnostics import OK, WARN, Diagnostics, spin, with_callback_errors
from vidplan_ros.nodes.stage import (StageStats, open_pipeline, pipeline_values,
                                      validate_backend)
from vidplan_ros.runtime.pipeline import PipelineConfig
from vidplan_ros.transport import QOS_SENSOR_DATA, create_node
from vidplan_ros.transport import convert as cv

_FRAMES_KEPT = 16          # per camera: about 0.5 s at 30 Hz to find a synchronised set in
_JOINTS_KEPT_S = 2.0
_JOINT_WAIT_S = 0.5        # frames wait for a later joint state while the newest is this recent
_MISSING_S = 0.5           # a camera whose newest frame is this much older than another's


@dataclass(frozen=True)
class PerceptionNodeConfig:
    model: str = 'franka_reach'          # model set under models/, or a directory
    cameras: tuple[str, ...] = ()        # topic names feeding the model's views; () = its own
    image_transport: str = 'raw'         # raw: .../image_raw; compressed: .../compressed
    joint_source: str = ''               # joint_states | lowstate; '' = the robot spec's
                                         # (lowstate for robots commanded over unitree_hg)
    joint_states_topic: str = '/joint_states'
    lowstate_topic: str = ''             # '' = the robot spec's (G1: /lowstate = rt/lowstate)
    latent_topic: str = '/vidplan/latent'    # + <latent_topic>/joint_states
    max_skew_s: float = 0.05             # frames of one observation lie within this
    joint_max_skew_s: float = 0.05       # nearest joint sample this close if none brackets
    rate_hz: float = 5.0                 # most latents per second (of observation time)
    poll_rate_hz: float = 100.0          # how often the worker looks for a complete set
    device: str = 'cpu'
    threads: int = 1                     # torch threads (the pipeline nodes share cores)
    # inference backend (runtime/backends.py): auto | tensorrt | onnxruntime_cuda |
    # onnxruntime | torch; auto takes the first usable of those in that order
    backend: str = PipelineConfig.backend
    precision: str = PipelineConfig.precision    # fp32 | fp16 (TensorRT engines)

    def __post_init__(self) -> None:
        validate_backend(self)
        require(self.image_transport in ('raw', 'compressed'), 'image_transport',
                self.image_transport, 'raw or compressed')
        require(self.joint_source in ('', 'joint_states', 'lowstate'), 'joint_source',
                self.joint_source, "'' (the robot's), joint_states or lowstate")
        require_positive(self, 'max_skew_s', 'joint_max_skew_s', 'rate_hz', 'poll_rate_hz')
        require(self.threads >= 0, 'threads', self.threads, 'an integer >= 0 (0: torch default)')
        require(len(set(self.cameras)) == len(self.cameras), 'cameras', self.cameras,
                'distinct camera names')


class PerceptionNode:
    def __init__(self, argv: list[str] | None = None) -> None:
        self.node = create_node('vidplan_perception', argv)
        self.cfg = cfg = self.node.load_config(PerceptionNodeConfig)
        self.pipeline = open_pipeline(self.node, PipelineConfig(
            model=cfg.model, device=cfg.device, threads=cfg.threads, backend=cfg.backend,
            precision=cfg.precision))
        self.spec = self.pipeline.spec
        views = self.pipeline.cameras
        self.cameras = cfg.cameras or views
        if len(self.cameras) != len(views):
            from vidplan_ros.core.errors import VidplanError
            raise VidplanError(f'cameras {list(self.cameras)}: the model set '
                               f'{self.pipeline.model_dir.name} has {len(views)} views '
                               f'{list(views)}; name one camera per view, in that order')
        self.frames: dict[str, deque[tuple[int, Any]]] = {
            c: deque(maxlen=_FRAMES_KEPT) for c in self.cameras}
        self.joint_stamps: list[int] = []
        self.joint_q: list[np.ndarray] = []
        self.last_frame_ns: dict[str, int] = {}
        self.missing: set[str] = set()       # cameras reported missing (warned once each)
        self.last_stamp_ns = -1
        self.stats = StageStats(self.node)
        self.diag = Diagnostics(self.node, 'vidplan_perception')
        n = self.node
        compressed = cfg.image_transport == 'compressed'
        for cam in self.cameras:
            topic = f'/cameras/{cam}/image_raw' + ('/compressed' if compressed else '')
            n.create_subscription(
                'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image',
                topic, lambda m, c=cam: self._on_frame(c, m), QOS_SENSOR_DATA)
        i = self.spec.interfaces
        self.joint_source = cfg.joint_source or (
            'lowstate' if i.unitree else 'joint_states')
        if self.joint_source == 'lowstate':
            self.joint_topic = cfg.lowstate_topic or i.lowstate_topic or '/lowstate'
            self.slots = np.asarray(self.spec.unitree.motor_indices)
            n.create_subscription('unitree_hg/msg/LowState', self.joint_topic,
                                  self._on_lowstate, QOS_SENSOR_DATA)
        else:
            self.joint_topic = cfg.joint_states_topic
            n.create_subscription('sensor_msgs/msg/JointState', cfg.joint_states_topic,
                                  self._on_joint_state, QOS_SENSOR_DATA)
        self.pub_latent = n.create_publisher('sensor_msgs/msg/Image', cfg.latent_topic)
        self.pub_joints = n.create_publisher('sensor_msgs/msg/JointState',
                                             cfg.latent_topic + '/joint_states')
        self.min_interval_ns = int(0.9e9 / cfg.rate_hz)
        self.no_set_since_s = time.monotonic()
        n.create_timer(1.0 / cfg.poll_rate_hz, self._tick)
        n.create_timer(1.0, self._publish_status)

    # --- inputs: store, convert the cheap parts ---------------------------------------------
    def _stamp_ns(self, msg: Any) -> int:
        return cv.time_to_ns(msg.header.stamp) or self.node.now_ns()  # unstamped: on receipt

    def _on_frame(self, cam: str, msg: Any) -> None:
        stamp = self._stamp_ns(msg)
        self.frames[cam].append((stamp, msg))
        self.last_frame_ns[cam] = max(stamp, self.last_frame_ns.get(cam, stamp))
        self.stats.event(f'frames_{cam}')

    def _on_joint_state(self, msg: Any) -> None:
        try:
            # by name, or by the spec's joint_aliases (Isaac's panda_* for an FR3 model set)
            q, _ = cv.joint_state_arrays(msg, self.spec.names_in(msg.name))
        except cv.MessageError as exc:
            self.stats.drop('joint_state', f'ignored a joint state: {exc}', throttle_s=10.0)
            return
        if not np.all(np.isfinite(q)):
            self.stats.drop('joint_state', f'ignored a joint state with non-finite positions '
                            f'{q.tolist()}')
            return
        self._add_joints(self._stamp_ns(msg), q)

    def _on_lowstate(self, msg: Any) -> None:
        """q of the spec's joints from their LowState motor slots; LowState has no header, so
        the sample is stamped on receipt (the node's clock: /clock under use_sim_time)."""
        from vidplan_ros.transport.unitree_crc import lowstate_crc_ok
        if not lowstate_crc_ok(msg):
            self.stats.drop('joint_state', 'ignored a LowState with a wrong CRC',
                            throttle_s=10.0)
            return
        try:
            q = cv.lowstate_arrays(msg)['q'][self.slots]
        except cv.MessageError as exc:
            self.stats.drop('joint_state', f'ignored a LowState: {exc}', throttle_s=10.0)
            return
        if not np.all(np.isfinite(q)):
            self.stats.drop('joint_state', f'ignored a LowState with non-finite positions '
                            f'{q.tolist()}', throttle_s=10.0)
            return
        self._add_joints(self.node.now_ns(), q)

    def _add_joints(self, stamp: int, q: np.ndarray) -> None:
        i = bisect.bisect(self.joint_stamps, stamp)
        self.joint_stamps.insert(i, stamp)
        self.joint_q.insert(i, q)
        cut = bisect.bisect(self.joint_stamps, self.joint_stamps[-1] - int(_JOINTS_KEPT_S * 1e9))
        if cut:
            del self.joint_stamps[:cut], self.joint_q[:cut]

    # --- synchronisation ----------------------------------------------------------------------
    def _synced_set(self) -> tuple[int, dict[str, tuple[int, Any]]] | None:
        """The newest unused set: per camera the frame nearest the first camera's frame, at
        least min_interval_ns after the last set used."""
        skew_ns = int(self.cfg.max_skew_s * 1e9)
        first, others = self.cameras[0], self.cameras[1:]
        for stamp, msg in reversed(self.frames[first]):
            if self.last_stamp_ns >= 0 and stamp < self.last_stamp_ns + self.min_interval_ns:
                return None
            chosen = {first: (stamp, msg)}
            for cam in others:
                near = min(self.frames[cam], key=lambda e, s=stamp: abs(e[0] - s), default=None)
                if near is None or abs(near[0] - stamp) > skew_ns:
                    break
                chosen[cam] = near
            else:
                return stamp, chosen
        return None

    def _missing_cameras(self) -> list[str]:
        """Cameras whose newest frame (usable or not) is more than _MISSING_S older than the
        newest frame of any camera, or that sent none."""
        if not self.last_frame_ns:
            return list(self.cameras)
        latest = max(self.last_frame_ns.values())
        return [c for c in self.cameras
                if latest - self.last_frame_ns.get(c, -(2 ** 62)) > _MISSING_S * 1e9]

    def _joints_at(self, stamp_ns: int) -> np.ndarray | None:
        """Joint positions at `stamp_ns`: interpolated between samples around it that are within
        joint_max_skew_s, else the nearest such sample; None if there is none."""
        ts, skew_ns = self.joint_stamps, int(self.cfg.joint_max_skew_s * 1e9)
        i = bisect.bisect_left(ts, stamp_ns)
        if i < len(ts) and ts[i] == stamp_ns:
            return self.joint_q[i]
        near = [k for k in (i - 1, i) if 0 <= k < len(ts) and abs(ts[k] - stamp_ns) <= skew_ns]
        if len(near) == 2:
            w = (stamp_ns - ts[i - 1]) / (ts[i] - ts[i - 1])
            return (1.0 - w) * self.joint_q[i - 1] + w * self.joint_q[i]
        if near:
            return self.joint_q[near[0]]
        return None

    def _decode(self, msg: Any) -> np.ndarray:
        if self.cfg.image_transport == 'compressed':
            return cv.compressed_image_array(msg)
        return cv.image_array(msg, 'rgb8')

    # --- work ---------------------------------------------------------------------------------
    def _tick(self) -> None:
        found = self._synced_set()
        if found is None:
            missing = set(self._missing_cameras()) if self.last_frame_ns else set()
            if missing - self.missing:  # count and warn when a camera goes missing
                self.stats.drop('missing_camera', f'no frame from camera(s) {sorted(missing)} '
                                f'for {_MISSING_S} s while the others send frames',
                                throttle_s=1.0, throttle_key=f'missing {sorted(missing)}')
            elif (not missing and len(self.last_frame_ns) == len(self.cameras)
                  and time.monotonic() - self.no_set_since_s > 2.0):
                self.stats.drop('unsynchronised', f'every camera sends frames, but no set lies '
                                f'within max_skew_s={self.cfg.max_skew_s} s; are the cameras '
                                'triggered together and stamped on one clock?', throttle_s=5.0)
                self.no_set_since_s = time.monotonic()
            self.missing = missing
            return
        self.missing = set()
        self.no_set_since_s = time.monotonic()
        stamp_ns, chosen = found
        q = self._joints_at(stamp_ns)
        if q is None:
            ts = self.joint_stamps
            if not ts:
                self.node.logger.warning(f'waiting for joint states on '
                                         f'{self.joint_topic}', throttle_s=5.0)
                return
            if stamp_ns - int(_JOINT_WAIT_S * 1e9) <= ts[-1] <= stamp_ns + int(
                    self.cfg.joint_max_skew_s * 1e9):
                return  # joint states are flowing: one at or after these frames may still come
            self.last_stamp_ns = stamp_ns
            newest = f'the newest at {ts[-1] * 1e-9:.3f} s'
            self.stats.drop('no_joint_state', f'no joint state on {self.joint_topic} '
                            f'within joint_max_skew_s={self.cfg.joint_max_skew_s} s of the frames '
                            f'at {stamp_ns * 1e-9:.3f} s ({newest}); skipped them')
            return
        t0 = time.perf_counter()
        waited_s = self.node.now_s() - stamp_ns * 1e-9
        images = {}
        for view, cam in zip(self.pipeline.cameras, self.cameras):
            frame_ns, msg = chosen[cam]
            try:
                images[view] = self._decode(msg)
            except cv.MessageError as exc:
                self.frames[cam] = deque((e for e in self.frames[cam] if e[1] is not msg),
                                         maxlen=_FRAMES_KEPT)
                self.stats.drop('bad_image', f'camera {cam}: dropped the frame at '
                                f'{frame_ns * 1e-9:.3f} s: {exc}')
                return
        frames = self.pipeline.preprocess(images)
        t1 = time.perf_counter()
        latent = self.pipeline.encode(frames)
        t2 = time.perf_counter()
        self.last_stamp_ns = stamp_ns
        t = self.node.msg_type
        self.pub_joints.publish(cv.joint_state_msg(t, stamp_ns, self.spec.joint_names, q))
        self.pub_latent.publish(cv.latent_msg(t, stamp_ns, latent))
        self.stats.latency('decode', t1 - t0)
        self.stats.latency('encode', t2 - t1)
        self.stats.latency('age', waited_s + time.perf_counter() - t0)
        self.stats.event('latent')

    def _publish_status(self) -> None:
        missing = self._missing_cameras()
        drops = self.stats.new_drops()
        published = self.stats.rate_hz('latent') > 0
        level = OK if published and not drops and not missing else WARN
        message = ('encoding' if level == OK else
                   f'no frames from {missing}' if missing else
                   f'{drops} inputs dropped' if drops else 'waiting for frames and joint states')
        values = {'model': self.pipeline.model_dir.name, **pipeline_values(self.pipeline),
                  'cameras': ' '.join(self.cameras),
                  'missing_cameras': ' '.join(missing),
                  'last_stamp_s': f'{max(self.last_stamp_ns, 0) * 1e-9:.6f}',
                  **self.stats.values(('decode', 'encode', 'age'), ('latent',))}
        level = with_callback_errors(self.node, level, values)
        self.diag.publish(self.node.now_ns(), {'perception': (level, message, values)})

    def close(self) -> None:
        self.node.shutdown()


def main(argv: list[str] | None = None) -> int:
    return spin(PerceptionNode(sys.argv if argv is None else argv))


if __name__ == '__main__':
    sys.exit(main())
