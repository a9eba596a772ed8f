"""`vidplan replay BAG`: the whole stack on a recorded bag, in shadow mode. ROS-free.

    vidplan replay data/franka_push/push_3                  # model from the bag's metadata
    vidplan replay my_robot_bag --model franka_push --camera front=/front/color/image_raw

reads a ROS 2 bag (mcap or sqlite3; Humble, Iron or Jazzy, through `rosbags`), finds the model
set's camera and joint topics (`replay_topics`, printed), and runs perception -> planner ->
grounding -> executor on the recorded observations, one replan every `replan_period_s` of bag
time, as fast as possible (`timing='fast'`) or at the recorded pace (`'recorded'`). The executor
runs in shadow mode: it takes the recorded joint states and the plans and computes its commands
at its control rate, and nothing is commanded. By default time stands still while the stack
computes (`latency='frozen'`, reproducible); `'measured'` hands each plan to the executor its
measured compute time later, as a robot would see it. All times are the bag's log time (what
`ros2 bag play --clock` publishes).

Output (`<bag>_replay/` by default): an mcap bag that Foxglove and `ros2 bag play` open, with the
original topics (those with a ROS 2 standard definition) and, at the time each is available::

    /vidplan/latent, /vidplan/latent/joint_states   Image 32FC1, JointState (the perception node's)
    /vidplan/video_plan, /vidplan/plan_preview      Image 32FC1, Image rgb8 (the planner node's)
    /vidplan/grounded_plan (+ /feasibility)         JointTrajectory, Float64MultiArray
    /vidplan/shadow/joint_command                   JointState: the executor's command, never sent
    /diagnostics                                    DiagnosticArray per plan: latency, figures

plus `replay_report.json` / `.md` (`replay_score`). A bag that is truncated or corrupt ends the
replay with a `ReplayError`; the output bag is closed first (readable, metadata
`complete: false`, holding what was replayed) and the report says where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from vidplan_ros.core.config import require, require_one_of, require_positive
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.data.bags import BagError, BagReader, BagWriter
from vidplan_ros.data.replay_run import ReplayRun, copy_plan, model_for_bag
from vidplan_ros.data.replay_score import score, write_report
from vidplan_ros.data.replay_topics import ReplayError, detect_topics, parse_pairs

__all__ = ['ReplayConfig', 'ReplayError', 'ReplayResult', 'build_parser', 'default_output',
           'main', 'replay']


@dataclass(frozen=True)
class ReplayConfig:
    """How a bag is replayed. Topic overrides: '' = detect; times in s of bag time."""

    model: str = ''                    # model set name or directory; '' = from bag metadata
    method: str = ''                   # grounding method; '' = config/grounding.yaml's
    cameras: tuple[str, ...] = ()      # CAMERA=/topic overrides of the detection
    joints_topic: str = ''
    reference_topic: str = ''          # the recorded command to score against; 'none' = none
    joint_map: tuple[str, ...] = ()    # BAG_JOINT=ROBOT_JOINT renames
    timing: str = 'fast'               # fast | recorded
    rate: float = 1.0                  # playback rate under timing=recorded
    latency: str = 'frozen'            # frozen | measured
    replan_period_s: float = 0.0       # 0 = the model's plan period
    max_skew_s: float = 0.05           # inputs of one observation lie within this
    start_s: float = 0.0               # from the bag's first message
    duration_s: float = 0.0            # 0 = to the end
    command_rate_hz: float = 50.0      # shadow commands written per second
    preview_every: int = 1             # a plan preview every this many plans; 0 = none
    copy_topics: bool = True           # copy the bag's own topics into the output
    noise_seed: int = 0
    device: str = 'cpu'
    # torch threads; 1 as the nodes (config/*.yaml): with torch's default (one per core) a
    # replay on a busy 2-core machine ran 30x slower (0.11 vs 3.3 frames/s), 0 = torch's default
    threads: int = 1
    overwrite: bool = False
    grounding_config: str = ''         # params file; '' = the package's config/grounding.yaml
    executor_config: str = ''          # params file; '' = the package's config/executor.yaml

    def __post_init__(self) -> None:
        require_one_of(self, 'timing', ('fast', 'recorded'))
        require_one_of(self, 'latency', ('frozen', 'measured'))
        require_positive(self, 'rate', 'max_skew_s', 'command_rate_hz')
        for name in ('replan_period_s', 'start_s', 'duration_s'):
            require(getattr(self, name) >= 0, name, getattr(self, name), 'seconds >= 0')
        require(self.preview_every >= 0, 'preview_every', self.preview_every,
                'a plan count >= 0 (0: no preview)')
        require(self.threads >= 0, 'threads', self.threads, 'an integer >= 0 (0: default)')
        parse_pairs(self.cameras, '--camera', 'front=/front/color/image_raw')
        parse_pairs(self.joint_map, '--joint-map', 'panda_joint1=fr3_joint1')


@dataclass(frozen=True)
class ReplayResult:
    output: Path
    report: dict[str, Any]
    report_paths: tuple[Path, Path]


def default_output(bag: str | Path) -> Path:
    """`<bag>_replay` beside the bag (`x.mcap` -> `x_replay`)."""
    bag = Path(bag)
    return bag.with_name((bag.stem if bag.suffix == '.mcap' else bag.name) + '_replay')


def _load_pipeline(cfg: ReplayConfig, model: str) -> Any:
    from vidplan_ros.core.baselines import GrounderConfig
    from vidplan_ros.core.config import load_config
    from vidplan_ros.core.paths import config_dir
    from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
    grounding = load_config(GrounderConfig, cfg.grounding_config or
                            config_dir() / 'grounding.yaml')
    if cfg.method:
        grounding = replace(grounding, method=cfg.method)
    return Pipeline(PipelineConfig(model=model, device=cfg.device, threads=cfg.threads,
                                   noise_seed=cfg.noise_seed, grounding=grounding))


def replay(bag_path: str | Path, out: str | Path | None = None,
           cfg: ReplayConfig | None = None, pipeline: Any = None, progress: bool = True,
           echo: Callable[[str], None] = print, command: str = '') -> ReplayResult:
    """Replay `bag_path` through the stack (see the module docstring) into `out`.

    `pipeline` (a `runtime.pipeline.Pipeline`) is loaded from `cfg.model` (or the bag's
    metadata) when not given; it is reset first. Raises `ReplayError` for bags that cannot be
    replayed as asked (missing topics, other joints, corrupt data), saying how to fix it.
    """
    from vidplan_ros.core.config import load_config
    from vidplan_ros.core.executor import ExecutorConfig
    from vidplan_ros.core.paths import config_dir

    cfg = cfg or ReplayConfig()
    bag_path = Path(bag_path)
    out = Path(out) if out else default_output(bag_path)
    if out.resolve() == bag_path.resolve() or bag_path.resolve() in out.resolve().parents:
        raise ReplayError(f'the output {out} would overwrite the bag it replays; choose '
                          'another --out')
    if out.exists() and not cfg.overwrite:
        raise ReplayError(f'{out} exists already; choose another --out, or pass --overwrite')
    command = command or f'replay({str(bag_path)!r}, {str(out)!r}, {cfg!r})'
    reader = BagReader(bag_path)
    try:
        reader.open()
    except BagError as exc:
        if not (bag_path.is_file() or any(bag_path.glob('*.mcap'))
                or any(bag_path.glob('*.db3'))):
            raise ReplayError(str(exc)) from None   # no bag there: a typo, nothing written
        _unreadable(bag_path, out, cfg, exc, command)
    with reader:
        if pipeline is None:
            pipeline = _load_pipeline(cfg, cfg.model or model_for_bag(reader.metadata, bag_path))
        pipeline.reset()
        topics = reader.topics
        try:
            tmap = _detect(reader, bag_path, pipeline, cfg)
        except _ReadError as exc:
            _unreadable(bag_path, out, cfg, exc, command)
        copied, skipped = copy_plan(bag_path, topics, tmap) if cfg.copy_topics else ([], {})
        executor = load_config(ExecutorConfig, cfg.executor_config or
                               config_dir() / 'executor.yaml', prefix='executor.')
        echo(f'replay {bag_path} ({reader.message_count} messages, {reader.duration_s:.2f} s) '
             f'with model {pipeline.model_dir.name}, grounding {pipeline.method}:')
        echo(tmap.summary())
        for topic, why in skipped.items():
            echo(f'  not copied: {topic} ({why})')
        count = topics[tmap.joints.topic].count
        run = ReplayRun(pipeline, tmap, cfg, executor,
                        reader.duration_s / (count - 1) if count > 1 else 0.0, echo)
        start_ns = reader.start_ns + int(cfg.start_s * 1e9)
        stop_ns = start_ns + int(cfg.duration_s * 1e9) if cfg.duration_s else None
        meta = {'replay_of': str(bag_path), 'model': pipeline.model_dir.name,
                'method': pipeline.method, 'inputs': tmap.inputs, 'shadow': True,
                'source_metadata': reader.metadata}
        error: str | None = None
        wall0 = time.perf_counter()
        with BagWriter(out, metadata=meta, overwrite=cfg.overwrite, compression='zstd') as bag:
            try:
                read = sorted({*tmap.inputs, *copied})
                whole = not (cfg.start_s or cfg.duration_s)
                run.play(reader.messages(read, start_ns, stop_ns, raw=True), bag, copied,
                         progress, sum(topics[t].count for t in read) if whole else None)
            except ReplayError as exc:
                error = str(exc)
            except KeyboardInterrupt:   # close the bag and write the report, then say so
                error = f'interrupted (Ctrl-C) {run.span_s:.2f} s into the bag'
            wall = time.perf_counter() - wall0
            bag.update_metadata(complete=error is None, error=error,
                                replans=len(run.log.replans))
        report = _report(bag_path, out, cfg, pipeline, run, wall, error, skipped, tmap, command)
        paths = write_report(report, out)
    if error is not None:
        raise ReplayError(f'{error}. The output bag {out} is closed and holds what was '
                          f'replayed before that (metadata complete: false); report {paths[1]}')
    return ReplayResult(out, report, paths)


class _ReadError(BagError):
    """A bag whose messages cannot be read (truncated, corrupt)."""


def _detect(reader: BagReader, bag_path: Path, pipeline: Any, cfg: ReplayConfig) -> Any:
    """The `TopicMap` of the bag open in `reader` for `pipeline`'s model and robot."""

    def peek(topic: str) -> Any:
        try:
            return next(iter(reader.messages([topic]))).message
        except Exception as exc:  # noqa: BLE001 - rosbags, zstd, sqlite3 all differ
            raise _ReadError(f'{bag_path}: cannot read {topic} ({type(exc).__name__}: {exc});'
                             ' the bag is truncated or corrupt. For an mcap bag, `vidplan bag '
                             'recover BAG NEW` copies what made it to disk; replay NEW') from None

    return detect_topics(
        reader.topics, {c: pipeline.models.cfg.data.image_topic(c) for c in pipeline.cameras},
        pipeline.spec, peek,
        camera_topics=parse_pairs(cfg.cameras, '--camera', ''), joints_topic=cfg.joints_topic,
        reference_topic=cfg.reference_topic, reference_defaults=_reference_defaults(pipeline),
        joint_map=parse_pairs(cfg.joint_map, '--joint-map', ''))


def _reference_defaults(pipeline: Any) -> list[str]:
    from vidplan_ros.data.recorder import COMMANDED_TRAJECTORY_TOPIC
    return [pipeline.models.cfg.data.command_topic,
            pipeline.spec.interfaces.joint_trajectory_topic, COMMANDED_TRAJECTORY_TOPIC]


def _unreadable(bag_path: Path, out: Path, cfg: ReplayConfig, exc: BagError,
                command: str) -> None:
    """An input that does not open: an empty, closed output bag and a report saying why."""
    with BagWriter(out, metadata={'replay_of': str(bag_path), 'shadow': True},
                   overwrite=cfg.overwrite) as bag:
        bag.update_metadata(complete=False, error=str(exc))
    write_report({'bag': str(bag_path), 'output': str(out), 'command': command,
                  'complete': False, 'error': str(exc), 'model': cfg.model or '?',
                  'method': cfg.method or '?', 'timing': cfg.timing, 'latency': cfg.latency,
                  'messages': 0, 'bag_span_s': 0.0, 'wall_s': 0.0, 'frames_per_s': 0.0,
                  'realtime_factor': 0.0, 'topics_summary': '(the bag did not open)',
                  'score': score(_empty_log(), 0.0, [])}, out)
    raise ReplayError(f'{exc}. Nothing was replayed; the output bag {out} is closed and '
                      'empty (metadata complete: false)') from None


def _empty_log() -> Any:
    from vidplan_ros.data.replay_score import ReplayLog
    return ReplayLog(0)


def _report(bag_path: Path, out: Path, cfg: ReplayConfig, pipeline: Any, run: ReplayRun,
            wall: float, error: str | None, skipped: dict[str, str], tmap: Any,
            command: str) -> dict[str, Any]:
    span = run.span_s
    replans = len(run.log.replans)
    status = run.executor.status()
    return {
        'bag': str(bag_path), 'output': str(out), 'command': command,
        'complete': error is None, 'error': error,
        'model': pipeline.model_dir.name, 'method': pipeline.method,
        'timing': cfg.timing, 'latency': cfg.latency, 'config': _plain_cfg(cfg),
        'inputs': {'cameras': {c: t.topic for c, t in tmap.cameras.items()},
                   'joints': tmap.joints.topic,
                   'reference': tmap.reference.topic if tmap.reference else None},
        'topics_summary': tmap.summary(), 'not_copied': skipped,
        'messages': run.messages, 'bag_span_s': span, 'wall_s': wall,
        'frames_per_s': replans / wall if wall > 0 else 0.0,
        'realtime_factor': span / wall if wall > 0 else 0.0,
        'notes': run.notes,
        'score': score(run.log, pipeline.plan_dt_s, pipeline.spec.joint_names),
        'executor': {'config': _plain_cfg(run.executor.cfg),
                     'modes': {k[5:]: int(v) for k, v in status['counts'].items()
                               if k.startswith('mode_')},
                     'clamps': status['clamps'], 'rejected': status['rejected']},
    }


def _plain_cfg(cfg: Any) -> dict[str, Any]:
    from dataclasses import asdict
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


# --- vidplan replay ---------------------------------------------------------------------------

def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of `vidplan replay` (fills `parser` when given)."""
    parser = parser or argparse.ArgumentParser(
        prog='vidplan replay', description='Replay a ROS 2 bag through perception, planner, '
        'grounding and a shadow executor: an output bag and a score report.')
    d = ReplayConfig()
    parser.add_argument('bag', help='bag directory (mcap or sqlite3) or .mcap file')
    parser.add_argument('-o', '--out', default='', help='output bag (default <bag>_replay)')
    parser.add_argument('--model', default='', help="model set (default: the bag's task's)")
    parser.add_argument('--method', default='', help='grounding method (default: '
                        "config/grounding.yaml's)")
    parser.add_argument('--camera', action='append', default=[], metavar='CAMERA=/TOPIC',
                        help='image topic of a model camera (default: detected)')
    parser.add_argument('--joints', default='', metavar='/TOPIC',
                        help='JointState (or G1 LowState) topic (default: detected)')
    parser.add_argument('--reference', default='', metavar='/TOPIC',
                        help="recorded JointTrajectory to score against ('none': the recorded "
                        'joint motion only; default: detected)')
    parser.add_argument('--joint-map', action='append', default=[], metavar='BAG=ROBOT',
                        help="rename a bag joint to the robot's")
    parser.add_argument('--timing', choices=('fast', 'recorded'), default=d.timing,
                        help='as fast as possible, or at the recorded pace')
    parser.add_argument('--rate', type=float, default=d.rate, help='pace under --timing '
                        'recorded')
    parser.add_argument('--latency', choices=('frozen', 'measured'), default=d.latency,
                        help='plans reach the executor at once, or their compute time later')
    parser.add_argument('--replan-period', type=float, default=d.replan_period_s,
                        metavar='S', help="s between replans (0: the model's plan period)")
    parser.add_argument('--max-skew', type=float, default=d.max_skew_s, metavar='S',
                        help='the frames and joints of one observation lie within this')
    parser.add_argument('--start', type=float, default=d.start_s, metavar='S')
    parser.add_argument('--duration', type=float, default=d.duration_s, metavar='S',
                        help='s of bag to replay (0: all)')
    parser.add_argument('--no-copy', action='store_true',
                        help="leave the bag's own topics out of the output")
    parser.add_argument('--preview-every', type=int, default=d.preview_every, metavar='N')
    parser.add_argument('--threads', type=int, default=d.threads,
                        help="torch threads (default 1, as the nodes; 0: torch's default)")
    parser.add_argument('--device', default=d.device)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        cfg = ReplayConfig(model=args.model, method=args.method, cameras=tuple(args.camera),
                           joints_topic=args.joints, reference_topic=args.reference,
                           joint_map=tuple(args.joint_map), timing=args.timing, rate=args.rate,
                           latency=args.latency, replan_period_s=args.replan_period,
                           max_skew_s=args.max_skew,
                           start_s=args.start, duration_s=args.duration,
                           copy_topics=not args.no_copy, preview_every=args.preview_every,
                           threads=args.threads, device=args.device, overwrite=args.overwrite)
        result = replay(args.bag, args.out or None, cfg, progress=not args.no_progress,
                        command=shlex.join(['vidplan', 'replay', *argv]))
    except VidplanError as exc:   # ReplayError, BagError, a model set that does not load
        print(f'vidplan replay: error: {exc}', file=sys.stderr)
        return 2
    s = result.report['score']
    act = s['action_error_rad']
    if not s['replans']:
        print(f'warning: no observation was planned from (skipped: '
              f'{s["observations_skipped"] or "none"}): every camera and the joints must come '
              f'within --max-skew of one another; check --start/--duration and the topics',
              file=sys.stderr)
    print(f'{s["replans"]} replans at {result.report["frames_per_s"]:.2f} frames/s '
          f'({result.report["realtime_factor"]:.2f}x real time); action error vs recorded '
          f'command {act["vs_recorded_command"].get("mean", float("nan")):.4f} rad, vs recorded '
          f'motion {act["vs_recorded_motion"].get("mean", float("nan")):.4f} rad (mean abs); '
          f'plans accepted {s["plans"]["accepted"]}, rejected {s["plans"]["rejected"] or 0}')
    print(f'wrote {result.output} and {result.report_paths[1]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
