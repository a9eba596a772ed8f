"""The node graph of vidplan_ros, described once for `ros2 launch` and for `vidplan launch`.

ROS-free (no `launch` imports): the launch files in launch/ turn these entries into launch_ros
`Node` actions, and `vidplan launch` (vidplan_ros/bringup/vidplan_launch.py) turns them into
supervised processes over Cyclone DDS. So both start the same executables with the same params
files and the same parameters.

    perception ─► /vidplan/latent ─► planner ─► /vidplan/video_plan ─► grounding
        ─► /vidplan/grounded_plan (+ /feasibility) ─► executor ─► robot command topic
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.paths import config_dir, share_dir
from vidplan_ros.core.robot_spec import load_robot_spec, resolve_robot_name

__all__ = ['NODE_MODULES', 'PIPELINE_OUTPUTS', 'ModelInfo', 'NodeEntry', 'command_topic',
           'model_info', 'pipeline_nodes', 'sim_node', 'ros_args', 'process_argv',
           'param_value']

# Console script (setup.py NODES) -> module with main(); `vidplan launch` runs the module with
# the venv's interpreter when the console script is not installed next to it.
NODE_MODULES = {
    'vidplan_sim': 'vidplan_ros.nodes.sim_node',
    'vidplan_perception': 'vidplan_ros.nodes.perception_node',
    'vidplan_planner': 'vidplan_ros.nodes.planner_node',
    'vidplan_grounding': 'vidplan_ros.nodes.grounding_node',
    'vidplan_executor': 'vidplan_ros.nodes.executor_node',
}

# The topics each pipeline node publishes (a reader can wait for these writers to know the node
# is up; nobody else writes them). Command topics depend on the robot: see `command_topic`.
PIPELINE_OUTPUTS = {
    'vidplan_perception': (('sensor_msgs/msg/Image', '/vidplan/latent'),),
    'vidplan_planner': (('sensor_msgs/msg/Image', '/vidplan/video_plan'),),
    'vidplan_grounding': (('trajectory_msgs/msg/JointTrajectory', '/vidplan/grounded_plan'),),
}


@dataclass(frozen=True)
class ModelInfo:
    """What the graph needs to know about a model set (models/<name>/config.json)."""

    name: str
    path: Path
    robot: str                      # robot spec name the set was trained on
    task: str                       # sim task the set was trained on ('franka/push')
    cameras: tuple[str, ...]        # camera names, in the model's view order
    image_size: int


def model_info(model: str) -> ModelInfo:
    """Read a model set's config.json (a name under models/ or a directory); no torch."""
    path = Path(model).expanduser()
    if not path.is_dir():
        path = share_dir() / 'models' / model
    cfg_path = path / 'config.json'
    if not cfg_path.is_file():
        known = sorted(p.name for p in (share_dir() / 'models').iterdir()
                       if (p / 'config.json').is_file())
        raise VidplanError(f'no model set {model!r}: {cfg_path} does not exist; bundled model '
                           f'sets: {known} (train one with `vidplan train`)')
    params = json.loads(cfg_path.read_text())['params']
    try:
        return ModelInfo(name=str(params.get('name') or path.name), path=path,
                         robot=str(params['data.robot']), task=str(params['task']),
                         cameras=tuple(params['data.cameras']),
                         image_size=int(params['image_size']))
    except KeyError as exc:
        raise VidplanError(f'{cfg_path}: params has no {exc}; retrain or repair the model '
                           'set') from None


@dataclass(frozen=True)
class NodeEntry:
    """One node of a graph: which console script, which params files, which parameters."""

    name: str                                   # ROS node name
    executable: str                             # console script (setup.py NODES)
    params_files: tuple[str, ...] = ()          # relative to config/
    params: Mapping[str, Any] = field(default_factory=dict)   # -p overrides, after the files
    required: bool = True                       # the graph stops when it exits

    @property
    def module(self) -> str:
        return NODE_MODULES[self.executable]


def command_topic(robot: str, interface: str = '') -> tuple[str, str]:
    """(ROS type, topic or action) the executor commands `robot` on: the robot spec's
    interface, or `interface` (core.robot_spec.COMMAND_INTERFACES is the one table)."""
    return load_robot_spec(robot).interfaces.command(interface)


def pipeline_nodes(model: str, method: str = '', robot: str = '', use_sim_time: bool = False,
                   shadow: bool = False, interface: str = '', image_transport: str = '',
                   cameras: tuple[str, ...] = (), device: str = '', threads: int = 0,
                   noise_seed: int | None = None, backend: str = '') -> list[NodeEntry]:
    """The four vidplan nodes for one model set; '' / 0 / None leave a params file's value.

    `method` picks the grounding method or a baseline (config/grounding.yaml's by default);
    `robot` the executor's robot spec ('' = the model set's robot); `shadow` runs the executor
    without commanding (bag replay); `interface` overrides the executor's command interface
    (G1: unitree_arm_sdk or unitree_lowcmd); `image_transport` 'compressed' makes perception read
    `/cameras/<cam>/image_raw/compressed`; `cameras` names perception's camera per model view;
    `device` (cpu, cuda), `threads` (torch) and `backend` (the inference backend: auto,
    tensorrt, onnxruntime_cuda, onnxruntime, torch) go to the three model nodes; `noise_seed` to
    the planner.
    """
    common: dict[str, Any] = {'model': model}
    if use_sim_time:
        common['use_sim_time'] = True
    if device:
        common['device'] = device
    if threads:
        common['threads'] = int(threads)
    if backend:
        common['backend'] = backend
    perception = dict(common)
    if image_transport:
        perception['image_transport'] = image_transport
    if cameras:
        perception['cameras'] = list(cameras)
    planner = dict(common)
    if noise_seed is not None:
        planner['noise_seed'] = int(noise_seed)
    grounding = dict(common)
    if method:
        grounding['method'] = method
    executor: dict[str, Any] = {'robot': resolve_robot_name(robot) if robot
                                else model_info(model).robot}
    if use_sim_time:
        executor['use_sim_time'] = True
    if shadow:
        executor['shadow'] = True
    if interface:
        executor['interface'] = interface
    return [
        NodeEntry('vidplan_perception', 'vidplan_perception', ('perception.yaml',), perception),
        NodeEntry('vidplan_planner', 'vidplan_planner', ('planner.yaml',), planner),
        # the method's parameters, then the node's own (config/grounding_node.yaml says so)
        NodeEntry('vidplan_grounding', 'vidplan_grounding',
                  ('grounding.yaml', 'grounding_node.yaml'), grounding),
        NodeEntry('vidplan_executor', 'vidplan_executor', ('executor.yaml',), executor),
    ]


def sim_node(robot: str, task: str, episodes: int = 0, seed: int = 0,
             cameras: tuple[str, ...] = (), episode_time_s: float = 0.0,
             realtime_factor: float = 0.0, required: bool = True,
             image_size: int = 0) -> NodeEntry:
    """The embedded MuJoCo sim node: the robot, the task, N episodes (0 = forever); 0 for
    `episode_time_s` / `realtime_factor` / `image_size` keeps the node's default.

    `image_size`: render the cameras at the model set's resolution, as its training episodes
    were; rendered larger and resized by perception (INTER_AREA), the frames are smoother than
    any the models saw, and franka_reach's live plans turned to noise (1/3 episodes)."""
    params: dict[str, Any] = {'robot': robot, 'task': task, 'episodes': int(episodes),
                              'seed': int(seed)}
    if cameras:
        params['cameras'] = list(cameras)
    if image_size > 0:
        params['image_width'] = params['image_height'] = int(image_size)
    if episode_time_s > 0:
        params['episode_time_s'] = float(episode_time_s)
    if realtime_factor > 0:
        params['realtime_factor'] = float(realtime_factor)
    return NodeEntry('vidplan_sim', 'vidplan_sim', (), params, required)


def param_value(value: Any) -> str:
    """`value` as the right-hand side of `-p name:=value` (parsed back as YAML by the nodes)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    text = str(value)
    if not isinstance(value, (list, tuple, dict)):
        try:
            if yaml.safe_load(text) == value:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def ros_args(entry: NodeEntry, config: Path | None = None) -> list[str]:
    """`--ros-args` of a node: `-r __node:=`, its params files (in order), then `-p` values."""
    config = config or config_dir()
    args = ['--ros-args', '-r', f'__node:={entry.name}']
    for name in entry.params_files:
        path = config / name
        if not path.is_file():
            raise VidplanError(f'{entry.name}: params file {path} does not exist')
        args += ['--params-file', str(path)]
    for key, value in entry.params.items():
        args += ['-p', f'{key}:={param_value(value)}']
    return args


def process_argv(entry: NodeEntry, config: Path | None = None,
                 python: str | None = None) -> tuple[str, ...]:
    """The command line that starts `entry` without ROS: its console script when it is
    installed beside `python`, else `python -c` calling the module's main() like the script."""
    python = python or sys.executable
    script = Path(python).parent / entry.executable
    if script.is_file():
        head = [str(script)]
    else:
        head = [python, '-c', f'import sys; from {entry.module} import main; sys.exit(main())']
    return tuple(head + ros_args(entry, config))
