"""Stand-ins for the ROS 2 `launch` / `launch_ros` APIs the launch files use, so their code runs
here (ROS 2 cannot be installed). Each stub takes exactly the arguments the real class takes
(the subset the launch files use, keyword names as in launch / launch_ros on Humble and Jazzy)
and records them; a misspelt keyword fails here as it would there.
"""

from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAKE_SHARE = Path('/opt/ros/fake/share')


class Entity:
    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.__dict__})'


class LaunchDescription(Entity):
    def __init__(self, initial_entities=None, *, deprecated_reason=None):
        self.entities = list(initial_entities or [])


class DeclareLaunchArgument(Entity):
    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        self.name, self.default_value, self.description = name, default_value, description


class OpaqueFunction(Entity):
    def __init__(self, *, function, args=None, kwargs=None, **left):
        self.function, self.args, self.kwargs = function, args or [], kwargs or {}


class IncludeLaunchDescription(Entity):
    def __init__(self, launch_description_source, *, launch_arguments=None, **kwargs):
        self.source = launch_description_source
        self.launch_arguments = dict(launch_arguments or [])


class ExecuteProcess(Entity):
    def __init__(self, *, cmd, name=None, cwd=None, env=None, additional_env=None,
                 shell=False, sigterm_timeout=None, sigkill_timeout=None, emulate_tty=False,
                 output='log', output_format='[{this.process_description.final_name}] {line}',
                 log_cmd=False, on_exit=None, respawn=False, respawn_delay=0.0, **kwargs):
        self.cmd, self.name, self.output, self.on_exit = cmd, name, output, on_exit


class Shutdown(Entity):
    def __init__(self, *, reason='reason not given', **kwargs):
        self.reason = reason


class SetEnvironmentVariable(Entity):
    def __init__(self, name, value, **kwargs):
        self.name, self.value = name, value


class RegisterEventHandler(Entity):
    def __init__(self, event_handler, **kwargs):
        self.event_handler = event_handler


class OnProcessExit(Entity):
    def __init__(self, *, target_action=None, on_exit, **kwargs):
        self.target_action, self.on_exit = target_action, on_exit


class PythonLaunchDescriptionSource(Entity):
    def __init__(self, launch_file_path):
        self.path = launch_file_path


class LaunchConfiguration(Entity):
    def __init__(self, variable_name, *, default=None):
        self.variable_name, self.default = variable_name, default

    def perform(self, context):
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is None:
            raise KeyError(f'launch configuration {self.variable_name!r} not set')
        return self.default


class Node(ExecuteProcess):
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None,
                 parameters=None, remappings=None, ros_arguments=None, arguments=None,
                 **kwargs):
        super().__init__(cmd=[executable], name=name, **kwargs)
        self.package, self.executable, self.node_name = package, executable, name
        self.parameters = list(parameters or [])
        self.remappings = list(remappings or [])
        self.arguments = list(arguments or [])


class Context:
    def __init__(self, launch_configurations):
        self.launch_configurations = dict(launch_configurations)


def get_package_share_directory(package: str) -> str:
    return str(REPO if package == 'vidplan_ros' else FAKE_SHARE / package)


class _Xacro:
    def __init__(self, path, mappings):
        self.path, self.mappings = path, mappings

    def toprettyxml(self, indent='  '):
        return f'<robot name="stub" source="{self.path}" mappings="{self.mappings}"/>'


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


@contextlib.contextmanager
def installed():
    """Put the stub modules in sys.modules for the duration (restoring what was there)."""
    mods = {
        'launch': _module('launch', LaunchDescription=LaunchDescription),
        'launch.actions': _module(
            'launch.actions', DeclareLaunchArgument=DeclareLaunchArgument,
            OpaqueFunction=OpaqueFunction, IncludeLaunchDescription=IncludeLaunchDescription,
            ExecuteProcess=ExecuteProcess, Shutdown=Shutdown,
            SetEnvironmentVariable=SetEnvironmentVariable,
            RegisterEventHandler=RegisterEventHandler),
        'launch.event_handlers': _module('launch.event_handlers', OnProcessExit=OnProcessExit),
        'launch.launch_description_sources': _module(
            'launch.launch_description_sources',
            PythonLaunchDescriptionSource=PythonLaunchDescriptionSource),
        'launch.substitutions': _module('launch.substitutions',
                                        LaunchConfiguration=LaunchConfiguration),
        'launch_ros': _module('launch_ros'),
        'launch_ros.actions': _module('launch_ros.actions', Node=Node),
        'ament_index_python': _module('ament_index_python'),
        'ament_index_python.packages': _module(
            'ament_index_python.packages',
            get_package_share_directory=get_package_share_directory),
        'xacro': _module('xacro', process_file=lambda path, mappings=None: _Xacro(path,
                                                                                 mappings)),
    }
    saved = {name: sys.modules.get(name) for name in [*mods, 'vidplan_launch_common']}
    sys.modules.update(mods)
    sys.modules.pop('vidplan_launch_common', None)
    try:
        yield
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod
