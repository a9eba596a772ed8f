"""Shared by the pipeline stage nodes (perception, planner, grounding): loading the pipeline
with few threads on the chosen inference backend, and what they report, so their /diagnostics
read alike: `pipeline.backend_name` (the backend running the networks) and `pipeline.backend`
(its details, JSON), `<stage>_ms_p50` over the last `window` runs, `<event>_rate_hz` over the
last `rate_window_s` of node-clock time, `dropped_<reason>` counters (bad or unusable input:
warned about, and the status turns WARN) and `skipped_<reason>` counters (usable input passed
over by design, e.g. for a newer one: not a fault).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Any

import numpy as np

from vidplan_ros.runtime.backends import BackendConfig
from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
from vidplan_ros.transport.base import Node


def validate_backend(cfg: Any) -> None:
    """A node config's `backend`, `precision` (and `world_model_grad` where it has one) checked
    as PipelineConfig checks them (ConfigValueError naming the field)."""
    BackendConfig(backend=cfg.backend, precision=cfg.precision,
                  world_model_grad=getattr(cfg, 'world_model_grad', 'torch'))


class _ToNodeLog(logging.Handler):
    """Python logging records -> the node's logger (which writes like rclpy's)."""

    def __init__(self, node: Node) -> None:
        super().__init__(logging.INFO)
        self.node = node

    def emit(self, record: logging.LogRecord) -> None:
        log = self.node.logger.warning if record.levelno >= logging.WARNING else \
            self.node.logger.info
        log(record.getMessage())


def open_pipeline(node: Node, cfg: PipelineConfig) -> Pipeline:
    """The pipeline of `cfg` with torch limited to `cfg.threads` (the stage nodes share cores).

    While it loads, the runtime's log (logger 'vidplan.runtime': which backend runs the
    networks, why `auto` skipped the ones before it, engine builds) goes to the node's log; no
    handler shows those INFO records in a node process otherwise."""
    import torch
    if cfg.threads:
        try:  # only possible before torch's first parallel work; fine to skip after
            torch.set_num_interop_threads(cfg.threads)
        except RuntimeError:
            pass
    runtime_log, handler = logging.getLogger('vidplan.runtime'), _ToNodeLog(node)
    level = runtime_log.level
    runtime_log.addHandler(handler)
    if not runtime_log.isEnabledFor(logging.INFO):
        runtime_log.setLevel(logging.INFO)
    try:
        pipeline = Pipeline(cfg)
    finally:
        runtime_log.removeHandler(handler)
        runtime_log.setLevel(level)
    node.logger.info(f'model set {pipeline.model_dir.name} ({pipeline.model_dir}): robot '
                     f'{pipeline.spec.name}, cameras {list(pipeline.cameras)}, latent '
                     f'{list(pipeline.latent_shape)}, horizon {pipeline.horizon}, '
                     f'{torch.get_num_threads()} torch thread(s) on {cfg.device}')
    return pipeline


def pipeline_values(pipeline: Pipeline) -> dict[str, str]:
    """The /diagnostics keys naming the inference backend in use (fixed once it runs)."""
    return {'pipeline.backend_name': pipeline.backend_name,
            'pipeline.backend': json.dumps(pipeline.backend_info, sort_keys=True, default=str)}


class StageStats:
    """Latency windows, event times and drop counters of one node (used from its spin thread)."""

    def __init__(self, node: Node, window: int = 50, rate_window_s: float = 5.0) -> None:
        self.node = node
        self.window = window
        self.rate_window_s = rate_window_s
        self.latency_s: dict[str, deque[float]] = {}
        self.events: dict[str, deque[int]] = {}
        self.drops: dict[str, int] = {}
        self.skips: dict[str, int] = {}
        self.last_error = ''
        self._warned_s: dict[str, float] = {}
        self._drops_reported = 0

    def latency(self, stage: str, seconds: float) -> None:
        self.latency_s.setdefault(stage, deque(maxlen=self.window)).append(float(seconds))

    def p50_ms(self, stage: str) -> float:
        values = self.latency_s.get(stage)
        return float(np.median(values)) * 1e3 if values else float('nan')

    def event(self, name: str) -> None:
        self.events.setdefault(name, deque(maxlen=1000)).append(self.node.now_ns())

    def rate_hz(self, name: str) -> float:
        times = self.events.get(name)
        if not times:
            return 0.0
        since = self.node.now_ns() - int(self.rate_window_s * 1e9)
        return sum(t > since for t in times) / self.rate_window_s

    def drop(self, reason: str, message: str, throttle_s: float = 2.0,
             throttle_key: str = '') -> None:
        """Count a dropped input under `reason` and warn, at most once per `throttle_s` for
        each `throttle_key` (default: the reason)."""
        self.drops[reason] = self.drops.get(reason, 0) + 1
        self.last_error = f'{reason}: {message}'
        now, key = time.monotonic(), throttle_key or reason
        if now - self._warned_s.get(key, -1e18) >= throttle_s:
            self._warned_s[key] = now
            self.node.logger.warning(f'{message} ({self.drops[reason]} {reason} so far)')

    def skip(self, reason: str) -> None:
        """Count an input passed over by design (no warning; the status stays OK)."""
        self.skips[reason] = self.skips.get(reason, 0) + 1

    def new_drops(self) -> int:
        """Drops since the previous call (a status report turns WARN when there were any)."""
        total = sum(self.drops.values())
        new, self._drops_reported = total - self._drops_reported, total
        return new

    def values(self, stages: tuple[str, ...], events: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {f'{s}_ms_p50': f'{self.p50_ms(s):.2f}' for s in stages}
        out.update({f'{e}_rate_hz': f'{self.rate_hz(e):.2f}' for e in events})
        out.update({f'dropped_{k}': v for k, v in sorted(self.drops.items())})
        out.update({f'skipped_{k}': v for k, v in sorted(self.skips.items())})
        if self.last_error:
            out['last_error'] = self.last_error
        return out


class StampMatcher:
    """Matches inputs by their exact stamp (the source observation's) and keeps the newest
    complete set for the worker. Older untaken sets are skipped; an input of the last name
    (the one that completes a set, e.g. the video plan) that finds no partners is a drop, other
    unmatched inputs (an upstream stage skipped them) are skipped."""

    def __init__(self, names: tuple[str, ...], stats: StageStats, kept: int = 8) -> None:
        self.names = names
        self.stats = stats
        self.kept = kept
        self.pending: dict[str, dict[int, Any]] = {n: {} for n in names}
        self.ready: tuple[int, dict[str, Any]] | None = None
        self.last_taken_ns = -1

    def put(self, name: str, stamp_ns: int, value: Any) -> None:
        if stamp_ns <= self.last_taken_ns:
            self.stats.drop('out_of_order', f'ignored a {name} stamped {stamp_ns * 1e-9:.3f} s, '
                            f'not after the last one used ({self.last_taken_ns * 1e-9:.3f} s)')
            return
        buf = self.pending[name]
        buf[stamp_ns] = value
        while len(buf) > self.kept:
            buf.pop(min(buf))
            if name == self.names[-1]:
                self.stats.drop('unpaired', f'a {name} found no {"/".join(self.names[:-1])} '
                                'with its stamp; publish them all with the observation stamp',
                                throttle_s=10.0)
            else:
                self.stats.skip(f'unpaired_{name}')
        if not all(stamp_ns in b for b in self.pending.values()):
            return
        values = {n: b.pop(stamp_ns) for n, b in self.pending.items()}
        for b in self.pending.values():
            for old in [s for s in b if s < stamp_ns]:
                del b[old]
        if self.ready is not None:
            self.stats.skip('superseded')  # the worker was busy: plan from the newest
            if self.ready[0] > stamp_ns:
                return  # an older observation completed after a newer one: keep the newer
        self.ready = (stamp_ns, values)

    def take(self) -> tuple[int, dict[str, Any]] | None:
        """The newest complete set (stamp_ns, {name: value}) not taken yet, or None."""
        ready, self.ready = self.ready, None
        if ready is not None:
            self.last_taken_ns = ready[0]
        return ready


def put_latent_joint_state(msg: Any, joint_names: tuple[str, ...], stats: StageStats,
                           match: StampMatcher) -> None:
    """File a `/vidplan/latent/joint_states` message (joints by name, finite) under its stamp as
    the 'joint_state' input of `match`, or drop it with a counted warning."""
    from vidplan_ros.transport import convert as cv
    try:
        q, _ = cv.joint_state_arrays(msg, joint_names)
        if not np.all(np.isfinite(q)):
            raise cv.MessageError(f'non-finite joint positions {q.tolist()}')
    except cv.MessageError as exc:
        stats.drop('bad_joint_state', f'ignored a latent joint state: {exc}')
        return
    match.put('joint_state', cv.time_to_ns(msg.header.stamp), q)
