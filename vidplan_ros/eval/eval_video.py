"""Episode videos of ``vidplan eval``: what the cameras saw beside what was imagined.

One video frame per replan, played at the replan rate (real time). Per camera view two rows of
model-size tiles: the camera now, then the decoded video plan ``plan[0..H-1]`` (the plan the
grounder got, corrupted or not); below it the decoded latents the grounder committed to
(``result.latents[1..H]``: the world-model rollout for shooting methods). A caption band says
method, corruption, seed, sim time and whether the task is succeeding.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vidplan_ros.runtime.pipeline import Pipeline, Replan
    from vidplan_ros.sim.env import SimEnv

__all__ = ['EpisodeVideo', 'concat_videos', 'replan_frame']

CAPTION_PX = 16
BLOCK = 16                    # video encoders want sizes in multiples of 16


def _pad_to_block(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return np.pad(img, ((0, -h % BLOCK), (0, -w % BLOCK), (0, 0)))


def replan_frame(pipeline: Pipeline, frames: dict[str, np.ndarray], rp: Replan,
                 caption: str) -> np.ndarray:
    """``(height, width, 3)`` uint8 picture of one replan (layout in the module docstring)."""
    from PIL import Image, ImageDraw
    now = pipeline.preprocess(frames)                       # (V, S, S, 3)
    plan = pipeline.decode(rp.video_plan)                   # (H, V, S, S, 3)
    grounded = pipeline.decode(rp.result.latents[1:])       # (H, V, S, S, 3)
    V, S = now.shape[0], now.shape[1]
    blank = np.full((S, S, 3), 40, np.uint8)
    rows = []
    for v in range(V):
        rows.append(np.concatenate([now[v], *plan[:, v]], axis=1))
        rows.append(np.concatenate([blank, *grounded[:, v]], axis=1))
    body = np.concatenate(rows, axis=0)
    band = Image.new('RGB', (body.shape[1], CAPTION_PX), (0, 0, 0))
    ImageDraw.Draw(band).text((3, 2), caption, fill=(255, 255, 255))
    return _pad_to_block(np.concatenate([np.asarray(band), body], axis=0))


class EpisodeVideo:
    """An ``on_replan`` hook writing one episode's frames to an mp4 at ``fps``."""

    def __init__(self, path: Path, pipeline: Pipeline, fps: float, title: str) -> None:
        import imageio.v2 as imageio
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.pipeline, self.title = path, pipeline, title
        self._writer = imageio.get_writer(path, fps=fps, codec='libx264', quality=7,
                                          macro_block_size=BLOCK)

    def __call__(self, env: SimEnv, frames: dict[str, np.ndarray], rp: Replan) -> None:
        ok = 'success' if env.success() else ''
        caption = f'{self.title}  t={rp.stamp_s:4.1f}s  {ok}   (top: plan, below: grounded)'
        self._writer.append_data(replan_frame(self.pipeline, frames, rp, caption))

    def close(self) -> None:
        self._writer.close()


def concat_videos(parts: list[Path], out: Path) -> None:
    """Join mp4s of the same size and rate into ``out`` without re-encoding (ffmpeg concat)."""
    import imageio_ffmpeg
    listing = out.with_suffix('.txt')
    listing.write_text(''.join(f"file '{p.resolve()}'\n" for p in parts))
    try:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), '-y', '-loglevel', 'error', '-f',
                        'concat', '-safe', '0', '-i', str(listing), '-c', 'copy', str(out)],
                       check=True, capture_output=True, timeout=600)
    finally:
        listing.unlink(missing_ok=True)
