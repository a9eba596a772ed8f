"""`vidplan launch`: start a node graph without ROS, as supervised processes over Cyclone DDS.

    vidplan launch sim --robot franka --task push [--episodes 3] [--model M] [--method M]
                       [--out DIR] [--seed S]
    vidplan launch nodes --model franka_push [--use-sim-time] [--shadow] ...

`sim` is the embedded-MuJoCo demo: the sim node (the task, N episodes), perception, planner,
grounding, executor and a monitor that writes `<out>/run.mp4` (camera views beside the decoded
plan) and `<out>/summary.json` (per-episode success, per-stage latency). It ends with exit 0
after the N episodes, non-zero when a required node dies; Ctrl-C stops every node cleanly.
`nodes` starts only the four vidplan nodes, for a robot or simulator that is already running.
The same graph on a ROS 2 host: `ros2 launch vidplan_ros sim.launch.py` (launch/).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.robot_spec import (COMMAND_INTERFACES, load_robot_spec,
                                         resolve_robot_name)
from vidplan_ros.bringup.graph import (PIPELINE_OUTPUTS, command_topic, model_info,
                                      pipeline_nodes, process_argv, sim_node)
from vidplan_ros.bringup.supervisor import ProcessSpec, run_graph

SHORT_ROBOT = {'franka_fr3': 'franka', 'franka_panda': 'franka', 'unitree_g1': 'g1'}
THREAD_VARS = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')
# runtime/backends.py BACKENDS (not imported: it imports torch, which this command does not need)
INFERENCE_BACKENDS = ('auto', 'tensorrt', 'onnxruntime_cuda', 'onnxruntime', 'torch')
STOP_GRACE_S = 10.0   # per stop signal: the monitor finishes the video within it


def thread_env(threads: int) -> dict[str, str]:
    """Per-process math threads: several torch processes share the cores; the user's wins."""
    if threads <= 0:
        return {}
    return {k: str(threads) for k in THREAD_VARS if k not in os.environ}


def transport_env(robot: str, interface: str = '') -> dict[str, str]:
    """$VIDPLAN_TRANSPORT for a graph's processes. `auto` picks rclpy where it imports, but the
    robot's command type (core.robot_spec.COMMAND_INTERFACES) must exist there too: where its
    package does not import (a G1's unitree_hg without unitree_ros2 built and sourced) and
    Cyclone DDS carries the type (transport/dds_msgs), the graph runs on Cyclone DDS. A
    transport the user chose ($VIDPLAN_TRANSPORT) is kept."""
    from vidplan_ros.transport import pick_backend
    from vidplan_ros.transport.dds_msgs import DDS_TYPES
    if os.environ.get('VIDPLAN_TRANSPORT') or pick_backend() != 'rclpy':
        return {}
    chosen = interface or load_robot_spec(robot).interfaces.command_interface
    ros_type = COMMAND_INTERFACES.get(chosen, ('',))[0]   # an unknown one: the executor says
    if ros_type in DDS_TYPES and importlib.util.find_spec(ros_type.split('/', 1)[0]) is None:
        return {'VIDPLAN_TRANSPORT': 'dds'}
    return {}


def resolve_robot_task(robot: str, task: str) -> tuple[str, str, str]:
    """(robot spec name, sim task, default model set) from CLI names ('franka', 'push')."""
    spec_name = resolve_robot_name(robot)
    short = SHORT_ROBOT.get(spec_name, spec_name)
    sim_task = task if '/' in task else f'{short}/{task}'
    return spec_name, sim_task, f'{short}_{sim_task.split("/", 1)[1]}'


def sim_graph(robot: str, task: str, episodes: int = 3, model: str = '', method: str = '',
              out_dir: str | Path = 'runs/sim', seed: int = 0, episode_time_s: float = 0.0,
              ready_timeout_s: float = 300.0, threads: int = 1, device: str = '',
              realtime_factor: float = 0.0, python: str | None = None,
              backend: str = '') -> list[ProcessSpec]:
    """The processes of `vidplan launch sim`: sim (started once the pipeline publishes),
    perception, planner, grounding, executor (sim time), monitor. All required."""
    python = python or sys.executable
    spec_name, sim_task, default_model = resolve_robot_task(robot, task)
    model = model or default_model
    info = model_info(model)
    if info.robot != spec_name:
        raise VidplanError(f'model set {model!r} is for robot {info.robot!r}, not '
                           f'{spec_name!r}: pick a model set of this robot with --model')
    if episodes < 1:
        raise VidplanError(f'--episodes {episodes}: run at least 1 episode')
    env = {**thread_env(threads), **transport_env(spec_name)}
    nodes = pipeline_nodes(model, method=method, robot=spec_name, use_sim_time=True,
                           device=device, threads=threads, noise_seed=seed, backend=backend)
    waits = [f'{ros_type}:{topic}' for node in nodes
             for ros_type, topic in PIPELINE_OUTPUTS.get(node.executable, ())]
    ros_type, topic = command_topic(spec_name)
    waits.append(f'{ros_type}:{topic}')
    sim = sim_node(spec_name, sim_task, episodes, seed, info.cameras, episode_time_s,
                   realtime_factor=realtime_factor, image_size=info.image_size)
    gate = [python, '-m', 'vidplan_ros.bringup.gate', '--label', 'the sim',
            '--timeout', f'{ready_timeout_s:g}']
    for wait in waits:
        gate += ['--wait', wait]
    specs = [ProcessSpec('sim', tuple(gate + ['--']) + process_argv(sim, python=python), True,
                         env)]
    for node in nodes:
        short = node.name.replace('vidplan_', '')
        specs.append(ProcessSpec(short, process_argv(node, python=python), node.required, env))
    cams = '[' + ', '.join(info.cameras) + ']'
    specs.append(ProcessSpec('monitor', (
        python, '-m', 'vidplan_ros.nodes.monitor_node', '--ros-args',
        '-r', '__node:=vidplan_monitor', '-p', f'out_dir:={Path(out_dir)}',
        '-p', f'cameras:={cams}'), True, env))
    return specs


def nodes_graph(model: str, method: str = '', robot: str = '', use_sim_time: bool = False,
                shadow: bool = False, interface: str = '', image_transport: str = '',
                threads: int = 1, device: str = '', python: str | None = None,
                backend: str = '') -> list[ProcessSpec]:
    """The four vidplan nodes alone (the robot or simulator runs elsewhere)."""
    robot = resolve_robot_name(robot)
    env = {**thread_env(threads), **transport_env(robot or model_info(model).robot, interface)}
    return [ProcessSpec(n.name.replace('vidplan_', ''), process_argv(n, python=python),
                        n.required, env)
            for n in pipeline_nodes(model, method=method, robot=robot,
                                    use_sim_time=use_sim_time, shadow=shadow,
                                    interface=interface, image_transport=image_transport,
                                    device=device, threads=threads, backend=backend)]


# --- the report -----------------------------------------------------------------------------

def format_report(summary: dict[str, Any]) -> str:
    """The end-of-run text: episodes, success, latency per stage, where the files are."""
    run = summary.get('run', {})
    lines = [f'vidplan launch sim: {run.get("model", "?")} on {run.get("task", "?")} '
             f'(method {run.get("method") or "default"}), seed {run.get("seed", "?")}']
    for ep in summary.get('episodes', []):
        word = {True: 'SUCCESS', False: 'failure', None: 'unknown'}[ep.get('success')]
        seed = f' seed {ep["seed"]}' if ep.get('seed') is not None else ''
        when = (f', ended at sim time {ep["end_sim_time_s"]:.1f} s'
                if ep.get('end_sim_time_s') is not None else '')
        lines.append(f'  episode {ep["episode"]}{seed}: {word}{when}')
    done = summary.get('episodes_done', 0)
    wanted = run.get('episodes')
    lines.append(f'  success: {summary.get("episodes_succeeded", 0)}/{done} episodes'
                 + (f' ({wanted} requested)' if wanted and wanted != done else ''))
    lat = summary.get('latency_ms', {})
    if any(v.get('count') for v in lat.values()):
        lines.append(f'  {"latency (ms, wall)":22s} {"n":>5s} {"mean":>8s} {"p50":>8s} '
                     f'{"p95":>8s} {"max":>8s}')
        for stage, st in lat.items():
            if st.get('count'):
                lines.append(f'  {stage:22s} {st["count"]:5d} {st["mean"]:8.1f} '
                             f'{st["p50"]:8.1f} {st["p95"]:8.1f} {st["max"]:8.1f}')
    else:
        lines.append('  latency: no plans seen (did the pipeline nodes come up?)')
    for key, st in summary.get('node_reported_latency_ms', {}).items():
        if st.get('count'):
            lines.append(f'  reported {key}: mean {st["mean"]:.1f} ms, p95 {st["p95"]:.1f} ms '
                         f'(n {st["count"]})')
    if summary.get('video'):
        lines.append(f'  video: {summary["video"]} ({summary.get("frames", 0)} frames at '
                     f'{summary.get("fps", 0):g} fps)')
    return '\n'.join(lines)


def finish_summary(out_dir: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """Add the run's settings and exit code to the monitor's summary.json; the summary."""
    path = out_dir / 'summary.json'
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    summary['run'] = run
    path.write_text(json.dumps(summary, indent=2) + '\n')
    return summary


# --- the command ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='vidplan launch', description='Start a vidplan node graph without ROS (Cyclone '
        'DDS, one process per node, prefixed logs, Ctrl-C stops all). On a ROS 2 host the same '
        'graphs are launch/*.launch.py.')
    subs = parser.add_subparsers(dest='graph', required=True)
    sim = subs.add_parser('sim', help='the embedded-MuJoCo demo: sim + the four nodes + a '
                          'monitor writing a run video and summary')
    sim.add_argument('--robot', default='franka', help='franka (FR3) or g1 (default franka)')
    sim.add_argument('--task', default='reach', help='reach, push (franka), reach (g1); or a '
                     'full sim task name like franka/push (default reach)')
    sim.add_argument('--episodes', type=int, default=3, help='episodes to run (default 3)')
    sim.add_argument('--model', default='', help='model set under models/ or a directory '
                     '(default <robot>_<task>)')
    sim.add_argument('--method', default='', help='grounding method or baseline (gvp_wm, '
                     'inverse_dynamics, mpc_cem, mpc_gd, collocation, actions_only, wav; '
                     'default: config/grounding.yaml)')
    sim.add_argument('--out', default='', help='directory for run.mp4 and summary.json '
                   '(default runs/sim-<model>-<method>-<time>)')
    sim.add_argument('--seed', type=int, default=0, help='seed of the first episode; episode '
                     'k uses seed + k (default 0)')
    sim.add_argument('--realtime-factor', type=float, default=0.0,
                     help="sim speed vs wall time (default: the sim node's, 1.0); below 1 "
                     'gives a slow machine time to plan (every node runs on sim time)')
    sim.add_argument('--episode-time', type=float, default=0.0,
                     help="max sim seconds per episode (default: the sim node's, 20 s)")
    nodes = subs.add_parser('nodes', help='the four vidplan nodes only (the robot or '
                            'simulator runs elsewhere)')
    nodes.add_argument('--model', required=True, help='model set under models/ or a directory')
    nodes.add_argument('--method', default='')
    nodes.add_argument('--robot', default='', help="executor's robot spec (default: the "
                       "model set's)")
    nodes.add_argument('--interface', default='', help='executor command interface override '
                       '(unitree_arm_sdk, unitree_lowcmd, joint_state_command, joint_trajectory, '
                       'follow_joint_trajectory: rclpy only)')
    nodes.add_argument('--image-transport', default='', choices=('', 'raw', 'compressed'))
    nodes.add_argument('--use-sim-time', action='store_true', help='follow /clock')
    nodes.add_argument('--shadow', action='store_true', help='executor computes, commands '
                       'nothing (bag replay)')
    for sub in (sim, nodes):
        sub.add_argument('--threads', type=int, default=1, help='torch / math threads per '
                         "process (the nodes share the cores; 0 = the params files' / "
                         'library default; default 1)')
        sub.add_argument('--device', default='', help='torch device of the model nodes: cpu '
                         "or cuda (default: the params files', cpu)")
        sub.add_argument('--inference-backend', default='auto', choices=INFERENCE_BACKENDS,
                         help='inference backend of the model nodes (their backend parameter); '
                         'auto takes the first usable of tensorrt, onnxruntime_cuda, '
                         'onnxruntime, torch (default auto)')
        sub.add_argument('--ready-timeout', type=float, default=300.0,
                         help='seconds to wait for the pipeline nodes before giving up')
        sub.add_argument('--dry-run', action='store_true', help='print the processes, start '
                         'nothing')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    out_dir: Path | None = None
    if args.graph == 'sim':
        spec_name, sim_task, default_model = resolve_robot_task(args.robot, args.task)
        model = args.model or default_model
        out_dir = Path(args.out or f'runs/sim-{Path(model).name}-{args.method or "default"}-'
                       f'{time.strftime("%Y%m%d-%H%M%S")}')
        specs = sim_graph(args.robot, args.task, args.episodes, model, args.method, out_dir,
                          args.seed, args.episode_time, args.ready_timeout, args.threads,
                          args.device, args.realtime_factor,
                          backend=args.inference_backend)
        info = model_info(model)
        if info.task != sim_task:
            print(f'vidplan launch: note: model set {model!r} was trained on {info.task!r}, '
                  f'the sim runs {sim_task!r}', file=sys.stderr)
    else:
        specs = nodes_graph(args.model, args.method, args.robot, args.use_sim_time,
                            args.shadow, args.interface, args.image_transport, args.threads,
                            args.device, backend=args.inference_backend)
    if any(spec.env.get('VIDPLAN_TRANSPORT') for spec in specs) and \
            not os.environ.get('VIDPLAN_TRANSPORT'):
        print("vidplan launch: note: rclpy here lacks the robot's command messages (a G1's "
              "unitree_hg: build and source unitree_ros2's); this graph runs on Cyclone DDS "
              '(VIDPLAN_TRANSPORT=dds)', file=sys.stderr)
    if args.dry_run:
        for spec in specs:
            env = ' '.join(f'{k}={v}' for k, v in spec.env.items())
            print(f'[{spec.name}]{" required" if spec.required else ""} {env} '
                  f'{" ".join(spec.argv)}')
        return 0
    t0 = time.monotonic()
    code = run_graph(specs, grace_s=STOP_GRACE_S)
    if out_dir is None:
        return code
    run = {'robot': spec_name, 'task': sim_task, 'model': model, 'method': args.method,
           'episodes': args.episodes, 'seed': args.seed,
           'realtime_factor': args.realtime_factor or None, 'exit_code': code,
           'wall_time_s': round(time.monotonic() - t0, 1)}
    summary = finish_summary(out_dir, run)
    if summary is None:
        print(f'vidplan launch sim: no summary was written to {out_dir} (the monitor did not '
              'finish)', file=sys.stderr)
        return code or 1
    print(format_report(summary), flush=True)
    print(f'  summary: {out_dir / "summary.json"}', flush=True)
    return code


if __name__ == '__main__':
    try:
        sys.exit(main())
    except VidplanError as exc:
        print(f'vidplan launch: error: {exc}', file=sys.stderr)
        sys.exit(2)
