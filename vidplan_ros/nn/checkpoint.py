"""Resumable training checkpoints: model/optimizer state, stage, step and RNG states.

Written atomically (temp file, then rename), so a run killed mid-write leaves the previous
checkpoint intact. `load_checkpoint` returns None when there is none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ['load_checkpoint', 'save_checkpoint']


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` (state dicts, tensors, plain values) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The state saved at `path`, or None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location='cpu', weights_only=False)
