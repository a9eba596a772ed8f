"""The house style (ruff.toml: 99 columns, single quotes, pyflakes, bugbear) holds everywhere."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    ruff = shutil.which('ruff') or str(Path(sys.executable).parent / 'ruff')
    assert Path(ruff).exists(), 'ruff missing: run scripts/setup.sh (dev extra)'
    proc = subprocess.run([ruff, 'check', '--no-cache', 'vidplan_ros', 'test', 'launch'],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
