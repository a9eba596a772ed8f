"""A ROS-style logger for the non-ROS backend: `[LEVEL] [time] [node]: message`, throttling."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LEVELS = {'debug': 10, 'info': 20, 'warning': 30, 'error': 40}


class SiteThrottle:
    """Throttles log calls per (caller's file:line, level), as rclpy's throttle filter does."""

    def __init__(self) -> None:
        self._last_s: dict[tuple[str, str], float] = {}

    def allow(self, level: str, throttle_s: float, depth: int = 2) -> bool:
        """True when a message may go out now; `depth` frames up is the caller's call site."""
        if throttle_s <= 0:
            return True
        frame = sys._getframe(depth + 1)
        site = (f'{frame.f_code.co_filename}:{frame.f_lineno}', level)
        now = time.monotonic()
        if now - self._last_s.get(site, -1e18) < throttle_s:
            return False
        self._last_s[site] = now
        return True


class NodeLogger:
    """Writes like rclpy's logger (stderr), with optional per-message-site throttling."""

    def __init__(self, node_name: str, level: str = 'info', stream: TextIO | None = None) -> None:
        self.node_name = node_name
        self.level = LEVELS[level]
        self.stream = stream
        self._throttle = SiteThrottle()

    def _log(self, level: str, msg: str, throttle_s: float) -> None:
        if LEVELS[level] < self.level or not self._throttle.allow(level, throttle_s, depth=2):
            return
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
