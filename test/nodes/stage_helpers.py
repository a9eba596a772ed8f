"""Starting a pipeline stage node in its own process and talking to it over DDS (tests)."""

import subprocess
import sys
import json
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
HELDOUT = REPO / 'models' / 'franka_reach' / 'heldout.npz'


class NodeProcess:
    """A node module run as `python -m module --ros-args -p ...`, its output in a file."""

    def __init__(self, module: str, log: Path, *params: str, name: str = '') -> None:
        args = [sys.executable, '-m', module, '--ros-args']
        if name:
            args += ['-r', f'__node:={name}']
        for p in params:
            args += ['-p', p]
        self.log = log
        self._out = open(log, 'w')
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=self._out, stderr=subprocess.STDOUT,
                                     text=True)

    def output(self) -> str:
        return self.log.read_text()

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f'{self.log.name}: the node exited ({self.proc.returncode}):\n'
                        f'{self.output()[-4000:]}')

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def spin_until(node, cond, timeout_s, *procs):
    """Spin the test node until `cond()`; fail if a node process died or time ran out."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        for p in procs:
            p.check_alive()
        if time.monotonic() > deadline:
            logs = '\n'.join(p.output()[-2000:] for p in procs)
            pytest.fail(f'timed out after {timeout_s} s; node output:\n{logs}')
        node.spin_once(0.02)


# the franka_reach model set's views, in its order (models/franka_reach/config.json)
FRANKA_REACH_CAMERAS = tuple(json.loads(HELDOUT.with_name('config.json').read_text())
                             ['params']['data.cameras'])


def heldout_observation(index=0):
    """Real frames {camera: (64, 64, 3)} of franka_reach's held-out data and their joints."""
    d = np.load(HELDOUT)
    frames = {c: d['images'][index, 0, i] for i, c in enumerate(FRANKA_REACH_CAMERAS)}
    return frames, d['q'][index, 0].astype(np.float64)


class Latest:
    """Keeps received messages by their header stamp (ns)."""

    def __init__(self):
        self.by_stamp = {}

    def __call__(self, msg):
        from vidplan_ros.transport import convert as cv
        self.by_stamp[cv.time_to_ns(msg.header.stamp)] = msg
