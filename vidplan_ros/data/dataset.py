"""Training datasets from a directory of ROS 2 bags (one episode per bag). ROS-free.

`build_dataset(cfg)` reads every bag directory under `cfg.data_dir`, time-aligns camera frames,
joint states and the commanded trajectory chunk by header stamp on a grid of period
`cfg.plan_dt_s`, and returns a `Dataset` of flat arrays (frames of all sequences back to back)::

    images     (N, V, S, S, 3) uint8   one RGB frame per camera (cfg.cameras order), centre
                                       cropped to a square and resized to S = cfg.image_size
                                       (`core.images.square_resize`, as perception does)
    q          (N, n) float32  rad     arm joint positions (robot spec order, matched by name)
    action     (N, n) float32  rad     q_target(t + plan_dt) - q(t), the commanded chunk
                                       interpolated plan_dt after its stamp (0 where no command)
    has_action (N,) bool               False at a sequence's last frame (no command there)
    label_action (N, n) float32 rad    q_expert(t + plan_dt) - q(t), the expert's own chunk
                                       (`label_topic`) where the bag records one (DART
                                       collection: what the expert would command from the
                                       perturbed state), else `action`
    perturbation (N,) float32 rad      max over joints of |executed - expert| command target
                                       plan_dt after the stamp, where the bag records the
                                       expert's own chunk (`label_topic`, DART collection;
                                       sim/perturb.py); 0 where it does not
    task_state (N, S) float32          the sim's ground truth of the task (`state_topic`,
                                       data.recorder: cube and goal, or the target; a label
                                       for the planner's state head), NaN where the bag has
                                       none; S = 0 when no bag has one
    seq_start  (E + 1,) int64          sequence e is frames seq_start[e]:seq_start[e + 1]
    seq_episode (E,) int64             index into episode_names of each sequence

With a recording period shorter than plan_dt, each grid offset in `cfg.grid_offsets_s` gives its
own sequence from the same episode (same episode index, so held-out splits stay per episode).
The result is cached as an .npz keyed by the config and the bags' names, sizes and mtimes; the
`DatasetReport` says what was used. A required topic missing or empty raises `DatasetError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.data.bags import BagReader
from vidplan_ros.core.images import square_resize
from vidplan_ros.transport import convert as cv

__all__ = ['Dataset', 'DatasetConfig', 'DatasetError', 'DatasetReport', 'build_dataset',
           'episode_dirs', 'split_sequences']

JOINT_STATES_TOPIC = '/joint_states'
CACHE_VERSION = 4


class DatasetError(VidplanError):
    """The bags cannot make the dataset asked for (missing/empty topic, no episodes ...)."""


@dataclass(frozen=True)
class DatasetConfig:
    """Which bags, topics and rate make a dataset."""

    data_dir: str = ''                    # directory of bag directories
    robot: str = 'franka_fr3'             # robot spec name (joint names, order)
    cameras: tuple[str, ...] = ('front', 'wrist')
    command_topic: str = '/fr3_arm_controller/joint_trajectory'
    # optional: the expert's own chunk beside the executed (perturbed) one
    label_topic: str = '/vidplan/expert_trajectory'
    # optional: the sim's ground truth of the task (aligned by the bags' log time)
    state_topic: str = '/vidplan/task_state'
    plan_dt_s: float = 0.2                # grid period = the planner's frame period
    grid_offsets_s: tuple[float, ...] = (0.0, 0.1)   # one sequence per offset
    align_tolerance_s: float = 0.02       # max |stamp - grid time| of a matched message
    image_size: int = 64
    only_success: bool = False            # drop episodes whose sidecar says success: false
    max_episodes: int = 0                 # 0 = all
    cache_dir: str = ''                   # '' = <data_dir>/.cache

    def __post_init__(self) -> None:
        require_positive(self, 'plan_dt_s', 'align_tolerance_s', 'image_size')
        require(len(self.cameras) > 0, 'cameras', self.cameras, 'at least one camera name')
        for name in ('command_topic', 'label_topic', 'state_topic'):
            require(getattr(self, name).startswith('/'), name, getattr(self, name),
                    'an absolute topic name')
        require(len(self.grid_offsets_s) > 0
                and all(0 <= o < self.plan_dt_s for o in self.grid_offsets_s),
                'grid_offsets_s', self.grid_offsets_s, 'offsets in [0, plan_dt_s)')
        require(self.max_episodes >= 0, 'max_episodes', self.max_episodes, '>= 0')

    def image_topic(self, camera: str) -> str:
        return f'/cameras/{camera}/image_raw'

    def required_topics(self) -> list[str]:
        cams = [self.image_topic(c) for c in self.cameras]
        return cams + [JOINT_STATES_TOPIC, self.command_topic]


@dataclass
class DatasetReport:
    """What a dataset was built from."""

    data_dir: str
    topics: list[str]
    episodes: int
    sequences: int
    frames: int
    plan_rate_hz: float
    skipped: dict[str, str] = field(default_factory=dict)   # episode -> why
    image_size: int = 0                                       # S of the stored frames
    source_image_sizes: dict[str, str] = field(default_factory=dict)  # camera -> recorded WxH
    cache_path: str = ''
    cache_hit: bool = False

    def summary(self) -> str:
        return (f'{self.data_dir}: {self.episodes} episodes, {self.sequences} sequences, '
                f'{self.frames} frames at {self.plan_rate_hz:g} Hz from {self.topics}'
                f'{f", skipped {len(self.skipped)}" if self.skipped else ""}'
                f'{self._resized()}'
                f'{" (cached)" if self.cache_hit else ""}')

    def _resized(self) -> str:
        want = f'{self.image_size}x{self.image_size}'
        src = {c: s for c, s in self.source_image_sizes.items() if s != want}
        return f', images {src} cropped and resized to {want}' if src else ''


@dataclass
class Dataset:
    images: np.ndarray
    q: np.ndarray
    action: np.ndarray
    has_action: np.ndarray
    perturbation: np.ndarray
    label_action: np.ndarray
    seq_start: np.ndarray
    seq_episode: np.ndarray
    episode_names: list[str]
    report: DatasetReport
    task_state: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    task_state_names: tuple[str, ...] = ()

    @property
    def num_sequences(self) -> int:
        return len(self.seq_start) - 1

    def sequence(self, e: int) -> slice:
        return slice(int(self.seq_start[e]), int(self.seq_start[e + 1]))


def episode_dirs(data_dir: str | Path) -> list[Path]:
    """Bag directories (holding metadata.yaml) under `data_dir`, in natural name order."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DatasetError(f'{root} is not a directory; pass a directory of episode bags')

    def key(p: Path) -> tuple[str, int]:
        stem, _, num = p.name.rpartition('_')
        return (stem, int(num)) if num.isdigit() else (p.name, -1)

    return sorted((p for p in root.iterdir()
                   if p.is_dir() and not p.name.startswith('.')
                   and (p / 'metadata.yaml').exists()), key=key)


def _fingerprint(cfg: DatasetConfig, dirs: list[Path]) -> str:
    h = hashlib.sha256()
    params = {k: v for k, v in asdict(cfg).items() if k not in ('cache_dir', 'data_dir')}
    h.update(json.dumps([CACHE_VERSION, params], sort_keys=True).encode())
    for d in dirs:
        for f in sorted(d.iterdir()):
            st = f.stat()
            h.update(f'{d.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}'.encode())
    return h.hexdigest()[:16]


def _nearest(stamps: np.ndarray, t: float, tol: float) -> int:
    """Index of the stamp nearest `t` (s), or -1 when none is within `tol`."""
    if len(stamps) == 0:
        return -1
    i = int(np.argmin(np.abs(stamps - t)))
    return i if abs(stamps[i] - t) <= tol else -1


def _read_episode(path: Path, cfg: DatasetConfig, names: tuple[str, ...],
                  sizes: dict[str, str] | None = None) -> list[dict[str, np.ndarray]]:
    """Aligned sequences (one per grid offset) of one bag; records each camera's recorded
    image size ('WxH') in `sizes` the first time it sees that camera."""
    with BagReader(path) as bag:
        topics = bag.topics
        for t in cfg.required_topics():
            if t not in topics:
                raise DatasetError(f'{path}: required topic {t} is missing (the bag has '
                                   f'{sorted(topics)}); record it or fix the dataset config')
            if topics[t].count == 0:
                raise DatasetError(f'{path}: required topic {t} has no messages')
        wanted = cfg.required_topics() + [t for t in (cfg.label_topic, cfg.state_topic)
                                          if topics.get(t) and topics[t].count]
        per: dict[str, list[tuple[float, Any]]] = {t: [] for t in wanted}
        for topic, _, t_ns, msg in bag.messages(wanted):
            # the task state has no header: its log time is its stamp (data.recorder)
            stamp = t_ns if topic == cfg.state_topic else cv.time_to_ns(msg.header.stamp)
            per[topic].append((stamp * 1e-9, msg))
    stamps = {t: np.array([s for s, _ in v]) for t, v in per.items()}
    optional = (cfg.command_topic, cfg.label_topic, cfg.state_topic)
    t_end = min(stamps[t].max() for t in cfg.required_topics() if t not in optional)
    tol = cfg.align_tolerance_s
    out = []
    for offset in cfg.grid_offsets_s:
        imgs, qs, acts, labels, has, pert, states = [], [], [], [], [], [], []
        t = float(stamps[JOINT_STATES_TOPIC].min()) + offset
        while t <= t_end + tol:
            idx = {tp: _nearest(stamps[tp], t, tol) for tp in per}
            if any(idx[tp] < 0 for tp in per if tp not in optional):
                break
            frame = []
            for cam in cfg.cameras:
                tp = cfg.image_topic(cam)
                img = cv.image_array(per[tp][idx[tp]][1])
                if sizes is not None:
                    sizes.setdefault(cam, f'{img.shape[1]}x{img.shape[0]}')
                frame.append(square_resize(img, cfg.image_size))
            q, _ = cv.joint_state_arrays(per[JOINT_STATES_TOPIC][idx[JOINT_STATES_TOPIC]][1],
                                         names)
            a = np.zeros(len(names))
            label_a = None
            dev = 0.0
            if idx[cfg.command_topic] >= 0:
                target = _target(per[cfg.command_topic][idx[cfg.command_topic]][1], q, names,
                                 cfg.plan_dt_s)
                a = target - q
                if idx.get(cfg.label_topic, -1) >= 0:
                    label = _target(per[cfg.label_topic][idx[cfg.label_topic]][1], q, names,
                                    cfg.plan_dt_s)
                    dev = float(np.abs(target - label).max())
                    label_a = label - q
            if idx.get(cfg.state_topic, -1) >= 0:
                msg = per[cfg.state_topic][idx[cfg.state_topic]][1]
                states.append(cv.named_values_arrays(msg))
            elif cfg.state_topic in per:
                states.append(None)
            imgs.append(np.stack(frame))
            qs.append(q)
            acts.append(a)
            labels.append(a if label_a is None else label_a)
            pert.append(dev)
            has.append(idx[cfg.command_topic] >= 0)
            t += cfg.plan_dt_s
        if len(qs) >= 2:
            out.append({'images': np.stack(imgs), 'q': np.array(qs, np.float32),
                        'action': np.array(acts, np.float32), 'has_action': np.array(has),
                        'label_action': np.array(labels, np.float32),
                        'perturbation': np.array(pert, np.float32),
                        'task_state': states})
    return out


def _target(msg: Any, q: np.ndarray, names: tuple[str, ...], dt_s: float) -> np.ndarray:
    """(n,) rad: trajectory chunk `msg` interpolated `dt_s` after its stamp, from `q`."""
    times, pos, _ = cv.joint_trajectory_arrays(msg, names)
    tt = np.concatenate([[0.0], times])
    pp = np.concatenate([q[None], pos], axis=0)
    return np.array([np.interp(dt_s, tt, pp[:, j]) for j in range(len(names))])


def build_dataset(cfg: DatasetConfig, use_cache: bool = True, progress: bool = False
                  ) -> Dataset:
    """Read, align and cache the dataset `cfg` describes (see the module docstring)."""
    dirs = episode_dirs(cfg.data_dir)
    if cfg.only_success:
        dirs = [d for d in dirs if _success(d)]
    if cfg.max_episodes:
        dirs = dirs[:cfg.max_episodes]
    if not dirs:
        raise DatasetError(f'{cfg.data_dir}: no episode bags (directories with metadata.yaml)')
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.data_dir) / '.cache'
    cache = cache_dir / f'dataset_{_fingerprint(cfg, dirs)}.npz'
    if use_cache and cache.exists():
        return _load_cache(cache)
    names = load_robot_spec(cfg.robot).joint_names
    seqs: list[dict[str, np.ndarray]] = []
    seq_episode: list[int] = []
    episode_names: list[str] = []
    skipped: dict[str, str] = {}
    sizes: dict[str, str] = {}
    it: Any = dirs
    if progress:
        from tqdm import tqdm
        it = tqdm(dirs, desc='episodes', unit='bag')
    for d in it:
        got = _read_episode(d, cfg, names, sizes)
        if not got:
            skipped[d.name] = 'fewer than 2 aligned frames'
            continue
        for s in got:
            seqs.append(s)
            seq_episode.append(len(episode_names))
        episode_names.append(d.name)
    if not seqs:
        raise DatasetError(f'{cfg.data_dir}: no episode has 2 aligned frames at '
                           f'{cfg.plan_dt_s} s; check stamps and align_tolerance_s')
    lens = [len(s['q']) for s in seqs]
    state_names, task_state = _merge_states(seqs, lens)
    report = DatasetReport(data_dir=str(cfg.data_dir), topics=cfg.required_topics(),
                           episodes=len(episode_names), sequences=len(seqs),
                           frames=int(sum(lens)), plan_rate_hz=1.0 / cfg.plan_dt_s,
                           skipped=skipped, cache_path=str(cache),
                           source_image_sizes=sizes, image_size=cfg.image_size)
    ds = Dataset(images=_concat_freeing(seqs, 'images'),
                 q=np.concatenate([s['q'] for s in seqs]),
                 action=np.concatenate([s['action'] for s in seqs]),
                 has_action=np.concatenate([s['has_action'] for s in seqs]),
                 perturbation=np.concatenate([s['perturbation'] for s in seqs]),
                 label_action=np.concatenate([s['label_action'] for s in seqs]),
                 seq_start=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
                 seq_episode=np.array(seq_episode, np.int64), episode_names=episode_names,
                 report=report, task_state=task_state, task_state_names=state_names)
    if use_cache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # one temporary file per process: two trainings may build the same cache at once
        tmp = cache.with_suffix(f'.{os.getpid()}.tmp.npz')
        try:
            np.savez(tmp, images=ds.images, q=ds.q, action=ds.action, has_action=ds.has_action,
                     perturbation=ds.perturbation, label_action=ds.label_action,
                     seq_start=ds.seq_start, task_state=ds.task_state,
                     task_state_names=np.array(state_names, dtype=str),
                     seq_episode=ds.seq_episode, episode_names=np.array(episode_names),
                     report=json.dumps(asdict(report)))
            tmp.replace(cache)
        finally:
            tmp.unlink(missing_ok=True)   # a cache is GBs: none left behind by a failed write
    return ds


def _concat_freeing(seqs: list[dict[str, Any]], key: str) -> np.ndarray:
    """The sequences' `key` arrays concatenated, each dropped from its sequence as it is copied:
    the images are most of a dataset (13 GB for 4000 push episodes), and np.concatenate would
    hold them twice; the output's pages are only committed as they are written."""
    first = seqs[0][key]
    out = np.empty((sum(len(s[key]) for s in seqs), *first.shape[1:]), first.dtype)
    i = 0
    for s in seqs:
        part = s.pop(key)
        out[i:i + len(part)] = part
        i += len(part)
    return out


def _merge_states(seqs: list[dict[str, Any]], lens: list[int]
                  ) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, (N, S)) of the sequences' per-frame (names, values) or None, NaN where a frame
    has none (S = 0 when no frame has one); states with other names are an error."""
    frames = [f for s, n in zip(seqs, lens) for f in (s['task_state'] or [None] * n)]
    named = [f[0] for f in frames if f is not None]
    if not named:
        return (), np.zeros((len(frames), 0), np.float32)
    names = named[0]
    other = next((n for n in named if n != names), None)
    if other is not None:
        raise DatasetError(f'episodes record different task states ({names} and {other}); '
                           'use one task per dataset')
    nan = np.full(len(names), np.nan)
    return names, np.array([nan if f is None else f[1] for f in frames], np.float32)


def _success(d: Path) -> bool:
    try:
        meta = json.loads((d / 'episode.json').read_text())
    except (OSError, ValueError):
        return True
    return bool(meta.get('metadata', {}).get('success', True))


def _load_cache(path: Path) -> Dataset:
    z = np.load(path)
    report = DatasetReport(**json.loads(str(z['report'])))
    report.cache_hit = True
    return Dataset(images=z['images'], q=z['q'], action=z['action'], has_action=z['has_action'],
                   perturbation=z['perturbation'], label_action=z['label_action'],
                   seq_start=z['seq_start'],
                   seq_episode=z['seq_episode'],
                   episode_names=[str(n) for n in z['episode_names']], report=report,
                   task_state=z['task_state'],
                   task_state_names=tuple(str(n) for n in z['task_state_names']))


def split_sequences(ds: Dataset, heldout_fraction: float, seed: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) sequence indices, split by episode with a seeded shuffle."""
    n_ep = len(ds.episode_names)
    perm = np.random.default_rng(seed).permutation(n_ep)
    n_held = max(1, int(round(heldout_fraction * n_ep))) if n_ep > 1 else 0
    held_eps = set(perm[:n_held].tolist())
    seqs = np.arange(ds.num_sequences)
    held = np.array([e in held_eps for e in ds.seq_episode.tolist()], bool)
    return seqs[~held], seqs[held]
