"""Where a benchmark or result came from: the machine, the commit, the command, the time.

Every benchmark (`vidplan bench ...`) and evaluation writes :func:`provenance` next to its
numbers, so a number is never read without the machine and load it was taken under. Absolute
times hold only for the machine named; ratios measured in one run are the record.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

__all__ = ['cpu_model', 'git_state', 'load_average', 'machine_info', 'provenance']


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (other jobs skew timings), or None."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info(packages: Sequence[str] = ()) -> dict[str, Any]:
    """Platform, CPU, core count, Python, numpy, load average, and the installed version of
    each distribution in ``packages`` ('unknown' when missing; read from the package metadata,
    so nothing heavy is imported)."""
    import numpy as np
    load = load_average()
    info: dict[str, Any] = {
        'platform': platform.platform(), 'cpu': cpu_model(),
        'processor': platform.processor() or platform.machine(), 'cpu_count': os.cpu_count(),
        'python': platform.python_version(), 'numpy': np.__version__, 'loadavg': load,
        'load_average_1min_at_start': load[0] if load else None,
    }
    try:
        info['debian'] = Path('/etc/debian_version').read_text().strip()
    except OSError:
        pass
    for name in packages:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = 'unknown'
    return info


def git_state() -> dict[str, Any]:
    """{'commit', 'dirty'} of the source checkout, or {} outside one."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=repo, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                               cwd=repo, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {'commit': commit, 'dirty': bool(dirty)}


def provenance(command: Sequence[str] | str | None = None,
               packages: Sequence[str] = ()) -> dict[str, Any]:
    """``{'machine', 'git', 'command', 'started_utc'}``; ``command`` defaults to this process's
    own command line."""
    if command is None:
        command = [Path(sys.argv[0]).name, *sys.argv[1:]]
    if not isinstance(command, str):
        command = shlex.join(command)
    return {'machine': machine_info(packages), 'git': git_state(), 'command': command,
            'started_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds')}
