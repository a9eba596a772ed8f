"""Publishing /diagnostics (diagnostic_msgs/DiagnosticArray) from a node, either backend."""

from __future__ import annotations

from typing import Any, Mapping

from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.base import Node

OK, WARN, ERROR, STALE = 0, 1, 2, 3


class Diagnostics:
    """One DiagnosticArray per `publish`, a status per named part: `<node>: <part>`."""

    def __init__(self, node: Node, hardware_id: str) -> None:
        self.node = node
        self.hardware_id = hardware_id
        self.pub = node.create_publisher('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics')

    def publish(self, stamp_ns: int,
                parts: Mapping[str, tuple[int, str, Mapping[str, Any]]]) -> None:
        """`parts`: name -> (level OK/WARN/ERROR/STALE, message, key/values)."""
        t = self.node.msg_type
        # ROS `byte`: an int on DDS, a 1-byte bytes object in rclpy.
        as_byte = (lambda v: bytes([v])) if self.node.backend == 'rclpy' else int
        status = [t('diagnostic_msgs/msg/DiagnosticStatus')(
            level=as_byte(level), name=f'{self.node.name}: {name}', message=message,
            hardware_id=self.hardware_id,
            values=[t('diagnostic_msgs/msg/KeyValue')(key=str(k), value=str(v))
                    for k, v in values.items()])
            for name, (level, message, values) in parts.items()]
        self.pub.publish(t('diagnostic_msgs/msg/DiagnosticArray')(
            header=cv.header(t, stamp_ns), status=status))


def diagnostic_values(msg: Any) -> dict[str, dict[str, str]]:
    """{status name: {key: value}} of a received DiagnosticArray (for tools and tests)."""
    return {s.name: {kv.key: kv.value for kv in s.values} for s in msg.status}


def with_callback_errors(node: Node, level: int, values: dict[str, Any]) -> int:
    """``level`` raised to ERROR (and the count added to ``values``) when one of ``node``'s
    callbacks raised: the DDS backend logs and counts those instead of dying."""
    errors = getattr(node, 'callback_errors', 0)
    if errors:
        values['callback_errors'] = errors
        return ERROR
    return level


def spin(adapter: Any) -> int:
    """Spin ``adapter.node`` until SIGINT / SIGTERM / shutdown, then ``adapter.close()``; exit
    code 0, no traceback: a stop signal is how launch ends every node.

    On rclpy, SIGINT and SIGTERM shut the context down (rclpy src/rclpy/signal_handler.cpp;
    the rclpy backend sets Python's SIGINT handler aside, so no KeyboardInterrupt there) and
    rclpy's executor raises ExternalShutdownException (rclpy/executors.py). The rclpy backend's
    spin_once turns the latter into ``ok() == False``; it is also caught here, by name, so this
    module stays free of rclpy, in case it comes from elsewhere (a callback spinning on its
    own). KeyboardInterrupt is SIGINT on the dds backend.
    """
    try:
        adapter.node.spin()
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 — only the shutdown exception is a clean stop
        if type(exc).__name__ != 'ExternalShutdownException':
            raise
    finally:
        try:
            adapter.close()
        except KeyboardInterrupt:  # a second Ctrl-C while closing: stop closing, quietly
            pass
    return 0
