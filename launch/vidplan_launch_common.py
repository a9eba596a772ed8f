"""Shared by the launch files in this directory (not a launch file itself).

The node list, params files and parameters come from `vidplan_ros.bringup.graph`, the same
description `vidplan launch` starts without ROS; this module turns it into launch_ros actions.
Each launch file lists its arguments in a module-level `ARGUMENTS` dict literal
(name -> (default, description)) and builds its nodes in an OpaqueFunction, where the argument
values are plain strings.
"""

from __future__ import annotations

import os

from launch.actions import DeclareLaunchArgument, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from vidplan_ros.bringup.graph import NodeEntry, model_info, pipeline_nodes

PACKAGE = 'vidplan_ros'

# Arguments every vidplan launch file has.
COMMON_ARGUMENTS = {
    'model': ('franka_reach', 'model set under models/ (franka_reach, franka_push, g1_reach) '
              'or a model set directory'),
    'method': ('', "grounding method or baseline: gvp_wm, inverse_dynamics, mpc_cem, mpc_gd, "
               "collocation, actions_only, wav ('' = config/grounding.yaml's)"),
    'device': ('', "torch device of the model nodes: cpu or cuda ('' = the params files')"),
    'backend': ('', 'inference backend of the model nodes: auto, tensorrt, onnxruntime_cuda, '
                "onnxruntime or torch ('' = the params files', auto)"),
}


def declare(*argument_sets: dict[str, tuple[str, str]]) -> list[DeclareLaunchArgument]:
    """DeclareLaunchArgument actions for name -> (default, description) dicts, in order."""
    seen: dict[str, tuple[str, str]] = {}
    for arguments in argument_sets:
        seen.update(arguments)
    return [DeclareLaunchArgument(name, default_value=default, description=description)
            for name, (default, description) in seen.items()]


def resolve(context, *argument_sets: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The values of the declared arguments, as strings, inside an OpaqueFunction."""
    return {name: LaunchConfiguration(name).perform(context)
            for arguments in argument_sets for name in arguments}


def as_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value not in ('true', 'false', '1', '0', 'yes', 'no', 'on', 'off'):
        raise ValueError(f'expected true or false, got {text!r}')
    return value in ('true', '1', 'yes', 'on')


def share_path(package: str, *parts: str) -> str:
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory(package), *parts)


def node_action(entry: NodeEntry, remappings: list[tuple[str, str]] | None = None) -> Node:
    """A launch_ros Node for a graph entry: its params files (from this package's share
    directory), then its parameters; a required node's exit shuts the launch down."""
    parameters: list = [share_path(PACKAGE, 'config', name) for name in entry.params_files]
    if entry.params:
        parameters.append(dict(entry.params))
    return Node(package=PACKAGE, executable=entry.executable, name=entry.name,
                output='screen', parameters=parameters, remappings=remappings or [],
                on_exit=Shutdown(reason=f'{entry.name} exited') if entry.required else None)


def camera_remappings(cameras: tuple[str, ...], topics: dict[str, str]
                      ) -> list[tuple[str, str]]:
    """Perception reads /cameras/<cam>/image_raw (and .../compressed); point each model camera
    that has a non-empty `topics[cam]` at that topic instead."""
    remaps = []
    for cam in cameras:
        topic = topics.get(cam, '')
        default = f'/cameras/{cam}/image_raw'
        if topic and topic != default:
            remaps += [(default, topic), (f'{default}/compressed', f'{topic}/compressed')]
    return remaps


def pipeline_actions(args: dict[str, str], use_sim_time: bool, robot: str = '',
                     shadow: bool = False, interface: str = '',
                     perception_remaps: list[tuple[str, str]] | None = None,
                     executor_remaps: list[tuple[str, str]] | None = None) -> list[Node]:
    """The four vidplan nodes for the resolved COMMON_ARGUMENTS (+ image_transport if any)."""
    entries = pipeline_nodes(args['model'], method=args.get('method', ''), robot=robot,
                             use_sim_time=use_sim_time, shadow=shadow, interface=interface,
                             image_transport=args.get('image_transport', ''),
                             device=args.get('device', ''),
                             backend=args.get('backend', ''))
    remaps = {'vidplan_perception': perception_remaps, 'vidplan_executor': executor_remaps}
    return [node_action(e, remaps.get(e.name)) for e in entries]


def model_cameras(model: str) -> tuple[str, ...]:
    return model_info(model).cameras
