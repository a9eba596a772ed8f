"""``vidplan eval``: closed-loop success of grounding methods under video-plan corruptions.

Every (method, corruption) runs over the same seeds in the embedded sim with the whole stack in
the loop (:func:`~vidplan_ros.eval.closed_loop.run_closed_loop`: sim time stands still while
the stack computes, so the outcome of an episode depends only on the method, the corruption and
the seed, not on the machine, the order or the number of workers).

    vidplan eval --task franka/push --methods gvp_wm,inverse_dynamics,mpc_cem \\
        --corruptions none,motion_blur,frame_drop --seeds 10000-10049 \\
        --out results/eval/franka_push --workers 2 --video 2
    vidplan eval --task g1/reach --methods all --corruptions all --seeds 10000-10019 \\
        --out results/eval/g1_reach

Writes ``results.json`` (every episode, the config, machine, command line and git commit),
``results.md`` (success with Wilson 95% intervals, time to success, grounding ms per replan,
alignment, rejected plans), ``success.png``, ``latency.png`` and, with ``--video N``,
``videos/<method>__<corruption>.mp4`` of the first N seeds (eval_video.py).

Residual gate. The executor refuses plans whose world-model dynamics residual exceeds
``executor.max_dynamics_residual``. Methods that commit to the plan's own latents
(inverse_dynamics, actions_only) have a large residual by construction, and shooting methods
report the residual of their own rollout, so the gate only means something for the collocation
methods. ``--residual-gate auto`` (default) gates gvp_wm and collocation only; ``on`` gates
every method; ``off`` none (the gate set to 1e9).
"""

from __future__ import annotations

import argparse
import datetime
import os
import queue
import shlex
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

from vidplan_ros.core.baselines import METHODS
from vidplan_ros.core.config import require, require_one_of, require_positive
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.eval.closed_loop import LATENCIES
from vidplan_ros.eval.corruptions import CORRUPTIONS, CorruptionConfig
from vidplan_ros.eval.expert_plan import PLAN_SOURCES
from vidplan_ros.runtime.pipeline import require_step_gain

__all__ = ['EvalConfig', 'Job', 'executor_config_for', 'main', 'parse_seeds', 'run_eval']

COLLOCATION_METHODS = ('gvp_wm', 'collocation')
GATES = ('auto', 'on', 'off')
GATE_OFF_RESIDUAL = 1e9
MIN_EVAL_SEED = 10000   # the committed model sets were trained on seeds 0-4399 (model cards)
GATE_TEXT = {'auto': f'only {", ".join(COLLOCATION_METHODS)} gated', 'on': 'every method gated',
             'off': 'no method gated'}


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation: which task, methods, corruptions and seeds, and how the loop runs."""

    task: str = 'franka/reach'
    methods: tuple[str, ...] = ('gvp_wm',)
    corruptions: tuple[str, ...] = ('none',)
    seeds: tuple[int, ...] = (1000,)
    model: str = ''                   # model set; '' = the task's (franka/push -> franka_push)
    max_time_s: float = 0.0           # episode limit, sim s; 0 = the task's default
    replan_period_s: float = 0.2
    residual_gate: str = 'auto'       # auto | on | off (module docstring)
    video_episodes: int = 0           # videos of the first N seeds of each method x corruption
    workers: int = 1                  # processes, each with its own SimEnv and Pipeline
    threads: int = 1                  # torch threads per worker
    grounding_config: str = ''        # params YAML of the grounders; '' = config/grounding.yaml
    executor_config: str = ''         # params YAML (executor: section); '' = config/executor.yaml
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)  # strengths
    plan_sources: tuple[str, ...] = ('learned',)   # learned planner | expert's future
    executor_only: bool = False       # also the expert's chunks straight into the executor
    latency: str = 'frozen'           # frozen | real | fixed (eval.closed_loop)
    latency_fixed_s: float = 0.0
    step_gain: float = 0.0            # inverse dynamics' step gain; 0 = the model set's

    def __post_init__(self) -> None:
        from vidplan_ros.sim.tasks import TASKS
        require_one_of(self, 'task', sorted(TASKS))
        require(bool(self.methods) and set(self.methods) <= set(METHODS), 'methods',
                self.methods, f'one or more of {list(METHODS)}')
        require(bool(self.corruptions) and set(self.corruptions) <= set(CORRUPTIONS),
                'corruptions', self.corruptions, f'one or more of {list(CORRUPTIONS)}')
        require(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds), 'seeds',
                self.seeds, 'one or more distinct integers')
        require(self.max_time_s >= 0, 'max_time_s', self.max_time_s, '>= 0 s (0: default)')
        require_positive(self, 'replan_period_s')
        require_one_of(self, 'residual_gate', GATES)
        require(self.video_episodes >= 0, 'video_episodes', self.video_episodes, '>= 0')
        require(self.workers >= 1, 'workers', self.workers, 'an integer >= 1')
        require(self.threads >= 1, 'threads', self.threads, 'an integer >= 1')
        require(bool(self.plan_sources) and set(self.plan_sources) <= set(PLAN_SOURCES),
                'plan_sources', self.plan_sources, f'one or more of {list(PLAN_SOURCES)}')
        require_one_of(self, 'latency', LATENCIES)
        require(self.latency_fixed_s >= 0, 'latency_fixed_s', self.latency_fixed_s, '>= 0 s')
        require_step_gain(self.step_gain)

    @property
    def report_methods(self) -> list[str]:
        """Row order of the report: the expert ceiling first, then the methods."""
        return (['expert_executor'] if self.executor_only else []) + list(self.methods)

    @property
    def model_name(self) -> str:
        return self.model or self.task.replace('/', '_')

    @property
    def episode_time_s(self) -> float:
        from vidplan_ros.sim.rollout import DEFAULT_MAX_TIME_S
        return self.max_time_s or DEFAULT_MAX_TIME_S.get(self.task, 15.0)

    def config_path(self, which: str) -> Path:
        from vidplan_ros.core.paths import share_dir
        given = self.grounding_config if which == 'grounding' else self.executor_config
        return Path(given) if given else share_dir() / 'config' / f'{which}.yaml'


class Job(NamedTuple):
    index: int
    method: str
    corruption: str
    seed: int
    video: bool
    plan_source: str = 'learned'


def make_jobs(cfg: EvalConfig) -> list[Job]:
    """The expert ceiling (with executor_only), then every (method, plan source, corruption,
    seed), method-major; the first video_episodes seeds film."""
    jobs: list[Job] = []
    if cfg.executor_only:
        jobs += [Job(len(jobs) + i, 'expert_executor', 'none', int(s), False, 'expert')
                 for i, s in enumerate(cfg.seeds)]
    for m in cfg.methods:
        for src in cfg.plan_sources:
            for c in cfg.corruptions:
                for i, s in enumerate(cfg.seeds):
                    jobs.append(Job(len(jobs), m, c, int(s), i < cfg.video_episodes, src))
    return jobs


def executor_config_for(method: str, base: Any, gate: str) -> Any:
    """``base`` (an ExecutorConfig) with the residual gate of ``method`` under ``gate``."""
    gated = gate == 'on' or (gate == 'auto' and method in COLLOCATION_METHODS)
    return base if gated else replace(base, max_dynamics_residual=GATE_OFF_RESIDUAL)


def video_part(out_dir: Path, job: Job) -> Path:
    return out_dir / 'videos' / 'parts' / f'{_video_name(job)}__{job.seed}.mp4'


def _video_name(job: Job) -> str:
    src = '' if job.plan_source == 'learned' else f'__{job.plan_source}_plan'
    return f'{job.method}{src}__{job.corruption}'


# --- one worker: its own env and pipeline ----------------------------------------------------

class _Worker:
    def __init__(self, cfg: EvalConfig, out_dir: Path) -> None:
        import torch

        from vidplan_ros.core.baselines import GrounderConfig
        from vidplan_ros.core.config import load_config
        from vidplan_ros.core.executor import ExecutorConfig
        from vidplan_ros.eval.closed_loop import make_env
        from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
        torch.set_num_threads(cfg.threads)
        self.cfg, self.out_dir = cfg, out_dir
        grounding = load_config(GrounderConfig, cfg.config_path('grounding'))
        self.executor = load_config(ExecutorConfig, cfg.config_path('executor'),
                                    prefix='executor.')
        self.pipeline = Pipeline(PipelineConfig(model=cfg.model_name, threads=cfg.threads,
                                                grounding=grounding, step_gain=cfg.step_gain))
        self.env = make_env(self.pipeline, cfg.task)   # the model's cameras at its image size
        self._methods: dict[str, Any] = {}
        self._corruptors: dict[str, Any] = {}
        self._expert_plans: Any = None       # ExpertPlanSource, made on first use
        self._expert_chunks: Any = None      # ExpertChunks, made on first use

    def run(self, job: Job) -> dict[str, Any]:
        from vidplan_ros.eval.closed_loop import (EpisodeConfig, run_closed_loop,
                                                  run_expert_executor)
        from vidplan_ros.eval.corruptions import PlanCorruptor
        from vidplan_ros.eval.eval_video import EpisodeVideo
        from vidplan_ros.eval.expert_plan import (ExpertChunks, ExpertPlanSource,
                                                  GroundingVsExpert)
        cfg = self.cfg
        if job.method == 'expert_executor':
            self._expert_chunks = self._expert_chunks or ExpertChunks(self.env)
            episode = EpisodeConfig(max_time_s=cfg.episode_time_s,
                                    replan_period_s=cfg.replan_period_s,
                                    executor=self.executor, latency=cfg.latency,
                                    latency_fixed_s=cfg.latency_fixed_s)
            outcome = run_expert_executor(self.env, self._expert_chunks, job.seed, episode)
            return {'corruption': job.corruption, 'plan_source': job.plan_source,
                    **asdict(outcome)}
        source = None
        if job.plan_source == 'expert':
            self._expert_plans = self._expert_plans or ExpertPlanSource(self.pipeline,
                                                                        self.env)
            source = self._expert_plans.plan
        if job.method not in self._methods:
            self._methods[job.method] = self.pipeline.with_method(job.method)
        if job.corruption not in self._corruptors:
            self._corruptors[job.corruption] = PlanCorruptor(
                replace(cfg.corruption, name=job.corruption), self.pipeline, self.env)
        pipeline, corruptor = self._methods[job.method], self._corruptors[job.corruption]
        episode = EpisodeConfig(max_time_s=cfg.episode_time_s,
                                replan_period_s=cfg.replan_period_s,
                                executor=executor_config_for(job.method, self.executor,
                                                             cfg.residual_gate),
                                latency=cfg.latency, latency_fixed_s=cfg.latency_fixed_s)
        video = (EpisodeVideo(video_part(self.out_dir, job), self.pipeline,
                              1.0 / cfg.replan_period_s,
                              f'{job.method} / {job.plan_source} plan / {job.corruption} / '
                              f'seed {job.seed}')
                 if job.video else None)
        versus = GroundingVsExpert(self._expert_plans, video) if source is not None else None
        try:
            outcome = run_closed_loop(self.env, pipeline, job.seed, episode,
                                      plan_hook=corruptor.hook(job.seed),
                                      on_replan=versus or video, plan_source=source)
        finally:
            if video is not None:
                video.close()
        return {'corruption': job.corruption, 'plan_source': job.plan_source,
                **asdict(outcome), **(versus.summary() if versus is not None else {})}

    def sources(self) -> dict[str, str]:
        return {name: c.wrong.source for name, c in self._corruptors.items()
                if c.wrong is not None}

    def close(self) -> None:
        for c in self._corruptors.values():
            c.close()
        if self._expert_plans is not None:
            self._expert_plans.close()
        self.env.close()


def _worker_main(cfg: EvalConfig, out_dir: Path, jobs: Any, results: Any) -> None:
    """A worker process: take jobs until None, put ('ok', index, episode) or ('error', text)."""
    os.environ.setdefault('LP_NUM_THREADS', '1')        # software GL: one core per worker
    parent = os.getppid()
    try:
        worker = _Worker(cfg, out_dir)
        while (job := jobs.get()) is not None:
            if os.getppid() != parent:   # the run was killed: nobody reads our results
                return
            results.put(('ok', job.index, worker.run(job), worker.sources()))
        worker.close()
    except BaseException:  # noqa: BLE001 - reported to the parent, which stops the run
        results.put(('error', -1, traceback.format_exc(), {}))


Report = Callable[[Job, dict[str, Any]], None]


def _run_in_process(cfg: EvalConfig, jobs: list[Job], out_dir: Path,
                    report: Report) -> tuple[dict[int, dict[str, Any]], dict[str, str]]:
    worker = _Worker(cfg, out_dir)
    done: dict[int, dict[str, Any]] = {}
    try:
        for job in jobs:
            done[job.index] = worker.run(job)
            report(job, done[job.index])
        return done, worker.sources()
    finally:
        worker.close()


def _run_in_workers(cfg: EvalConfig, jobs: list[Job], out_dir: Path,
                    report: Report) -> tuple[dict[int, dict[str, Any]], dict[str, str]]:
    import multiprocessing
    ctx = multiprocessing.get_context('spawn')     # no forked torch / GL state
    job_q, result_q = ctx.Queue(), ctx.Queue()
    n = min(cfg.workers, len(jobs))
    for job in jobs:
        job_q.put(job)
    for _ in range(n):
        job_q.put(None)
    procs = [ctx.Process(target=_worker_main, args=(cfg, out_dir, job_q, result_q),
                         daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    done: dict[int, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    try:
        while len(done) < len(jobs):
            try:
                status, index, payload, src = result_q.get(timeout=5.0)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    raise VidplanError('every eval worker exited before finishing') from None
                continue
            if status == 'error':
                raise VidplanError(f'an eval worker failed:\n{payload}')
            done[index] = payload
            sources.update(src)
            report(jobs[index], payload)
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    return done, sources


# --- the whole evaluation --------------------------------------------------------------------

def _machine(cfg: EvalConfig) -> dict[str, Any]:
    import torch

    from vidplan_ros.sim.bench import machine_info
    info = machine_info()
    info.update(torch=torch.__version__, workers=cfg.workers, threads_per_worker=cfg.threads,
                cuda=bool(torch.cuda.is_available()))
    return info


def git_state() -> dict[str, Any]:
    """{'commit', 'dirty'} of the source checkout, or {} outside one (core/provenance.py)."""
    from vidplan_ros.core.provenance import git_state as state
    return state()


def _model_info(model: str) -> dict[str, Any]:
    """A model set's config.json (params, training, held-out metrics)."""
    import json
    from vidplan_ros.runtime.pipeline import model_dir_for
    return json.loads((model_dir_for(model) / 'config.json').read_text())


def planner_offline(model: str) -> dict[str, float]:
    """The model set's held-out `plan -> action` cosines (nn/metrics.py; its config.json), the
    planner's share of the diagnosis measured without the sim; empty for a set trained before
    that metric existed."""
    held = _model_info(model).get('metrics_heldout', {})
    return {k: float(v) for k, v in held.items() if k.startswith('plan_action_cosine')}


def run_eval(cfg: EvalConfig, out_dir: str | Path, command: str = '',
             progress: bool = True) -> dict[str, Any]:
    """Run every episode of ``cfg``, write the result files into ``out_dir``, return the
    result dict (eval_report.py describes it)."""
    from vidplan_ros.eval.eval_report import summarize, write_results
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = make_jobs(cfg)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    machine = _machine(cfg)
    wall0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit='ep', file=sys.stderr, desc=f'eval {cfg.task}')
    tally: dict[str, list[int]] = {}

    def report(job: Job, episode: dict[str, Any]) -> None:
        name = _video_name(job).replace('__', '/')
        ok = tally.setdefault(name, [0, 0])
        ok[0] += bool(episode['success'])
        ok[1] += 1
        if bar is not None:
            bar.set_postfix_str(f'{name} success {ok[0]}/{ok[1]}')
            bar.update(1)

    try:
        run = _run_in_workers if cfg.workers > 1 else _run_in_process
        done, sources = run(cfg, jobs, out_dir, report)
    finally:
        if bar is not None:
            bar.close()
    episodes = [done[j.index] for j in jobs]
    config = asdict(cfg)
    config.update(model=cfg.model_name, max_time_s=cfg.episode_time_s,
                  grounding_config=str(cfg.config_path('grounding')),
                  executor_config=str(cfg.config_path('executor')))
    machine['load_average_1min_at_end'] = round(os.getloadavg()[0], 2)
    result = {
        'config': config, 'command': command or f'run_eval({cfg!r})', 'machine': machine,
        'git': git_state(), 'started': started, 'wall_s': time.perf_counter() - wall0,
        'residual_gate_text': GATE_TEXT[cfg.residual_gate], 'corruption_sources': sources,
        'episodes': episodes, 'planner_offline': planner_offline(cfg.model_name),
        'summary': summarize(episodes, cfg.report_methods, list(cfg.corruptions),
                             list(cfg.plan_sources)),
    }
    write_results(result, out_dir)
    if cfg.video_episodes:
        _join_videos(jobs, out_dir)
    return result


def _join_videos(jobs: list[Job], out_dir: Path) -> None:
    from vidplan_ros.eval.eval_video import concat_videos
    groups: dict[str, list[Path]] = {}
    for job in jobs:
        if job.video:
            groups.setdefault(_video_name(job), []).append(video_part(out_dir, job))
    for name, parts in groups.items():
        concat_videos(parts, out_dir / 'videos' / f'{name}.mp4')
        for p in parts:
            p.unlink()
    parts_dir = out_dir / 'videos' / 'parts'
    if parts_dir.is_dir() and not any(parts_dir.iterdir()):
        parts_dir.rmdir()


# --- command line ----------------------------------------------------------------------------

def parse_seeds(text: str) -> tuple[int, ...]:
    """'1000-1049', '1000,1003' or a mix ('1000-1004,1010') -> seeds in order."""
    seeds: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(','))):
            lo, _, hi = part.partition('-')
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise VidplanError(f'--seeds {text!r}: use ranges and lists like 1000-1049 or '
                           '1000,1002') from None
    if not seeds:
        raise VidplanError(f'--seeds {text!r} names no seed')
    return tuple(seeds)


def _latency(text: str) -> tuple[str, float]:
    """--latency: 'frozen' | 'real' | a fixed time in ms -> (mode, fixed seconds)."""
    if text in ('frozen', 'real'):
        return text, 0.0
    try:
        ms = float(text)
    except ValueError:
        ms = -1.0
    if not ms >= 0:
        raise VidplanError(f'--latency {text!r}: use frozen, real or a time in ms >= 0 '
                           '(e.g. --latency 150)')
    return 'fixed', ms / 1e3


def _names(text: str, known: tuple[str, ...], flag: str) -> tuple[str, ...]:
    names = tuple(known) if text == 'all' else tuple(n.strip() for n in text.split(',') if n)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise VidplanError(f'{flag}: unknown {unknown}; choose from {list(known)} or all')
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='vidplan eval', description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('\n', 2)[2])
    p.add_argument('--task', required=True, help='franka/reach | franka/push | g1/reach ...')
    p.add_argument('--model', default='', help="model set (default: the task's)")
    p.add_argument('--methods', default='gvp_wm', help=f'comma list or all: {",".join(METHODS)}')
    p.add_argument('--corruptions', default='none',
                   help=f'comma list or all: {",".join(CORRUPTIONS)}')
    p.add_argument('--seeds', default='10000-10049', help='e.g. 10000-10049 or 10000,10002')
    p.add_argument('--out', required=True, type=Path, help='directory for the result files')
    p.add_argument('--video', type=int, default=0, metavar='N',
                   help='mp4 of the first N seeds of each method x corruption')
    p.add_argument('--workers', type=int, default=1, help='processes (one per core)')
    p.add_argument('--threads', type=int, default=1, help='torch threads per worker')
    p.add_argument('--max-time-s', type=float, default=0.0,
                   help='episode limit, sim s (default: reach 10, push 20)')
    p.add_argument('--replan-period-s', type=float, default=0.2)
    p.add_argument('--plan-source', default='learned',
                   help='learned, expert or learned,expert: the video plan from the learned '
                        "planner, or the scripted expert's future rendered in a copy of the sim "
                        "and encoded by the model set's encoder (planner removed)")
    p.add_argument('--executor-only', action='store_true',
                   help="also run the expert's chunks straight into the executor (the ceiling)")
    p.add_argument('--latency', default='frozen',
                   help='frozen (sim time stops while the stack computes; default), real (the '
                        'sim runs on during the measured compute time) or a fixed time in ms')
    p.add_argument('--step-gain', type=float, default=0.0,
                   help="inverse dynamics' step gain (also GVP-WM's start); default: the model "
                        "set's calibrated inverse_dynamics.step_gain")
    p.add_argument('--residual-gate', default='auto', choices=GATES,
                   help='executor dynamics-residual gate: auto = gvp_wm and collocation only')
    p.add_argument('--grounding-config', default='', help='default config/grounding.yaml')
    p.add_argument('--executor-config', default='', help='default config/executor.yaml')
    p.add_argument('--corruption-seed', type=int, default=0)
    p.add_argument('--blur-frames', type=int, default=3)
    p.add_argument('--blur-sigma-px', type=float, default=1.0)
    p.add_argument('--drop-fraction', type=float, default=0.5)
    p.add_argument('--duplicate-fraction', type=float, default=0.5)
    p.add_argument('--noise-std', type=float, default=0.5, help='relative to the plan RMS')
    p.add_argument('--wrong-task-model', default='',
                   help='model set whose planner makes the wrong_task plans')
    p.add_argument('--allow-training-seeds', action='store_true',
                   help=f'allow seeds < {MIN_EVAL_SEED} (they overlap the training episodes)')
    p.add_argument('--no-progress', action='store_true')
    return p


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    from vidplan_ros.core.errors import ConfigValueError
    seeds = parse_seeds(args.seeds)
    if not args.allow_training_seeds and min(seeds) < MIN_EVAL_SEED:
        raise VidplanError(f'seeds below {MIN_EVAL_SEED} overlap the episodes the committed '
                           f'model sets were trained on; evaluate on {MIN_EVAL_SEED} and up '
                           '(or pass --allow-training-seeds)')
    try:
        corruption = CorruptionConfig(
            seed=args.corruption_seed, blur_frames=args.blur_frames,
            blur_sigma_px=args.blur_sigma_px, drop_fraction=args.drop_fraction,
            duplicate_fraction=args.duplicate_fraction, noise_std=args.noise_std,
            wrong_task_model=args.wrong_task_model)
        latency, fixed_s = _latency(args.latency)
        return EvalConfig(
            plan_sources=_names(args.plan_source, PLAN_SOURCES, '--plan-source'),
            executor_only=args.executor_only, latency=latency, latency_fixed_s=fixed_s,
            step_gain=args.step_gain,
            task=args.task, methods=_names(args.methods, METHODS, '--methods'),
            corruptions=_names(args.corruptions, CORRUPTIONS, '--corruptions'), seeds=seeds,
            model=args.model, max_time_s=args.max_time_s,
            replan_period_s=args.replan_period_s, residual_gate=args.residual_gate,
            video_episodes=args.video, workers=args.workers, threads=args.threads,
            grounding_config=args.grounding_config, executor_config=args.executor_config,
            corruption=corruption)
    except ConfigValueError as exc:
        raise VidplanError(f'--{exc.field.replace("_", "-")} = {exc.value!r}: must be '
                           f'{exc.allowed}') from None


def _without_unavailable(cfg: EvalConfig) -> EvalConfig:
    """`--methods all` on a model set without an action-prior head: no 'policy' to run."""
    if 'policy' not in cfg.methods or len(cfg.methods) == 1:
        return cfg
    if _model_info(cfg.model_name)['params'].get('planner.action_prior', False):
        return cfg
    return replace(cfg, methods=tuple(m for m in cfg.methods if m != 'policy'))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.methods == 'all':
        cfg = _without_unavailable(cfg)
    result = run_eval(cfg, args.out, command='vidplan eval ' + shlex.join(argv),
                      progress=not args.no_progress)
    from vidplan_ros.eval.eval_report import to_markdown
    print(to_markdown(result))
    print(f'wrote {args.out}/results.json, results.md, success.png, latency.png'
          + (', videos/' if cfg.video_episodes else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
