"""A ROS-style logger for the non-ROS backend: `[LEVEL] [time] [node]: message`, throttling."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LEVELS = {'debug': 10, 'info': 20, 'warning': 30, 'error': 40}


class NodeLogger:
    """Writes like rclpy's logger (stderr), with optional per-message-site throttling."""

    def __init__(self, node_name: str, level: str = 'info', stream: TextIO | None = None) -> None:
        self.node_name = node_name
        self.level = LEVELS[level]
        self.stream = stream
        self._last_s: dict[tuple[str, str], float] = {}

    def _log(self, level: str, msg: str, throttle_s: float) -> None:
        if LEVELS[level] < self.level:
            return
        now = time.monotonic()
        if throttle_s > 0:
            # Throttle per call site (caller's file:line), as rclpy does.
            frame = sys._getframe(2)
            site = (f'{frame.f_code.co_filename}:{frame.f_lineno}', level)
            if now - self._last_s.get(site, -1e18) < throttle_s:
                return
            self._last_s[site] = now
        stream = self.stream or sys.stderr
        print(f'[{level.upper().replace("WARNING", "WARN")}] [{time.time():.6f}] '
              f'[{self.node_name}]: {msg}', file=stream, flush=True)

    def debug(self, msg: str, throttle_s: float = 0.0) -> None:
        self._log('debug', msg, throttle_s)

    def info(self, msg: str, throttle_s: float = 0.0) -> None:
        self._log('info', msg, throttle_s)

    def warning(self, msg: str, throttle_s: float = 0.0) -> None:
        self._log('warning', msg, throttle_s)

    def error(self, msg: str, throttle_s: float = 0.0) -> None:
        self._log('error', msg, throttle_s)
