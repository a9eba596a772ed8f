"""QoS profiles with ROS 2's meaning, independent of the middleware (robots.md §4.4)."""

from __future__ import annotations

from dataclasses import dataclass

from vidplan_ros.core.config import require, require_one_of


@dataclass(frozen=True)
class QoS:
    """A DDS/ROS 2 QoS profile. `depth` applies to `history='keep_last'`."""

    reliability: str = 'reliable'
    durability: str = 'volatile'
    history: str = 'keep_last'
    depth: int = 10

    def __post_init__(self) -> None:
        require_one_of(self, 'reliability', ('reliable', 'best_effort'))
        require_one_of(self, 'durability', ('volatile', 'transient_local'))
        require_one_of(self, 'history', ('keep_last', 'keep_all'))
        require(self.depth >= 1, 'depth', self.depth, 'a queue depth >= 1')


# rmw qos_profile_default: what rclpy's `create_publisher(T, topic, 10)` means.
QOS_DEFAULT = QoS()
# rmw qos_profile_sensor_data: cameras, high-rate state.
QOS_SENSOR_DATA = QoS(reliability='best_effort', depth=5)
# rclcpp SystemDefaultsQoS under rmw_cyclonedds (JTC topics, franka robot_state).
QOS_SYSTEM_DEFAULT = QoS(depth=1)
# rclpy/rclcpp's /clock subscription.
QOS_CLOCK = QoS(reliability='best_effort', depth=1)
# Latched: the last value is delivered to late joiners (e.g. a plan preview, an e-stop state).
QOS_LATCHED = QoS(durability='transient_local', depth=1)
