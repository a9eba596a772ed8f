#!/usr/bin/env bash
# Take a fresh Debian/Ubuntu machine (Python >= 3.10) to a ready vidplan_ros virtual environment.
#   - Debian packages: OSMesa/EGL so MuJoCo renders without a GPU, xmllint for package.xml checks
#   - .venv with torch (CPU build when there is no NVIDIA GPU), then `pip install -e .[sim,dev,ros]`
#     (ros: ROS 2 Jazzy's rclpy + message wheels from PyPI, x86_64 Linux, CPython 3.10-3.12;
#     nothing to source afterwards, see README "Set-up")
# Safe to run again: each step is skipped when already done. Env: PYTHON, VIDPLAN_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VIDPLAN_VENV:-.venv}
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages (needs root or sudo only when something is missing).
apt_pkgs=(libosmesa6 libegl1 libegl-mesa0 libgl1-mesa-dri libglu1-mesa libxml2-utils)
"$PY" -c 'import ensurepip, venv' 2>/dev/null || apt_pkgs+=(python3-venv)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=''; [ "$(id -u)" = 0 ] || sudo='sudo'
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# 2. Virtual environment.
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "vidplan_ros needs Python >= 3.10 (found $("$PY" --version))" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

# 3. torch: the CUDA wheel on a machine with an NVIDIA GPU, the small CPU build otherwise.
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say 'installing torch (CUDA)'; "${pip[@]}" torch
  else
    say 'installing torch (CPU build)'
    "${pip[@]}" 'torch==2.13.0+cpu' 2>/dev/null \
      || "${pip[@]}" torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

# 4. The package itself, editable, with the simulation, development and ROS 2 (rclpy) extras.
stamp="$VENV/.vidplan-setup-stamp"
want=$(cat setup.py setup.cfg scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say 'installing vidplan_ros (pip install -e .[sim,dev,ros])'
  "${pip[@]}" -e '.[sim,dev,ros]'
  echo "$want" > "$stamp"
fi
# 5. Say which transport the nodes will use (the rclpy tests skip, with this reason, without it).
if "$VENV/bin/python" -c 'import rclpy' 2>/dev/null; then
  say 'rclpy imports: nodes default to the rclpy backend (Fast DDS); --backend dds for Cyclone'
else
  say 'rclpy does not import here (ROS wheels are x86_64 Linux, CPython 3.10-3.12 only):' \
      'nodes use the dds backend'
fi
say "ready: $VENV/bin/vidplan"
