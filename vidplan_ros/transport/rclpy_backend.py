"""The rclpy backend: ROS 2 (a sourced ROS host, or the `ros-jazzy-*` wheels of the `ros` extra).

Kept thin: everything here maps 1:1 onto rclpy. Checked against rclpy's jazzy branch
(rclpy/node.py, rclpy/impl/rcutils_logger.py, rclpy/executors.py, src/rclpy/signal_handler.cpp)
and rcl_yaml_param_parser/src/parse.c (rcl 9.2); the notes below name what each rule follows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import signal
import threading
import typing
from typing import Any, Callable, TypeVar

import rclpy
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node as RosNode
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import (SignalHandlerOptions, get_current_signal_handlers_options,
                           install_signal_handlers, uninstall_signal_handlers)
from rclpy.utilities import get_rmw_implementation_identifier

from vidplan_ros.core.config import config_from_params, config_to_params
from vidplan_ros.core.errors import ConfigError, VidplanError
from vidplan_ros.transport.base import Node, NodeArgs, check_timer_spin, node_params
from vidplan_ros.transport.log import SiteThrottle
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
    """rclpy's logger behind our interface.

    rclpy keys each logging call's state by the caller's (function, file, line, instruction)
    and raises `ValueError: Logger severity cannot be changed between calls` when one call site
    logs at two severities, or with and without a throttle (impl/rcutils_logger.py,
    RcutilsLogger.log). So each severity has its own call below, never with filter arguments,
    and throttling is ours, per caller site and severity (as rclpy's Throttle filter keys it).
    """

    def __init__(self, ros_logger: Any) -> None:
        self._l = ros_logger
        self._throttle = SiteThrottle()

    def debug(self, msg: str, throttle_s: float = 0.0) -> None:
        if self._throttle.allow('debug', throttle_s, depth=1):
            self._l.debug(msg)

    def info(self, msg: str, throttle_s: float = 0.0) -> None:
        if self._throttle.allow('info', throttle_s, depth=1):
            self._l.info(msg)

    def warning(self, msg: str, throttle_s: float = 0.0) -> None:
        if self._throttle.allow('warning', throttle_s, depth=1):
            self._l.warning(msg)

    def error(self, msg: str, throttle_s: float = 0.0) -> None:
        if self._throttle.allow('error', throttle_s, depth=1):
            self._l.error(msg)


_SCALAR_TYPES = {bool: Parameter.Type.BOOL, int: Parameter.Type.INTEGER,
                 float: Parameter.Type.DOUBLE, str: Parameter.Type.STRING}
_ARRAY_TYPES = {bool: Parameter.Type.BOOL_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
                float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY}


def param_type(ftype: Any) -> Parameter.Type:
    """The ROS parameter type a config field of Python type `ftype` is declared with."""
    if typing.get_origin(ftype) is tuple:
        return _ARRAY_TYPES[typing.get_args(ftype)[0]]
    return _SCALAR_TYPES[ftype]


def field_types(cls: type, prefix: str = '') -> dict[str, Any]:
    """{dotted parameter name: Python type} of config dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(field_types(hints[f.name], f'{prefix}{f.name}.'))
        else:
            out[prefix + f.name] = hints[f.name]
    return out


def _plain(value: Any) -> Any:
    """A parameter value as plain Python (rclpy gives arrays as array.array or lists)."""
    return value.tolist() if hasattr(value, 'tolist') else (
        list(value) if isinstance(value, (list, tuple)) else value)


# Python's SIGINT handler, set aside while rclpy's is installed (see `_init_rclpy`).
_sigint_before: Any = None


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()  # signal.signal needs it


def _init_rclpy(argv: list[str]) -> None:
    """rclpy.init, with SIGINT only shutting the context down (as SIGTERM does).

    rclpy's SIGINT handler chains to the handler it replaced (rclpy src/rclpy/signal_handler.cpp,
    jazzy: rclpy_sigint_handler, call_signal_handler): Python's default one raises
    KeyboardInterrupt wherever the main thread is, inside rclpy too (executors/task.py,
    Task.__init__), and Python prints "Exception ignored in ..." with a traceback at exit.
    call_signal_handler skips SIG_IGN, so that is Python's handler while rclpy's is installed;
    `_shutdown_rclpy` puts Python's back. A handler of the program's own is kept, and chained to.
    """
    global _sigint_before
    # Handlers after rcl_init, as rclpy.init does: a Ctrl-C during it still interrupts.
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    if _main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        _sigint_before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    install_signal_handlers(SignalHandlerOptions.ALL)


def _shutdown_rclpy() -> None:
    global _sigint_before
    if rclpy.ok():
        rclpy.shutdown()  # also uninstalls rclpy's signal handlers
    else:
        # A signal shut the context down. As rclpy.shutdown would: a fresh default context
        # (a context inits once, context.py) and rclpy's handlers out, which a later
        # rclpy.init would not install again (signal_handler.cpp, register_sigint_*).
        rclpy.try_shutdown()
        if get_current_signal_handlers_options() != SignalHandlerOptions.NO:
            uninstall_signal_handlers()
    if _sigint_before is not None and _main_thread():
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # not replaced since
            signal.signal(signal.SIGINT, _sigint_before)
        _sigint_before = None


@contextlib.contextmanager
def _unless_shut_down(context: Any) -> typing.Iterator[None]:
    """Swallow rcl's "context is invalid" once `context` is shut down.

    A signal shuts the context down from rclpy's own thread, so a loop that works on its own
    (the sim's publishing, the gate's polling) can call rcl between its ok() check and the
    call: that is the same stop as ok() turning false, not an error.
    """
    try:
        yield
    except _rclpy.RCLError:
        if context.ok():
            raise


class _Publisher:
    """rclpy's publisher, dropping what is published once the context is shut down."""

    def __init__(self, pub: Any, context: Any) -> None:
        self._pub = pub
        self._context = context

    def publish(self, msg: Any) -> None:
        with _unless_shut_down(self._context):
            self._pub.publish(msg)

    def __getattr__(self, name: str) -> Any:  # topic, get_subscription_count, ...
        return getattr(self._pub, name)


class _SpinTicker:
    """Runs `callback` `spin_ns` after each of its rcl timer's scheduled calls, busy-waiting
    from the call (the OS wakes rcl's wait set up to ~0.6 ms late) to that time: the ticks keep
    the timer's own schedule, shifted by spin_ns, so a late wake-up never drifts them. rclpy's
    executor advances the timer's next call before it runs the callback (rclpy executors.py
    `_take_timer`: `call_timer()` first), so inside it `time_until_next_call()` is the period
    minus the time since this call was due (rclpy timer.py)."""

    def __init__(self, period_ns: int, spin_ns: int, callback: Callable[[], None]) -> None:
        self.period_ns, self.spin_ns, self.callback = period_ns, spin_ns, callback
        self.timer: Any = None

    def __call__(self) -> None:
        until = self.timer.time_until_next_call() if self.timer is not None else None
        while until is not None and until > self.period_ns - self.spin_ns:
            until = self.timer.time_until_next_call()
        self.callback()


class RclpyNode(Node):
    """A node on rclpy. `ros_node` is the underlying `rclpy.node.Node`."""

    backend = 'rclpy'
    _live = 0  # nodes of this process on the default context: the last one shuts it down

    def __init__(self, name: str, args: NodeArgs | None = None,
                 argv: list[str] | None = None) -> None:
        super().__init__(name, args)
        argv = list(argv or [])
        if not rclpy.ok():  # context-wide arguments (--log-level, --enclave) and signal handlers
            _init_rclpy(argv)
            RclpyNode._live = 0
        # rcl applies this node's own --ros-args (name, namespace, params files, -p, remaps);
        # not the context's, so several nodes in one process each get their own (node.py).
        # The program name rcl ignores (an argument outside --ros-args without ':=').
        self.ros_node = RosNode(name, cli_args=argv, use_global_arguments=False)
        # One executor for this node for its life: rclpy.spin_once adds and removes the node
        # on the global executor on every call (rclpy/__init__.py), which costs more than the
        # callbacks at the sim's 250 Hz /clock.
        self._executor = SingleThreadedExecutor(context=self.ros_node.context)
        self._executor.add_node(self.ros_node)
        self.name = self.ros_node.get_name()
        self.namespace = self.ros_node.get_namespace()
        self._logger = _Logger(self.ros_node.get_logger())
        self.rmw = get_rmw_implementation_identifier()
        self._open = True
        RclpyNode._live += 1

    def msg_type(self, ros_type: str) -> type:
        pkg, kind, name = ros_type.split('/')
        try:
            return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
        except (ImportError, AttributeError):
            raise VidplanError(
                f'{ros_type} is not available in this ROS 2 environment; install/source the '
                f'package {pkg} (for unitree_hg: unitree_ros2 cyclonedds_ws) or run the node '
                'with the dds transport (--backend dds)') from None

    def create_publisher(self, ros_type: str, topic: str, qos: QoS = QOS_DEFAULT) -> Any:
        return _Publisher(self.ros_node.create_publisher(self.msg_type(ros_type), topic,
                                                         ros_qos(qos)), self.ros_node.context)

    def create_subscription(self, ros_type: str, topic: str, callback: Callable[[Any], None],
                            qos: QoS = QOS_DEFAULT) -> Any:
        return self.ros_node.create_subscription(self.msg_type(ros_type), topic, callback,
                                                 ros_qos(qos))

    def count_publishers(self, topic: str) -> int:
        with _unless_shut_down(self.ros_node.context):
            return self.ros_node.count_publishers(topic)
        return 0                 # a signal shut the context down: nobody is publishing

    def create_timer(self, period_s: float, callback: Callable[[], None],
                     spin_s: float = 0.0) -> Any:
        check_timer_spin(period_s, spin_s)
        if spin_s <= 0 or self.use_sim_time:
            return self.ros_node.create_timer(period_s, callback)
        ticker = _SpinTicker(int(period_s * 1e9), int(spin_s * 1e9), callback)
        ticker.timer = self.ros_node.create_timer(period_s, ticker)
        return ticker.timer

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
        """Declare every config field as a typed parameter, read them back, build `cls`.

        The same rules as the dds backend (`base.node_params`): a key in the node's params
        files or `-p` that is neither a field nor a ROS-level parameter is an error naming it
        and the allowed keys, and an empty list means the dataclass default. rcl gives a `[]`
        in a params file no type (rcl_yaml_param_parser parse.c), so rclpy keeps it as a
        NOT_SET override and `get_parameter` raises ParameterUninitializedException
        (node.py, declare_parameters / get_parameter; rclcpp#1955): such a parameter is
        declared ignoring the override, with its default. A field whose default is an empty
        tuple is declared by type, then set to a typed empty array, so it is never unset.
        """
        source = f'node {self.name} parameters'
        # rclpy has no public accessor for the overrides rcl parsed for this node (params
        # files and -p, already matched to the node's name); node.py has kept them in
        # `_parameter_overrides` since Dashing.
        overrides = {k: _plain(p.value) for k, p in
                     getattr(self.ros_node, '_parameter_overrides', {}).items()}
        ros_level = set(self.ros_node.list_parameters([], 0).names)  # rclpy's own, declared
        node_params(cls, {k: v for k, v in overrides.items()  # raises on unknown keys
                          if k not in ros_level and v is not None}, source)
        try:
            defaults = config_to_params(cls())
        except TypeError:  # a required field: no instance without the params
            defaults = {}
        params: dict[str, Any] = {}
        for key, ftype in field_types(cls).items():
            ptype = param_type(ftype)
            unset_override = key in overrides and overrides[key] is None
            try:
                if key in defaults and defaults[key] != []:
                    self.ros_node.declare_parameter(key, defaults[key],
                                                    ignore_override=unset_override)
                else:
                    self.ros_node.declare_parameter(key, ptype, ignore_override=unset_override)
                    if key in defaults and (unset_override or key not in overrides):
                        self.ros_node.set_parameters([Parameter(key, ptype, [])])
            except InvalidParameterTypeException:
                raise ConfigError(source, key, overrides.get(key), _type_hint(ptype)) from None
            value = self.ros_node.get_parameter(key).value
            if value is not None:
                params[key] = _plain(value)
        return config_from_params(cls, params, source)

    @property
    def logger(self) -> _Logger:
        return self._logger

    def spin_once(self, timeout_s: float = 0.1) -> None:
        # SIGINT/SIGTERM: rclpy's signal handler shuts the context down (signal_handler.cpp)
        # and the executor then raises ExternalShutdownException (executors.py); that is a
        # normal stop here: ok() turns false and spin() returns. Once rclpy.shutdown() has
        # run, the global executor is gone (spin_once would raise TypeError): nothing to do.
        if not self.ok():
            return
        try:
            self._executor.spin_once(timeout_sec=max(0.0, timeout_s))
        except ExternalShutdownException:
            pass
        except Exception:  # noqa: BLE001
            # The signal thread may shut the context down between the check above and the
            # executor building its wait set: then rcl refuses the timeout timer (RCLError
            # "the given context is not valid"). That is the same stop; anything else is not.
            if rclpy.ok(context=self.ros_node.context):
                raise

    def ok(self) -> bool:
        return self._open and rclpy.ok()

    def shutdown(self) -> None:
        if not self._open:
            return
        self._open = False
        self._executor.remove_node(self.ros_node)
        self._executor.shutdown(timeout_sec=0.0)
        self.ros_node.destroy_node()
        RclpyNode._live -= 1
        if RclpyNode._live <= 0:
            _shutdown_rclpy()


def _type_hint(ptype: Parameter.Type) -> str:
    what = {Parameter.Type.DOUBLE: 'a double: write it with a decimal point (1.0, not 1)',
            Parameter.Type.DOUBLE_ARRAY: 'a list of doubles: write every element with a '
                                         'decimal point ([1.0, 2.0], not [1, 2])',
            # parse.c reads y/n/yes/no/on/off/true/false unquoted as booleans, digits as numbers
            Parameter.Type.STRING: "a string: quote it ('y', '1') if ROS reads it as a "
                                   'boolean or a number'}
    return what.get(ptype, f'a value of ROS parameter type {ptype.name}')
