"""The one small interface nodes use to reach the middleware, whichever backend is underneath.

A node gets a `Node` from `vidplan_ros.transport.create_node` and uses only this: publishers,
subscriptions, timers, the node clock (ROS time, or /clock under `use_sim_time`), its config
loaded from ROS parameters, and a logger. Message classes come from `node.msg_type(...)`, so the
same node code builds rclpy messages on a ROS host and Cyclone DDS structs without ROS; both
have the ROS field names.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypeVar

from vidplan_ros.core.config import check_known_params, config_from_params, read_params_file
from vidplan_ros.transport.convert import ns_to_time
from vidplan_ros.transport.names import resolve_topic
from vidplan_ros.transport.qos import QOS_DEFAULT, QoS

C = TypeVar('C')
# Parameters ROS itself gives every node (rclpy node.py declares use_sim_time and, from Jazzy,
# start_type_description_service; rclpy qos_overriding_options.py reads qos_overrides.*): a
# params file may set them for any node, so neither backend counts them as typos.
RESERVED_PARAMS = ('use_sim_time', 'start_type_description_service')
RESERVED_PREFIXES = ('qos_overrides.',)


class Publisher(Protocol):
    topic: str

    def publish(self, msg: Any) -> None: ...


class Timer(Protocol):
    def cancel(self) -> None: ...


class Logger(Protocol):
    def debug(self, msg: str, throttle_s: float = 0.0) -> None: ...
    def info(self, msg: str, throttle_s: float = 0.0) -> None: ...
    def warning(self, msg: str, throttle_s: float = 0.0) -> None: ...
    def error(self, msg: str, throttle_s: float = 0.0) -> None: ...


@dataclass(frozen=True)
class NodeArgs:
    """What `--ros-args` carries: params files, `-p name:=value` overrides, node name/namespace."""

    params_files: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    node_name: str | None = None
    namespace: str = ''
    rest: tuple[str, ...] = ()  # arguments before/outside --ros-args, for the node's own use


def parse_ros_args(argv: list[str]) -> NodeArgs:
    """Parse the `--ros-args ... [--]` part of a command line like rclpy does (subset).

    Supported: `--params-file F`, `-p name:=value` (value parsed as YAML), `-r __node:=n`,
    `-r __ns:=/ns`. Anything else inside --ros-args is an error naming it.
    """
    import yaml

    files: list[str] = []
    overrides: dict[str, Any] = {}
    node_name, namespace, rest = None, '', []
    i, in_ros = 0, False
    while i < len(argv):
        arg = argv[i]
        if arg == '--ros-args':
            in_ros = True
        elif in_ros and arg == '--':
            in_ros = False
        elif not in_ros:
            rest.append(arg)
        elif arg in ('--params-file', '-p', '--param', '-r', '--remap'):
            if i + 1 >= len(argv):
                raise ValueError(f'--ros-args: {arg} needs a value')
            value = argv[i + 1]
            i += 1
            if arg == '--params-file':
                files.append(value)
            else:
                if ':=' not in value:
                    raise ValueError(f'--ros-args: {arg} {value!r} must look like name:=value')
                key, raw = value.split(':=', 1)
                if arg in ('-p', '--param'):
                    overrides[key] = yaml.safe_load(raw)
                elif key == '__node':
                    node_name = raw
                elif key == '__ns':
                    namespace = raw
                else:
                    raise ValueError(f'--ros-args: topic remapping {value!r} is not supported '
                                     'without ROS; set the topic parameter instead')
        else:
            raise ValueError(f'--ros-args: unsupported argument {arg!r} (supported: '
                             '--params-file, -p name:=value, -r __node:=, -r __ns:=)')
        i += 1
    return NodeArgs(tuple(files), overrides, node_name, namespace, tuple(rest))


class Node(abc.ABC):
    """A node on one backend. Callbacks run in `spin`'s thread, one at a time."""

    backend: str = ''

    def __init__(self, name: str, args: NodeArgs | None = None) -> None:
        self.args = args or NodeArgs()
        self.name = self.args.node_name or name
        self.namespace = self.args.namespace

    # --- names and messages ---------------------------------------------------------------
    def resolve(self, topic: str) -> str:
        return resolve_topic(topic, self.namespace, self.name)

    @abc.abstractmethod
    def msg_type(self, ros_type: str) -> type:
        """The message class for `pkg/msg/Name` on this backend."""

    # --- communication --------------------------------------------------------------------
    @abc.abstractmethod
    def create_publisher(self, ros_type: str, topic: str, qos: QoS = QOS_DEFAULT) -> Publisher:
        ...

    @abc.abstractmethod
    def create_subscription(self, ros_type: str, topic: str, callback: Callable[[Any], None],
                            qos: QoS = QOS_DEFAULT) -> Any:
        ...

    @abc.abstractmethod
    def count_publishers(self, topic: str) -> int:
        """How many writers of `topic` are up (start-up gates wait on this). rclpy: the ROS
        graph's count; dds: the writers matched by this node's subscriptions of `topic`
        (0 without one), so subscribe first."""

    @abc.abstractmethod
    def create_timer(self, period_s: float, callback: Callable[[], None],
                     spin_s: float = 0.0) -> Timer:
        """Call `callback` every `period_s` of node-clock time (sim time under use_sim_time).

        `spin_s` > 0 (a control loop's timer): busy-wait the last `spin_s` before each wall-clock
        deadline instead of sleeping through it, since the OS wakes a sleeper up to ~0.6 ms late;
        it costs that share of a core. Wall-clock timers only (under use_sim_time ticks follow
        /clock). The dds backend wakes early itself; rclpy's timers wake from rcl's wait set, so
        the rclpy backend's timer fires `spin_s` ahead and its callback busy-waits."""

    # --- time -----------------------------------------------------------------------------
    @abc.abstractmethod
    def now_ns(self) -> int:
        """Node clock in ns: ROS time (wall clock) or the latest /clock under use_sim_time."""

    def now_s(self) -> float:
        return self.now_ns() * 1e-9

    def stamp(self, ns: int | None = None) -> Any:
        """A builtin_interfaces/Time of this backend for `ns` (default: now)."""
        return ns_to_time(self.msg_type, self.now_ns() if ns is None else ns)

    @property
    @abc.abstractmethod
    def use_sim_time(self) -> bool: ...

    # --- parameters -----------------------------------------------------------------------
    @abc.abstractmethod
    def load_config(self, cls: type[C]) -> C:
        """The node's config dataclass from its ROS parameters (params files + overrides)."""

    # --- logging and life cycle -----------------------------------------------------------
    @property
    @abc.abstractmethod
    def logger(self) -> Logger: ...

    @abc.abstractmethod
    def spin_once(self, timeout_s: float = 0.1) -> None:
        """Wait up to `timeout_s` for work, then run due callbacks."""

    def spin(self, until: Callable[[], bool] | None = None, timeout_s: float | None = None
             ) -> None:
        """Run callbacks until `until()` is true, `timeout_s` passes, or shutdown."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.ok() and not (until and until()):
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return
            self.spin_once(left)

    @abc.abstractmethod
    def ok(self) -> bool: ...

    @abc.abstractmethod
    def shutdown(self) -> None: ...


def params_from_args(args: NodeArgs, node_name: str) -> tuple[dict[str, Any], str]:
    """Merge a node's params files (in order) and `-p` overrides; also return a source label."""
    params: dict[str, Any] = {}
    for path in args.params_files:
        params.update(read_params_file(path, node_name))
    params.update(args.overrides)
    source = ' + '.join(args.params_files) or '<defaults>'
    if args.overrides:
        source += ' + -p overrides'
    return params, source


def check_timer_spin(period_s: float, spin_s: float) -> None:
    """`Node.create_timer`'s `spin_s` must leave part of the period asleep."""
    if not 0.0 <= spin_s < period_s:
        raise ValueError(f'timer spin_s {spin_s!r} must be >= 0 and below the period '
                         f'{period_s!r} s')


def is_reserved_param(name: str) -> bool:
    return name in RESERVED_PARAMS or name.startswith(RESERVED_PREFIXES)


def node_params(cls: type, params: dict[str, Any], source: str) -> dict[str, Any]:
    """A node's own parameters: ROS-level ones dropped, unknown keys rejected (both backends),
    and an empty list taken as unset (the dataclass default), because that is what ROS 2 does
    with one: rcl_yaml_param_parser gives `[]` no type and rclpy leaves it uninitialized."""
    own = {k: v for k, v in params.items()
           if not is_reserved_param(k) and not (isinstance(v, (list, tuple)) and len(v) == 0)}
    check_known_params(cls, {k: v for k, v in params.items() if not is_reserved_param(k)},
                       source)
    return own


def config_from_node_params(cls: type[C], params: dict[str, Any], source: str) -> C:
    """Build `cls` from node params (see `node_params`)."""
    return config_from_params(cls, node_params(cls, params, source), source)
