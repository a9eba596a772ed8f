"""Where the package's data directories (config/, urdf/, models/, launch/) are.

Looked up in order: `$VIDPLAN_SHARE`, the source checkout (editable install / running from the
repository), the ament index (`colcon build` installs into `share/vidplan_ros`), and the
interpreter prefix (`pip install .` installs data files into `<prefix>/share/vidplan_ros`).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from vidplan_ros.core.errors import VidplanError

PACKAGE = 'vidplan_ros'
_MARKER = 'config'


def _candidates() -> list[Path]:
    found = []
    if os.environ.get('VIDPLAN_SHARE'):
        found.append(Path(os.environ['VIDPLAN_SHARE']))
    found.append(Path(__file__).resolve().parents[2])  # repository root
    try:  # a ROS 2 host; ament_index_python is pure Python but ships with ROS only
        from ament_index_python.packages import get_package_share_directory
        found.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 — not a ROS host, or the package is not in the index
        pass
    found.append(Path(sys.prefix) / 'share' / PACKAGE)
    return found


@functools.lru_cache(maxsize=None)
def share_dir() -> Path:
    """The directory holding config/, urdf/, models/ and launch/."""
    tried = _candidates()
    for path in tried:
        if (path / _MARKER / 'robots').is_dir():
            return path
    raise VidplanError(
        f'cannot find the vidplan_ros data directory (looked in {[str(p) for p in tried]}); '
        'reinstall the package or set VIDPLAN_SHARE to the directory holding config/')


def config_dir() -> Path:
    return share_dir() / 'config'


def urdf_dir() -> Path:
    return share_dir() / 'urdf'


def models_dir() -> Path:
    return share_dir() / 'models'
