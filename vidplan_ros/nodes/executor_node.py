"""The executor node: the last gate before the robot. A thin adapter over `core.executor`.

in   /vidplan/grounded_plan                trajectory_msgs/JointTrajectory (stamp = observation)
in   /vidplan/grounded_plan/feasibility    std_msgs/Float64MultiArray [stamp_s, residual, align]
in   robot state: /joint_states (sensor_msgs/JointState) or /lowstate (unitree_hg/LowState)
in   /vidplan/estop                        std_msgs/Bool (true = stop, latched until false)
out  by the robot spec's command interface:
       joint_trajectory     a short JointTrajectory chunk of the safe command, every stream period
       unitree_arm_sdk/_lowcmd  unitree_hg/LowCmd every control period (CRC, mode_machine echoed;
                            arm_sdk weight ramped in once commanding, out on e-stop/shutdown)
       joint_state_command  sensor_msgs/JointState (Isaac Sim /joint_command)
out  /diagnostics (mode, reason, plan counters, clamps), every mode change and at 2 Hz.
A plan is used only with its feasibility figures (same stamp), so the world-model gate applies.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.executor import Command, Executor, ExecutorConfig, GroundedPlan
from vidplan_ros.core.robot_spec import COMMAND_INTERFACES, RobotSpec, load_robot_spec
from vidplan_ros.nodes.diagnostics import ERROR, OK, WARN, Diagnostics, spin
from vidplan_ros.transport import create_node
from vidplan_ros.transport import convert as cv


@dataclass(frozen=True)
class ExecutorNodeConfig:
    robot: str = 'franka_fr3'
    interface: str = ''                  # '' = the robot spec's command interface
    plan_topic: str = '/vidplan/grounded_plan'
    estop_topic: str = '/vidplan/estop'
    require_feasibility: bool = True     # wait for the plan's world-model figures
    feasibility_wait_s: float = 0.1
    stream_rate_hz: float = 50.0         # chunk / JointState rate (JTC, Isaac)
    chunk_horizon_s: float = 0.1
    chunk_dt_s: float = 0.02
    arm_sdk_ramp_s: float = 1.0          # G1 arm_sdk weight 0 -> 1 (and back) over this
    max_catch_up_s: float = 0.25         # a stalled loop resumes at now instead of replaying
    shadow: bool = False                 # compute, publish nothing to the robot (bag replay)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        require(self.interface in ('', *COMMAND_INTERFACES), 'interface', self.interface,
                f"'' (the robot's) or one of {', '.join(COMMAND_INTERFACES)}")
        require_positive(self, 'feasibility_wait_s', 'stream_rate_hz', 'chunk_horizon_s',
                         'chunk_dt_s', 'arm_sdk_ramp_s', 'max_catch_up_s')


class ExecutorNode:
    def __init__(self, argv: list[str] | None = None) -> None:
        self.node = create_node('vidplan_executor', argv)
        self.cfg = cfg = self.node.load_config(ExecutorNodeConfig)
        self.spec: RobotSpec = load_robot_spec(cfg.robot)
        self.interface = cfg.interface or self.spec.interfaces.command_interface
        self.ex = Executor(self.spec, cfg.executor)
        self.dt_s = cfg.executor.control_dt_s
        self.t_cmd_s: float | None = None
        self.last: Command | None = None
        self.mode_machine: int | None = None
        self.weight = 0.0
        self.mode_since_s = 0.0
        self.tracking_ended_s = 0.0          # first command that stopped following a plan
        self.tracking_ended_reason = ''
        self.plan_stamp_s = 0.0              # source stamp of the last accepted plan
        self.feasibility: dict[int, tuple[float, float]] = {}
        self.pending: list[tuple[float, Any]] = []
        self.drops = {'plan_invalid': 0, 'plan_no_feasibility': 0, 'state_invalid': 0}
        self.diag = Diagnostics(self.node, 'vidplan_executor')
        self._build_io()

    def _build_io(self) -> None:
        n, i = self.node, self.spec.interfaces
        n.create_subscription('trajectory_msgs/msg/JointTrajectory', self.cfg.plan_topic,
                              self._on_plan)
        n.create_subscription('std_msgs/msg/Float64MultiArray',
                              self.cfg.plan_topic + '/feasibility', self._on_feasibility)
        n.create_subscription('std_msgs/msg/Bool', self.cfg.estop_topic,
                              lambda m: self.ex.set_estop(bool(m.data)))
        g1 = self.interface.startswith('unitree')
        if g1:
            n.create_subscription('unitree_hg/msg/LowState', i.lowstate_topic, self._on_lowstate)
        else:
            n.create_subscription('sensor_msgs/msg/JointState', i.joint_states_topic,
                                  self._on_joint_state)
        self.pub = None
        if not self.cfg.shadow:
            ros_type, topic = i.command(self.interface)   # the robot spec's table
            self.pub = n.create_publisher(ros_type, topic)
        period = self.dt_s if g1 else 1.0 / self.cfg.stream_rate_hz
        n.create_timer(period, self._tick)
        n.create_timer(0.5, self._publish_status)

    # --- inputs ---------------------------------------------------------------------------
    def _on_joint_state(self, msg: Any) -> None:
        try:
            q, dq = cv.joint_state_arrays(msg, self.spec.joint_names)
        except ValueError as exc:
            self.drops['state_invalid'] += 1
            self.node.logger.warning(f'ignored a joint state: {exc}', throttle_s=2.0)
            return
        self.ex.on_state(q, None if np.isnan(dq).any() else dq,
                         cv.time_to_ns(msg.header.stamp) * 1e-9 or self.node.now_s())

    def _on_lowstate(self, msg: Any) -> None:
        from vidplan_ros.transport.unitree_crc import lowstate_crc_ok
        if not lowstate_crc_ok(msg):
            self.drops['state_invalid'] += 1
            self.node.logger.warning('ignored a LowState with a wrong CRC', throttle_s=2.0)
            return
        arrays = cv.lowstate_arrays(msg)
        self.mode_machine = int(arrays['mode_machine'])
        slots = np.asarray(self.spec.unitree.motor_indices)
        self.ex.on_state(arrays['q'][slots], arrays['dq'][slots], self.node.now_s())

    def _on_feasibility(self, msg: Any) -> None:
        data = list(msg.data)
        if len(data) != 3 or not np.all(np.isfinite(data)):
            self.drops['plan_invalid'] += 1
            self.node.logger.warning(f'feasibility message must be [stamp_s, residual, '
                                     f'alignment], finite; got {data}', throttle_s=2.0)
            return
        self.feasibility[int(round(data[0] * 1e9))] = (data[1], data[2])
        while len(self.feasibility) > 32:
            self.feasibility.pop(next(iter(self.feasibility)))
        self._match_pending()

    def _on_plan(self, msg: Any) -> None:
        self.pending.append((self.node.now_s(), msg))
        self._match_pending()

    def _match_pending(self) -> None:
        now, keep = self.node.now_s(), []
        for received_s, msg in self.pending:
            stamp_ns = cv.time_to_ns(msg.header.stamp)
            figures = self._figures_for(stamp_ns)
            if figures is None and not self.cfg.require_feasibility:
                figures = (0.0, 1.0)
            if figures is not None:
                self._use_plan(msg, stamp_ns, *figures)
            elif now - received_s > self.cfg.feasibility_wait_s:
                self.drops['plan_no_feasibility'] += 1
                self.node.logger.warning('dropped a plan without feasibility figures (publish '
                                         'them on <plan_topic>/feasibility)', throttle_s=2.0)
            else:
                keep.append((received_s, msg))
        self.pending = keep

    def _figures_for(self, stamp_ns: int) -> tuple[float, float] | None:
        """The figures filed under the plan's stamp. A float64 of seconds since 1970 resolves
        only ~0.2 us, so the stamp in the figures matches to within 1 us, not exactly."""
        exact = self.feasibility.get(stamp_ns)
        if exact is not None:
            return exact
        near = min(self.feasibility, key=lambda k: abs(k - stamp_ns), default=None)
        return None if near is None or abs(near - stamp_ns) > 1000 else self.feasibility[near]

    def _use_plan(self, msg: Any, stamp_ns: int, residual: float, alignment: float) -> None:
        try:
            times, pos, vel = cv.joint_trajectory_arrays(msg, self.spec.joint_names)
        except ValueError as exc:
            self.drops['plan_invalid'] += 1
            self.node.logger.warning(f'rejected a plan: {exc}', throttle_s=2.0)
            return
        self._advance()  # judge and splice the plan at the current time, not the last tick's
        decision = self.ex.on_plan(GroundedPlan(stamp_ns * 1e-9, times, pos, vel, residual,
                                                alignment, 'grounding'))
        if decision.accepted:
            self.plan_stamp_s = stamp_ns * 1e-9
        else:
            self.node.logger.warning(f'executor rejected a plan: {decision.reason}',
                                     throttle_s=2.0)

    # --- control loop ---------------------------------------------------------------------
    def _advance(self) -> bool:
        """Step the executor once per control period up to now; True if the mode changed."""
        now = self.node.now_s()
        if self.t_cmd_s is None or now - self.t_cmd_s > self.cfg.max_catch_up_s:
            self.t_cmd_s = now - self.dt_s
        changed = False
        while self.t_cmd_s + self.dt_s <= now + 1e-9:
            self.t_cmd_s += self.dt_s
            cmd = self.ex.step(self.t_cmd_s)
            if self.last is None or cmd.mode != self.last.mode:
                self.mode_since_s, changed = cmd.stamp_s, True
                if self.last is not None and self.last.mode == 'track':
                    self.tracking_ended_s, self.tracking_ended_reason = cmd.stamp_s, cmd.reason
            self.last = cmd
        return changed

    def _tick(self) -> None:
        self._match_pending()
        if self._advance():
            self._publish_status()
        if self.pub is not None and self.last is not None and self.last.mode != 'idle':
            self._publish_command(self.last)

    def _publish_command(self, cmd: Command) -> None:
        t = self.node.msg_type
        now_ns = int(round(cmd.stamp_s * 1e9))
        if self.interface == 'joint_trajectory':
            times, q, dq = self.ex.preview(cmd.stamp_s, self.cfg.chunk_horizon_s,
                                           self.cfg.chunk_dt_s)
            times = np.concatenate([[0.0], times - cmd.stamp_s])
            self.pub.publish(cv.joint_trajectory_msg(
                t, now_ns, self.spec.joint_names, times,
                np.vstack([cmd.q_rad, q]), velocities=np.vstack([cmd.dq_rad_s, dq])))
        elif self.interface == 'joint_state_command':
            self.pub.publish(cv.joint_state_msg(t, now_ns, self.spec.joint_names, cmd.q_rad,
                                                cmd.dq_rad_s))
        else:
            self._publish_lowcmd(cmd)

    def _publish_lowcmd(self, cmd: Command) -> None:
        if self.mode_machine is None:
            return  # never command before LowState told us mode_machine
        full = {k: np.zeros(cv.UNITREE_MOTORS) for k in ('q', 'dq', 'kp', 'kd')}
        slots = np.asarray(self.spec.unitree.motor_indices)
        full['q'][slots], full['dq'][slots] = cmd.q_rad, cmd.dq_rad_s
        full['kp'][slots], full['kd'][slots] = self.spec.kp, self.spec.kd
        mode = np.zeros(cv.UNITREE_MOTORS, dtype=np.uint8)
        if self.interface == 'unitree_arm_sdk':
            # Take the arms from the built-in controller gradually; e-stop keeps the weight
            # (the executor decelerates and holds) rather than handing the arms back mid-motion.
            self.weight = min(1.0, self.weight + self.dt_s / self.cfg.arm_sdk_ramp_s)
            full['q'][self.spec.unitree.arm_sdk_weight_slot] = self.weight
        else:
            mode[slots] = 1
        self.pub.publish(cv.lowcmd_msg(self.node.msg_type, self.mode_machine, full['q'],
                                       full['dq'], np.zeros(cv.UNITREE_MOTORS), full['kp'],
                                       full['kd'], mode, self.spec.unitree.mode_pr))

    def _publish_status(self) -> None:
        if self.last is None:
            return
        st = self.ex.status()
        level = {'track': OK, 'idle': WARN, 'hold': WARN, 'decelerate': WARN}.get(
            self.last.mode, ERROR)
        values = {'mode': self.last.mode, 'reason': self.last.reason,
                  'command_time_s': f'{self.last.stamp_s:.6f}',
                  'mode_since_s': f'{self.mode_since_s:.6f}',
                  'tracking_ended_s': f'{self.tracking_ended_s:.6f}',
                  'tracking_ended_reason': self.tracking_ended_reason,
                  'plan_stamp_s': f'{self.plan_stamp_s:.6f}', 'interface': self.interface,
                  'accepted': st['accepted'], 'rejected': st['rejected'],
                  'clamps': st['clamps'], 'estop': st['estop'], 'arm_sdk_weight': self.weight,
                  **self.drops}
        self.diag.publish(int(round(self.last.stamp_s * 1e9)),
                          {'executor': (level, self.last.mode, values)})

    def close(self) -> None:
        self.node.shutdown()


def main(argv: list[str] | None = None) -> int:
    return spin(ExecutorNode(sys.argv if argv is None else argv))


if __name__ == '__main__':
    sys.exit(main())
