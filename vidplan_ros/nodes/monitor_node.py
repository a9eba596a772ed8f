"""The run monitor of `vidplan launch sim`: a video of the run, episode results, stage latencies.

in   /cameras/<cam>/image_raw     sensor_msgs/Image (rgb8)      the views; a video frame a stamp
in   /vidplan/plan_preview        sensor_msgs/Image (rgb8)      decoded plan, shown beside them
in   /vidplan/latent, /vidplan/video_plan (Image 32FC1), /vidplan/grounded_plan (JointTrajectory)
                                  stamped with the source observation: per-stage latency
in   /diagnostics                 the sim's episode results; nodes' reported latencies; executor
out  <out_dir>/run.mp4            camera views (stacked) | the plan preview; bottom bar green
                                  while the sim reports success
out  <out_dir>/summary.json       episodes, success rate, latency per stage (ms), frames
Written when the node stops (Ctrl-C / SIGINT from the launcher, or SIGTERM).

Latency of a stage is measured here, at one observer on one wall clock, as the difference of
the receipt times of the messages carrying the same source stamp: perception = camera image ->
latent, planner = latent -> video plan, grounding = video plan -> grounded plan, preview =
video plan -> plan preview, total = camera image -> grounded plan. Transport (< 1 ms on one
host) is included.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vidplan_ros.core.config import require, require_positive

BAR_PX = 16                      # status bar under the frame
STAGES = (('perception', 'camera', 'latent'), ('planner', 'latent', 'video_plan'),
          ('grounding', 'video_plan', 'grounded_plan'), ('preview', 'video_plan', 'preview'),
          ('total', 'camera', 'grounded_plan'))
MAX_STAMPS = 20000               # source stamps remembered for latency matching
DEFAULT_PREVIEW_ASPECT = 4.0     # preview box width / height until a preview has been seen
MAX_PREVIEW_ASPECT = 8.0


@dataclass(frozen=True)
class MonitorConfig:
    out_dir: str = 'runs/latest'
    cameras: tuple[str, ...] = ('front',)
    fps: float = 10.0                     # video frames per second (the sim's camera rate)
    view_px: int = 160                    # each camera view is scaled into view_px x view_px
    max_buffer_frames: int = 300          # frames kept before the first preview fixes the layout
    sim_node: str = 'vidplan_sim'
    preview_topic: str = '/vidplan/plan_preview'
    video_name: str = 'run.mp4'

    def __post_init__(self) -> None:
        require(len(self.cameras) > 0, 'cameras', self.cameras, 'at least one camera name')
        require_positive(self, 'fps', 'view_px', 'max_buffer_frames')
        require(self.view_px % 16 == 0, 'view_px', self.view_px, 'a multiple of 16 (mp4)')


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`image` (h, w, 3) uint8 scaled (nearest neighbour, aspect kept) onto a black
    (height, width, 3) canvas, centred."""
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    nh, nw = max(1, min(height, int(round(h * scale)))), max(1, min(width, int(round(w * scale))))
    rows = np.minimum((np.arange(nh) / scale).astype(int), h - 1)
    cols = np.minimum((np.arange(nw) / scale).astype(int), w - 1)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - nh) // 2, (width - nw) // 2
    out[top:top + nh, left:left + nw] = image[rows][:, cols]
    return out


def as_rgb(image: np.ndarray) -> np.ndarray:
    """(h, w), (h, w, 1), (h, w, 3) or (h, w, 4) of any dtype -> (h, w, 3) uint8."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255 if img.dtype.kind in 'iu' else 1.0)
        img = (img * (1 if img.dtype.kind in 'iu' else 255)).astype(np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _round16(x: float) -> int:
    return max(16, int(round(x / 16.0)) * 16)


def stats_ms(samples_s: list[float]) -> dict[str, float]:
    if not samples_s:
        return {'count': 0}
    a = np.asarray(samples_s) * 1e3
    return {'count': int(a.size), 'mean': round(float(a.mean()), 2),
            'p50': round(float(np.percentile(a, 50)), 2),
            'p95': round(float(np.percentile(a, 95)), 2), 'max': round(float(a.max()), 2)}


class RunRecorder:
    """Composes and writes the run video, and collects episodes and latencies (ROS-free)."""

    def __init__(self, cfg: MonitorConfig) -> None:
        self.cfg = cfg
        self.out_dir = Path(cfg.out_dir)
        self.video_path = self.out_dir / cfg.video_name
        self.t0 = time.monotonic()
        self.views: dict[str, np.ndarray] = {}
        self.pending_stamp: int | None = None
        self.preview: np.ndarray | None = None
        self.success_now = False
        self.buffer: list[tuple[dict[str, np.ndarray], np.ndarray | None, bool]] = []
        self.box_width: int | None = None      # preview box width, fixed with the layout
        self.writer: Any = None
        self.frames = 0
        self.receipts: OrderedDict[int, dict[str, float]] = OrderedDict()
        self.episodes: list[dict[str, Any]] = []
        self.done_seen = 0
        self.succeeded_seen = 0
        self.node_latency: dict[str, list[float]] = {}
        self.executor_modes: dict[str, int] = {}
        self.closed = False

    # --- inputs ---------------------------------------------------------------------------
    def on_camera(self, camera: str, stamp_ns: int, image: np.ndarray,
                  recv_s: float | None = None) -> None:
        """A camera image; a video frame is emitted when the next stamp begins."""
        if camera not in self.cfg.cameras:
            return
        self.on_stage('camera', stamp_ns, recv_s)
        if self.pending_stamp is not None and stamp_ns > self.pending_stamp:
            self._emit()
        if self.pending_stamp is None or stamp_ns >= self.pending_stamp:
            self.pending_stamp = stamp_ns
        self.views[camera] = as_rgb(image)

    def on_preview(self, stamp_ns: int, image: np.ndarray, recv_s: float | None = None) -> None:
        self.on_stage('preview', stamp_ns, recv_s)
        self.preview = as_rgb(image)
        if self.writer is None and self.box_width is None:
            self._open(self.preview.shape[1] / self.preview.shape[0])

    def on_stage(self, stage: str, stamp_ns: int, recv_s: float | None = None) -> None:
        """A message of `stage` carrying source stamp `stamp_ns` arrived at `recv_s`."""
        recv_s = time.monotonic() if recv_s is None else recv_s
        entry = self.receipts.get(stamp_ns)
        if entry is None:
            entry = self.receipts[stamp_ns] = {}
            while len(self.receipts) > MAX_STAMPS:
                self.receipts.popitem(last=False)
        entry.setdefault(stage, recv_s)

    def on_sim_status(self, values: Mapping[str, str], recv_s: float | None = None) -> None:
        """The sim's `episode` status: records every episode that ended since the last one."""
        recv_s = time.monotonic() if recv_s is None else recv_s
        self.success_now = values.get('success') == 'True'
        try:
            done = int(values['episodes_done'])
            succeeded = int(values['episodes_succeeded'])
        except (KeyError, ValueError):
            return
        new = done - self.done_seen
        if new <= 0:
            return
        new_successes = succeeded - self.succeeded_seen
        for k in range(new):
            index = self.done_seen + k
            last = k == new - 1
            if new == 1:
                success: bool | None = new_successes > 0
            elif new_successes in (0, new):
                success = new_successes == new
            else:
                success = None  # missed statuses: which of them succeeded is unknown
            seed = values.get('seed') if last else None
            self.episodes.append({
                'episode': index, 'seed': int(seed) if seed not in (None, '') else None,
                'success': success,
                'end_sim_time_s': float(values['sim_time_s']) if last and
                values.get('sim_time_s') else None,
                'end_wall_time_s': round(recv_s - self.t0, 3)})
            word = {True: 'SUCCESS', False: 'failure', None: 'unknown'}[success]
            print(f'episode {index}' + (f' (seed {seed})' if last and seed else '') +
                  f': {word}   [{succeeded}/{done} succeeded so far]', flush=True)
        self.done_seen, self.succeeded_seen = done, succeeded

    def on_node_status(self, name: str, values: Mapping[str, str]) -> None:
        """Any other node's status: latency figures it reports, executor modes."""
        for key, value in values.items():
            lowered = key.lower()
            in_ms = lowered.endswith('_ms') or '_ms_' in lowered   # e.g. encode_ms_p50
            if in_ms or 'latency' in lowered:
                try:
                    number = float(value)
                except ValueError:
                    continue
                if np.isfinite(number):
                    # keys with _ms are ms; other latency keys are taken as s (the house unit)
                    seconds = number * 1e-3 if in_ms else number
                    self.node_latency.setdefault(f'{name}/{key}', []).append(seconds)
        if 'mode' in values and name.endswith(': executor'):
            mode = values['mode']
            self.executor_modes[mode] = self.executor_modes.get(mode, 0) + 1

    # --- video ----------------------------------------------------------------------------
    def _layout(self) -> tuple[int, int]:
        n = len(self.cfg.cameras)
        return n * self.cfg.view_px, self.cfg.view_px + (self.box_width or 0)

    def _open(self, aspect: float) -> None:
        import imageio.v2 as imageio
        aspect = float(np.clip(aspect, 0.25, MAX_PREVIEW_ASPECT))
        height, _ = self._layout()
        self.box_width = _round16(height * aspect)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # ultrafast: the encoder shares the cores with the nodes (a third of veryfast's CPU
        # time on these frames, for a larger file) and must finish within the launcher's stop
        # grace (its lookahead holds frames until the end)
        self.writer = imageio.get_writer(str(self.video_path), fps=self.cfg.fps,
                                         codec='libx264', quality=7, macro_block_size=16,
                                         ffmpeg_log_level='error',
                                         output_params=['-preset', 'ultrafast'])
        for views, preview, success in self.buffer:
            self._write(views, preview, success)
        self.buffer.clear()

    def compose(self, views: Mapping[str, np.ndarray], preview: np.ndarray | None,
                success: bool) -> np.ndarray:
        """One video frame: the views stacked on the left, the preview on the right, a bar."""
        height, width = self._layout()
        px = self.cfg.view_px
        frame = np.zeros((height + BAR_PX, width, 3), np.uint8)
        for i, cam in enumerate(self.cfg.cameras):
            if cam in views:
                frame[i * px:(i + 1) * px, :px] = fit(views[cam], px, px)
        if preview is not None and self.box_width:
            frame[:height, px:] = fit(preview, height, self.box_width)
        frame[:height, px:px + 2] = 255   # views | plan
        frame[height:] = (40, 170, 60) if success else (60, 60, 60)
        frame[height:height + 2] = 0
        return frame

    def _write(self, views: Mapping[str, np.ndarray], preview: np.ndarray | None,
               success: bool) -> None:
        self.writer.append_data(self.compose(views, preview, success))
        self.frames += 1

    def _emit(self) -> None:
        views, preview, success = dict(self.views), self.preview, self.success_now
        if self.writer is None:
            self.buffer.append((views, preview, success))
            if len(self.buffer) >= self.cfg.max_buffer_frames:
                self._open(DEFAULT_PREVIEW_ASPECT)
        else:
            self._write(views, preview, success)

    # --- results --------------------------------------------------------------------------
    def latencies(self) -> dict[str, dict[str, float]]:
        samples: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
        for entry in self.receipts.values():
            for name, start, end in STAGES:
                if start in entry and end in entry and entry[end] >= entry[start]:
                    samples[name].append(entry[end] - entry[start])
        return {name: stats_ms(values) for name, values in samples.items()}

    def summary(self) -> dict[str, Any]:
        done = len(self.episodes)
        ok = sum(1 for e in self.episodes if e['success'])
        return {
            'video': str(self.video_path) if self.frames else None,
            'frames': self.frames, 'fps': self.cfg.fps, 'cameras': list(self.cfg.cameras),
            'episodes': self.episodes, 'episodes_done': done, 'episodes_succeeded': ok,
            'success_rate': round(ok / done, 4) if done else None,
            'latency_ms': self.latencies(),
            'node_reported_latency_ms': {k: stats_ms(v)
                                         for k, v in sorted(self.node_latency.items())},
            'executor_status_modes': self.executor_modes,
            'monitor_wall_time_s': round(time.monotonic() - self.t0, 3),
        }

    def close(self) -> dict[str, Any]:
        """Flush the last frame, write summary.json, finish the video; the summary.

        The summary is written before the encoder is drained, so it exists even if the
        process is killed while the last frames are being encoded."""
        if self.closed:
            return self.summary()
        self.closed = True
        if self.pending_stamp is not None:
            self._emit()
            self.pending_stamp = None
        if self.writer is None and self.buffer:
            self._open(DEFAULT_PREVIEW_ASPECT)
        summary = self.summary()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
        if self.writer is not None:
            self.writer.close()
        return summary


class MonitorNode:
    """Subscribes what the recorder needs; all callbacks run in the spin thread."""

    def __init__(self, argv: list[str] | None = None) -> None:
        from vidplan_ros.nodes.diagnostics import diagnostic_values
        from vidplan_ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA, create_node
        from vidplan_ros.transport import convert as cv
        self.node = create_node('vidplan_monitor', argv)
        self.cfg = cfg = self.node.load_config(MonitorConfig)
        self.rec = RunRecorder(cfg)
        self._cv, self._diag_values = cv, diagnostic_values
        n = self.node
        for cam in cfg.cameras:
            n.create_subscription('sensor_msgs/msg/Image', f'/cameras/{cam}/image_raw',
                                  lambda m, c=cam: self._on_image(c, m), QOS_SENSOR_DATA)
        n.create_subscription('sensor_msgs/msg/Image', cfg.preview_topic, self._on_preview,
                              QOS_SENSOR_DATA)
        # best effort: matches reliable and best-effort writers alike
        for stage, ros_type, topic in (
                ('latent', 'sensor_msgs/msg/Image', '/vidplan/latent'),
                ('video_plan', 'sensor_msgs/msg/Image', '/vidplan/video_plan'),
                ('grounded_plan', 'trajectory_msgs/msg/JointTrajectory',
                 '/vidplan/grounded_plan')):
            n.create_subscription(ros_type, topic,
                                  lambda m, s=stage: self.rec.on_stage(s, self._stamp(m)),
                                  QOS_SENSOR_DATA)
        n.create_subscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics',
                              self._on_diagnostics, QOS_DEFAULT)
        n.logger.info(f'recording {", ".join(cfg.cameras)} + {cfg.preview_topic} into '
                      f'{self.rec.video_path}')

    def _stamp(self, msg: Any) -> int:
        return self._cv.time_to_ns(msg.header.stamp)

    def _on_image(self, cam: str, msg: Any) -> None:
        try:
            image = self._cv.image_array(msg, 'rgb8')
        except ValueError as exc:
            self.node.logger.warning(f'/cameras/{cam}/image_raw: {exc}', throttle_s=5.0)
            return
        self.rec.on_camera(cam, self._stamp(msg), image)

    def _on_preview(self, msg: Any) -> None:
        try:
            image = self._cv.image_array(msg, 'rgb8')
        except ValueError as exc:
            self.node.logger.warning(f'{self.cfg.preview_topic}: {exc}', throttle_s=5.0)
            return
        self.rec.on_preview(self._stamp(msg), image)

    def _on_diagnostics(self, msg: Any) -> None:
        for name, values in self._diag_values(msg).items():
            if name == f'{self.cfg.sim_node}: episode':
                self.rec.on_sim_status(values)
            else:
                self.rec.on_node_status(name, values)

    def close(self) -> dict[str, Any]:
        summary = self.rec.close()
        self.node.logger.info(f'wrote {self.rec.frames} frames to {self.rec.video_path} and '
                              f'{self.rec.out_dir / "summary.json"}')
        self.node.shutdown()
        return summary


def main(argv: list[str] | None = None) -> int:
    # read before the node: the rclpy backend sets SIGINT aside while its context is up
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    monitor = MonitorNode(sys.argv if argv is None else argv)
    stop = []
    # SIGINT (the launcher's first stop signal) and SIGTERM end the spin between callbacks, so
    # a frame is never cut in half in the encoder's pipe; then the video and summary are written.
    for sig in previous:
        signal.signal(sig, lambda *_: stop.append(True))
    try:
        monitor.node.spin(until=lambda: bool(stop))
    finally:
        t0 = time.monotonic()
        monitor.close()   # further stop signals only add to `stop` while the video finishes
        monitor.node.logger.info(f'closed in {time.monotonic() - t0:.1f} s')
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == '__main__':
    sys.exit(main())
