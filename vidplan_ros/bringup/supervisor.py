"""A small process supervisor: `vidplan launch` without ROS.

Starts a node graph as separate processes, prefixes every output line with the node's name,
stops everything cleanly on Ctrl-C / SIGTERM (SIGINT to each node, then SIGTERM, then SIGKILL
after grace periods), and exits non-zero when a required node dies — the same contract as
`ros2 launch` with `required=True` nodes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

_COLOURS = ('36', '33', '35', '32', '34', '31', '96', '93')


@dataclass(frozen=True)
class ProcessSpec:
    """One process of a graph. `argv` is the full command line."""

    name: str
    argv: tuple[str, ...]
    required: bool = True
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExitReport:
    name: str
    returncode: int
    required: bool


class Supervisor:
    """Runs `ProcessSpec`s until a required one exits, all exit, or `stop()` is called."""

    def __init__(self, specs: list[ProcessSpec], out: TextIO | None = None,
                 grace_s: float = 5.0, colour: bool | None = None) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f'process names must be unique: {names}')
        self.specs = specs
        self.out = out or sys.stdout
        self.grace_s = grace_s
        self.colour = self.out.isatty() if colour is None else colour
        self.procs: dict[str, subprocess.Popen] = {}
        self.exits: list[ExitReport] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._width = max((len(n) for n in names), default=0)

    def _print(self, name: str, line: str) -> None:
        tag = f'[{name}]'.ljust(self._width + 2)
        if self.colour:
            code = _COLOURS[[s.name for s in self.specs].index(name) % len(_COLOURS)]
            tag = f'\033[{code}m{tag}\033[0m'
        with self._lock:
            self.out.write(f'{tag} {line}')
            if not line.endswith('\n'):
                self.out.write('\n')
            self.out.flush()

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._print(name, line)

    def start(self) -> None:
        for spec in self.specs:
            env = {**os.environ, 'PYTHONUNBUFFERED': '1', **spec.env}
            # Own session: a Ctrl-C in the terminal reaches only us; we stop nodes in order.
            proc = subprocess.Popen(list(spec.argv), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, env=env,
                                    start_new_session=True)
            self.procs[spec.name] = proc
            thread = threading.Thread(target=self._pump, args=(spec.name, proc), daemon=True)
            thread.start()
            self._threads.append(thread)
            self._print(spec.name, f'started (pid {proc.pid}): {" ".join(spec.argv)}')

    def stop(self) -> None:
        """Ask every running process to stop: SIGINT, then SIGTERM, then SIGKILL."""
        self._stop.set()

    def run(self) -> int:
        """Start, supervise, stop; the exit code: 0, or the first failed required node's."""
        failed: ExitReport | None = None
        try:
            self.start()
            while not self._stop.is_set():
                for spec in self.specs:
                    proc = self.procs[spec.name]
                    if proc.returncode is None and proc.poll() is not None:
                        report = ExitReport(spec.name, proc.returncode, spec.required)
                        self.exits.append(report)
                        self._print(spec.name, f'exited with code {proc.returncode}')
                        if spec.required and proc.returncode != 0 and failed is None:
                            failed = report
                        if spec.required:  # a required node ending ends the graph
                            self._stop.set()
                if all(p.returncode is not None for p in self.procs.values()):
                    break
                self._stop.wait(0.05)
        except KeyboardInterrupt:
            pass
        finally:
            self._shutdown()
        if failed is not None:
            print(f'vidplan launch: required node {failed.name!r} died with code '
                  f'{failed.returncode}', file=sys.stderr)
            return failed.returncode if failed.returncode > 0 else 1
        return 0

    def _shutdown(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            running = [(n, p) for n, p in self.procs.items() if p.poll() is None]
            if not running:
                break
            for _name, proc in running:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + self.grace_s
            while time.monotonic() < deadline and any(p.poll() is None for _, p in running):
                time.sleep(0.02)
        for name, proc in self.procs.items():
            if proc.returncode is not None and name not in {e.name for e in self.exits}:
                self.exits.append(ExitReport(name, proc.returncode,
                                             self._spec(name).required))
        for thread in self._threads:
            thread.join(timeout=1.0)

    def _spec(self, name: str) -> ProcessSpec:
        return next(s for s in self.specs if s.name == name)


def run_graph(specs: list[ProcessSpec], grace_s: float = 5.0) -> int:
    """Run a graph in the foreground; Ctrl-C and SIGTERM stop it cleanly.

    Both signals get explicit handlers: a process started with SIGINT ignored (as some shells
    and supervisors do) would otherwise never see KeyboardInterrupt. `grace_s`: how long each
    stop signal (SIGINT, SIGTERM) is given before the next.
    """
    sup = Supervisor(specs, grace_s=grace_s)
    previous = {sig: signal.signal(sig, lambda *_: sup.stop())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return sup.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
