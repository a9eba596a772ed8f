"""The Cyclone DDS backend: ROS 2 topics without ROS (robots.md §4).

`/x` is DDS topic `rt/x` with type `pkg::msg::dds_::T_` in plain CDR, so a ROS 2 node on
rmw_cyclonedds (and, over RTPS, other rmws) sees these topics, and the Unitree G1 is reached
directly. One participant per node; a single-threaded executor (a WaitSet over the readers plus
timers) runs the callbacks, as rclpy's SingleThreadedExecutor does.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from typing import Any, Callable, TypeVar

from cyclonedds._clayer import ddspy_take
from cyclonedds.core import (DDSException, GuardCondition, InstanceState, Policy, Qos,
                             ReadCondition, SampleState, ViewState, WaitSet)
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.transport.base import (Node, NodeArgs, check_timer_spin,
                                        config_from_node_params, params_from_args)
from vidplan_ros.transport.convert import time_to_ns
from vidplan_ros.transport.dds_msgs import dds_type
from vidplan_ros.transport.log import NodeLogger
from vidplan_ros.transport.names import dds_topic_name
from vidplan_ros.transport.qos import QOS_CLOCK, QOS_DEFAULT, QoS

C = TypeVar('C')
_ANY_STATE = SampleState.Any | ViewState.Any | InstanceState.Any
_TAKE_BATCH = 64


def dds_qos(qos: QoS) -> Qos:
    """Our QoS as Cyclone policies (the same RxO-relevant kinds rmw_cyclonedds sets)."""
    return Qos(
        Policy.Reliability.Reliable(duration(milliseconds=100)) if qos.reliability == 'reliable'
        else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if qos.durability == 'transient_local'
        else Policy.Durability.Volatile,
        Policy.History.KeepLast(qos.depth) if qos.history == 'keep_last'
        else Policy.History.KeepAll,
    )


class DdsPublisher:
    def __init__(self, topic: str, writer: DataWriter, msg_cls: type) -> None:
        self.topic = topic
        self._writer = writer
        self._cls = msg_cls

    def publish(self, msg: Any) -> None:
        if not isinstance(msg, self._cls):
            raise TypeError(f'{self.topic}: expected {self._cls.__name__}, got '
                            f'{type(msg).__name__}; build it with node.msg_type(...)')
        self._writer.write(msg)

    def get_subscription_count(self) -> int:
        return len(self._writer.get_matched_subscriptions())


class DdsSubscription:
    def __init__(self, topic: str, reader: DataReader, condition: ReadCondition,
                 msg_cls: type, callback: Callable[[Any], None]) -> None:
        self.topic = topic
        self.reader = reader
        self.condition = condition
        self.msg_cls = msg_cls
        self.callback = callback
        self.malformed = 0

    def get_publisher_count(self) -> int:
        return len(self.reader.get_matched_publications())


class DdsTimer:
    def __init__(self, period_ns: int, callback: Callable[[], None], start_ns: int,
                 spin_ns: int = 0) -> None:
        self.period_ns = period_ns
        self.callback = callback
        self.next_ns = start_ns + period_ns
        self.spin_ns = spin_ns
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class DdsNode(Node):
    """A node whose topics are DDS topics, with ROS 2 names, types and QoS."""

    backend = 'dds'

    def __init__(self, name: str, args: NodeArgs | None = None,
                 domain_id: int | None = None) -> None:
        super().__init__(name, args)
        self._params, self._params_source = params_from_args(self.args, self.name)
        sim = self._params.get('use_sim_time', False)
        if not isinstance(sim, bool):
            raise VidplanError(f'{self._params_source}: use_sim_time = {sim!r} is not allowed: '
                               'true or false')
        self._use_sim_time = sim
        self._logger = NodeLogger(self.name)
        domain = int(os.environ.get('ROS_DOMAIN_ID', '0')) if domain_id is None else domain_id
        self.participant = DomainParticipant(domain)
        self._waitset = WaitSet(self.participant)
        self._guard = GuardCondition(self.participant)
        self._waitset.attach(self._guard)
        self._topics: dict[str, Topic] = {}
        self._subs: list[DdsSubscription] = []
        self._timers: list[DdsTimer] = []
        self._posted: list[Callable[[], None]] = []
        self._posted_lock = threading.Lock()
        self._sim_ns: int | None = None
        self._ok = True
        self.callback_errors = 0
        if self._use_sim_time:
            self.create_subscription('rosgraph_msgs/msg/Clock', '/clock', self._on_clock,
                                     QOS_CLOCK)

    # --- messages -------------------------------------------------------------------------
    def msg_type(self, ros_type: str) -> type:
        return dds_type(ros_type)

    def _topic(self, ros_type: str, topic: str) -> tuple[str, Topic, type]:
        full = self.resolve(topic)
        name = dds_topic_name(full)
        cls = self.msg_type(ros_type)
        existing = self._topics.get(name)
        if existing is None:
            existing = self._topics[name] = Topic(self.participant, name, cls)
        elif existing.data_type is not cls:
            raise VidplanError(f'{full}: already used with type {existing.data_type.__name__} '
                               f'in this node; cannot also use it as {ros_type}')
        return full, existing, cls

    def create_publisher(self, ros_type: str, topic: str,
                         qos: QoS = QOS_DEFAULT) -> DdsPublisher:
        full, dds_topic, cls = self._topic(ros_type, topic)
        return DdsPublisher(full, DataWriter(self.participant, dds_topic, qos=dds_qos(qos)), cls)

    def create_subscription(self, ros_type: str, topic: str, callback: Callable[[Any], None],
                            qos: QoS = QOS_DEFAULT) -> DdsSubscription:
        full, dds_topic, cls = self._topic(ros_type, topic)
        reader = DataReader(self.participant, dds_topic, qos=dds_qos(qos))
        condition = ReadCondition(reader, _ANY_STATE)
        self._waitset.attach(condition)
        sub = DdsSubscription(full, reader, condition, cls, callback)
        self._subs.append(sub)
        return sub

    def count_publishers(self, topic: str) -> int:
        # Every reader of a topic matches the same writers; DDS discovery has no cheaper count.
        full = self.resolve(topic)
        return max((s.get_publisher_count() for s in self._subs if s.topic == full),
                   default=0)

    def create_timer(self, period_s: float, callback: Callable[[], None],
                     spin_s: float = 0.0) -> DdsTimer:
        if not period_s > 0:
            raise ValueError(f'timer period {period_s!r} s must be > 0')
        check_timer_spin(period_s, spin_s)
        timer = DdsTimer(int(period_s * 1e9), callback, self._timer_now_ns() or 0,
                         int(spin_s * 1e9))
        self._timers.append(timer)
        return timer

    def post(self, fn: Callable[[], None]) -> None:
        """Run `fn` in the spin thread soon; safe to call from any thread (e.g. a worker)."""
        with self._posted_lock:
            self._posted.append(fn)
        self._guard.set(True)

    # --- time -----------------------------------------------------------------------------
    @property
    def use_sim_time(self) -> bool:
        return self._use_sim_time

    def now_ns(self) -> int:
        if self._use_sim_time:
            return self._sim_ns or 0
        return time.time_ns()

    def _timer_now_ns(self) -> int | None:
        # Wall timers run on the monotonic clock so wall-clock steps do not burst or stall them.
        return self._sim_ns if self._use_sim_time else time.monotonic_ns()

    def _on_clock(self, msg: Any) -> None:
        ns = time_to_ns(msg.clock)
        if self._sim_ns is not None and ns < self._sim_ns:  # time jumped back (bag loop)
            for t in self._timers:
                t.next_ns = ns + t.period_ns
        self._sim_ns = ns

    # --- parameters, logging --------------------------------------------------------------
    def load_config(self, cls: type[C]) -> C:
        return config_from_node_params(cls, self._params, self._params_source)

    @property
    def logger(self) -> NodeLogger:
        return self._logger

    # --- executor -------------------------------------------------------------------------
    def spin_once(self, timeout_s: float = 0.1) -> None:
        if not self._ok:
            return
        wait_ns = int(max(0.0, timeout_s) * 1e9)
        now = self._timer_now_ns()
        if now is not None and not self._use_sim_time:
            for t in self._timers:
                if not t.cancelled:
                    wait_ns = min(wait_ns, max(0, t.next_ns - t.spin_ns - now))
        if wait_ns > 0:
            self._waitset.wait(wait_ns)
        self._guard.take()
        self._run_posted()
        for sub in list(self._subs):
            self._drain(sub)
        self._spin_to_deadline()
        self._run_timers()

    def _spin_to_deadline(self) -> None:
        """Busy-wait to the next deadline of a timer created with spin_s, when it is due
        within that margin (wall time only: sim-time deadlines come with /clock)."""
        if self._use_sim_time:
            return
        now = time.monotonic_ns()
        due = [t.next_ns for t in self._timers
               if t.spin_ns and not t.cancelled and 0 < t.next_ns - now <= t.spin_ns]
        if due:
            deadline = min(due)
            while time.monotonic_ns() < deadline:
                pass

    def _drain(self, sub: DdsSubscription) -> None:
        while self._ok:
            try:
                raw = ddspy_take(sub.reader._ref, _ANY_STATE, _TAKE_BATCH)
            except DDSException as exc:
                self._logger.error(f'{sub.topic}: take failed: {exc}', throttle_s=1.0)
                return
            if isinstance(raw, int):
                if raw < 0:
                    self._logger.error(f'{sub.topic}: take failed with code {raw}',
                                       throttle_s=1.0)
                return
            if not raw:
                return
            for data, info in raw:
                if not info.valid_data:
                    continue  # instance state change (writer gone), no sample
                try:
                    msg = sub.msg_cls.deserialize(data)
                except Exception as exc:  # noqa: BLE001 — a malformed sample must not stop us
                    sub.malformed += 1
                    self._logger.warning(
                        f'{sub.topic}: dropped a malformed {sub.msg_cls.__name__} sample '
                        f'({len(data)} bytes, {type(exc).__name__}: {exc}); '
                        f"{sub.malformed} dropped so far. Check the publisher's message type.",
                        throttle_s=1.0)
                    continue
                self._call(sub.callback, msg, where=sub.topic)
            if len(raw) < _TAKE_BATCH:
                return

    def _run_timers(self) -> None:
        now = self._timer_now_ns()
        if now is None:
            return  # sim time and no /clock yet: time has not started
        for t in list(self._timers):
            if t.cancelled or now < t.next_ns:
                continue
            # Skip missed periods instead of bursting (as rcl does).
            missed = (now - t.next_ns) // t.period_ns
            t.next_ns += (missed + 1) * t.period_ns
            self._call(t.callback, where='timer')
        self._timers = [t for t in self._timers if not t.cancelled]

    def _run_posted(self) -> None:
        with self._posted_lock:
            posted, self._posted = self._posted, []
        for fn in posted:
            self._call(fn, where='posted callback')

    def _call(self, fn: Callable[..., None], *args: Any, where: str) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 — keep serving the other callbacks; report loudly
            self.callback_errors += 1
            self._logger.error(f'{where}: callback raised (#{self.callback_errors}):\n'
                               f'{traceback.format_exc()}', throttle_s=1.0)

    def ok(self) -> bool:
        return self._ok

    def shutdown(self) -> None:
        self._ok = False
        self._subs.clear()
        self._timers.clear()
        self._topics.clear()
