"""The rclpy backend, used on a ROS 2 host. Kept thin: everything here maps 1:1 onto rclpy.

Cannot be exercised without ROS 2; its launch_testing tests run on ROS hosts.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any, Callable, TypeVar

import rclpy
from rclpy.node import Node as RosNode
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vidplan_ros.core.config import config_from_params, config_to_params
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.transport.base import Node, NodeArgs
from vidplan_ros.transport.qos import QOS_DEFAULT, QoS

C = TypeVar('C')


def ros_qos(qos: QoS) -> QoSProfile:
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE if qos.reliability == 'reliable'
        else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.durability == 'transient_local'
        else DurabilityPolicy.VOLATILE,
        history=HistoryPolicy.KEEP_LAST if qos.history == 'keep_last' else HistoryPolicy.KEEP_ALL,
        depth=qos.depth)


class _Logger:
    def __init__(self, ros_logger: Any) -> None:
        self._l = ros_logger

    def _log(self, fn: Callable[..., None], msg: str, throttle_s: float) -> None:
        if throttle_s > 0:
            fn(msg, throttle_duration_sec=throttle_s)
        else:
            fn(msg)

    def debug(self, msg: str, throttle_s: float = 0.0) -> None:
        self._log(self._l.debug, msg, throttle_s)

    def info(self, msg: str, throttle_s: float = 0.0) -> None:
        self._log(self._l.info, msg, throttle_s)

    def warning(self, msg: str, throttle_s: float = 0.0) -> None:
        self._log(self._l.warning, msg, throttle_s)

    def error(self, msg: str, throttle_s: float = 0.0) -> None:
        self._log(self._l.error, msg, throttle_s)


def _param_type(ftype: Any) -> rclpy.Parameter.Type:
    """ROS parameter type of a config field (needed to declare empty-list defaults)."""
    scalar = {bool: rclpy.Parameter.Type.BOOL, int: rclpy.Parameter.Type.INTEGER,
              float: rclpy.Parameter.Type.DOUBLE, str: rclpy.Parameter.Type.STRING}
    array = {bool: rclpy.Parameter.Type.BOOL_ARRAY, int: rclpy.Parameter.Type.INTEGER_ARRAY,
             float: rclpy.Parameter.Type.DOUBLE_ARRAY, str: rclpy.Parameter.Type.STRING_ARRAY}
    if typing.get_origin(ftype) is tuple:
        return array[typing.get_args(ftype)[0]]
    return scalar[ftype]


def _field_types(cls: type, prefix: str = '') -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_field_types(hints[f.name], f'{prefix}{f.name}.'))
        else:
            out[prefix + f.name] = hints[f.name]
    return out


class RclpyNode(Node):
    """A node on rclpy. `ros_node` is the underlying `rclpy.node.Node`."""

    backend = 'rclpy'

    def __init__(self, name: str, args: NodeArgs | None = None,
                 argv: list[str] | None = None) -> None:
        super().__init__(name, args)
        if not rclpy.ok():
            rclpy.init(args=argv)
        self.ros_node = RosNode(name)  # --ros-args (name, namespace, params) are applied by rcl
        self.name = self.ros_node.get_name()
        self.namespace = self.ros_node.get_namespace()
        self._logger = _Logger(self.ros_node.get_logger())

    def msg_type(self, ros_type: str) -> type:
        pkg, kind, name = ros_type.split('/')
        try:
            return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
        except (ImportError, AttributeError):
            raise VidplanError(
                f'{ros_type} is not available in this ROS 2 environment; install/source the '
                f'package {pkg} (for unitree_hg: unitree_ros2 cyclonedds_ws) or run the node '
                'with the dds transport') from None

    def create_publisher(self, ros_type: str, topic: str, qos: QoS = QOS_DEFAULT) -> Any:
        return self.ros_node.create_publisher(self.msg_type(ros_type), topic, ros_qos(qos))

    def create_subscription(self, ros_type: str, topic: str, callback: Callable[[Any], None],
                            qos: QoS = QOS_DEFAULT) -> Any:
        return self.ros_node.create_subscription(self.msg_type(ros_type), topic, callback,
                                                 ros_qos(qos))

    def count_publishers(self, topic: str) -> int:
        return self.ros_node.count_publishers(topic)

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Any:
        return self.ros_node.create_timer(period_s, callback)

    def post(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the executor thread soon (thread-safe)."""
        guard: Any = None

        def run() -> None:
            self.ros_node.destroy_guard_condition(guard)
            fn()

        guard = self.ros_node.create_guard_condition(run)
        guard.trigger()

    def now_ns(self) -> int:
        return self.ros_node.get_clock().now().nanoseconds

    @property
    def use_sim_time(self) -> bool:
        return bool(self.ros_node.get_parameter('use_sim_time').value)

    def load_config(self, cls: type[C]) -> C:
        """Declare every config field as a parameter (default from `cls()`), read them back."""
        try:
            defaults = config_to_params(cls())
        except TypeError:
            defaults = {}
        params: dict[str, Any] = {}
        for key, ftype in _field_types(cls).items():
            if key in defaults and defaults[key] != []:
                self.ros_node.declare_parameter(key, defaults[key])
            else:
                self.ros_node.declare_parameter(key, _param_type(ftype))
            value = self.ros_node.get_parameter(key).value
            if value is not None:
                params[key] = list(value) if isinstance(value, (list, tuple)) or hasattr(
                    value, 'tolist') else value
        return config_from_params(cls, params, f'node {self.name} parameters', strict=False)

    @property
    def logger(self) -> _Logger:
        return self._logger

    def spin_once(self, timeout_s: float = 0.1) -> None:
        rclpy.spin_once(self.ros_node, timeout_sec=timeout_s)

    def ok(self) -> bool:
        return rclpy.ok()

    def shutdown(self) -> None:
        self.ros_node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
