"""The executor node: the last gate before the robot. A thin adapter over `core.executor`.

in   /vidplan/grounded_plan                trajectory_msgs/JointTrajectory (stamp = observation)
in   /vidplan/grounded_plan/feasibility    std_msgs/Float64MultiArray [stamp_s, residual, align]
in   robot state: /joint_states (sensor_msgs/JointState) or /lowstate (unitree_hg/LowState)
in   /vidplan/estop                        std_msgs/Bool (true = stop, latched until false)
out  by the robot spec's command interface (or the `interface` parameter):
       joint_trajectory     a short JointTrajectory chunk of the safe command, every stream period
       follow_joint_trajectory  one control_msgs/FollowJointTrajectory goal per accepted plan
                            (the safe command over goal_horizon_s) on the spec's
                            follow_joint_trajectory_action; feedback error and results in
                            /diagnostics; cancelled on e-stop / hold and at shutdown (rclpy only)
       unitree_arm_sdk/_lowcmd  unitree_hg/LowCmd every control period (CRC, mode_machine echoed;
                            arm_sdk weight ramped in once commanding, out on e-stop/shutdown)
       joint_state_command  sensor_msgs/JointState (Isaac Sim /joint_command)
in   <gripper_width_topic> (off when '')   std_msgs/Float64 hand opening (m) -> a GripperCommand
                                           goal on <spec gripper.action>/gripper_action
                                           (franka_gripper; rclpy only)
out  /diagnostics (mode, reason, plan counters, clamps), every mode change and at 2 Hz.
A plan is used only with its feasibility figures (same stamp), so the world-model gate applies.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vidplan_ros.core.action_goals import (GoalBook, GripperConfig, feedback_error_rad,
                                           gripper_command)
from vidplan_ros.core.config import require, require_positive
from vidplan_ros.core.executor import Command, Executor, ExecutorConfig, GroundedPlan
from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.robot_spec import (COMMAND_INTERFACES, RobotSpec, is_unitree_interface,
                                         load_robot_spec)
from vidplan_ros.nodes.action_client import ActionGoalClient
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
    tick_spin_s: float = 0.0003          # busy-wait this last part of each tick's wait
    shadow: bool = False                 # compute, publish nothing to the robot (bag replay)
    goal_horizon_s: float = 1.0          # follow_joint_trajectory: seconds of command per goal
    gripper_width_topic: str = ''        # '' = no gripper commands
    gripper: GripperConfig = field(default_factory=GripperConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    def __post_init__(self) -> None:
        require(self.interface in ('', *COMMAND_INTERFACES), 'interface', self.interface,
                f"'' (the robot's) or one of {', '.join(COMMAND_INTERFACES)}")
        require_positive(self, 'feasibility_wait_s', 'stream_rate_hz', 'chunk_horizon_s',
                         'chunk_dt_s', 'arm_sdk_ramp_s', 'max_catch_up_s', 'goal_horizon_s')
        require(0.0 <= self.tick_spin_s <= 0.001, 'tick_spin_s', self.tick_spin_s,
                'between 0 (sleep to every tick) and 0.001 s')


class ExecutorNode:
    def __init__(self, argv: list[str] | None = None) -> None:
        self.node = create_node('vidplan_executor', argv)
        try:
            self._setup()
        except BaseException:
            self.node.shutdown()   # a bad config must not leave the node (and rclpy) running
            raise

    def _setup(self) -> None:
        self.cfg = cfg = self.node.load_config(ExecutorNodeConfig)
        self.spec: RobotSpec = load_robot_spec(cfg.robot)
        self.interface = cfg.interface or self.spec.interfaces.command_interface
        self.ex = Executor(self.spec, cfg.executor)
        self.names_out = self.spec.joint_names   # commands name the robot's own joints
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
        g1 = is_unitree_interface(self.interface)
        if g1:
            n.create_subscription('unitree_hg/msg/LowState', i.lowstate_topic, self._on_lowstate)
        else:
            n.create_subscription('sensor_msgs/msg/JointState', i.joint_states_topic,
                                  self._on_joint_state)
        self.pub = self.follow = self.hand = None
        if not self.cfg.shadow:
            ros_type, name = i.command(self.interface)   # the robot spec's table
            if self.interface == 'follow_joint_trajectory':
                self.follow = ActionGoalClient(
                    n, ros_type, name, GoalBook('follow_joint_trajectory'),
                    error_of=lambda fb: feedback_error_rad(fb.joint_names, fb.error.positions,
                                                           self.names_out),
                    result_of=lambda r: (int(r.error_code), str(r.error_string)))
            else:
                self.pub = n.create_publisher(ros_type, name)
        if self.cfg.gripper_width_topic and not self.cfg.shadow:
            self._build_gripper()
        period = self.dt_s if g1 else 1.0 / self.cfg.stream_rate_hz
        n.create_timer(period, self._tick, spin_s=min(self.cfg.tick_spin_s, period / 2))
        n.create_timer(0.5, self._publish_status)

    def _build_gripper(self) -> None:
        g = self.spec.gripper
        if g.width_max_m <= 0 or not g.action:
            raise VidplanError(f'gripper_width_topic is set but robot {self.spec.name} has no '
                               'gripper (gripper.width_max_m, gripper.action in its spec)')
        # franka_gripper's GripperCommand server (franka_ros2 gripper_action_server.cpp)
        self.hand = ActionGoalClient(self.node, 'control_msgs/action/GripperCommand',
                                     f'{g.action.rstrip("/")}/gripper_action',
                                     GoalBook('gripper'))
        self.hand_width: float | None = None
        self.node.create_subscription('std_msgs/msg/Float64', self.cfg.gripper_width_topic,
                                      self._on_gripper_width)

    def _on_gripper_width(self, msg: Any) -> None:
        cfg = replace(self.cfg.gripper, width_max_m=self.spec.gripper.width_max_m)
        try:
            position, effort = gripper_command(cfg, float(msg.data))
        except ValueError as exc:
            self.node.logger.warning(f'ignored a gripper command: {exc}', throttle_s=2.0)
            return
        width = 2 * position
        if self.hand_width is not None and abs(width - self.hand_width) < cfg.min_change_m:
            return
        goal = self.hand.goal_msg()
        goal.command.position, goal.command.max_effort = position, effort
        if self.hand.send(goal) is not None:
            self.hand_width = width

    # --- inputs ---------------------------------------------------------------------------
    def _on_joint_state(self, msg: Any) -> None:
        try:
            q, dq = cv.joint_state_arrays(msg, self.spec.names_in(msg.name))
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
            # fr3_* plans drive a panda_* robot by the spec's joint_aliases (and back)
            times, pos, vel = cv.joint_trajectory_arrays(msg, self.spec.names_in(msg.joint_names))
        except ValueError as exc:
            self.drops['plan_invalid'] += 1
            self.node.logger.warning(f'rejected a plan: {exc}', throttle_s=2.0)
            return
        self._advance()  # judge and splice the plan at the current time, not the last tick's
        decision = self.ex.on_plan(GroundedPlan(stamp_ns * 1e-9, times, pos, vel, residual,
                                                alignment, 'grounding'))
        if decision.accepted:
            self.plan_stamp_s = stamp_ns * 1e-9
            if self.follow is not None:
                self._send_goal(self.plan_stamp_s)
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
        if self.follow is not None and self.last is not None:
            # the controller would go on with the goal: stop it with the executor
            self.follow.cancel(self.follow.book.cancel_target(self.last.mode))
        if self.pub is not None and self.last is not None and self.last.mode != 'idle':
            self._publish_command(self.last)

    def _chunk(self, cmd: Command, horizon_s: float) -> Any:
        """The safe command from `cmd` on for `horizon_s`, as a JointTrajectory (t = 0: now)."""
        times, q, dq = self.ex.preview(cmd.stamp_s, horizon_s, self.cfg.chunk_dt_s)
        times = np.concatenate([[0.0], times - cmd.stamp_s])
        return cv.joint_trajectory_msg(
            self.node.msg_type, int(round(cmd.stamp_s * 1e9)), self.names_out, times,
            np.vstack([cmd.q_rad, q]), velocities=np.vstack([cmd.dq_rad_s, dq]))

    def _send_goal(self, plan_stamp_s: float) -> None:
        """One FollowJointTrajectory goal for the plan just accepted; it preempts the last."""
        if self.last is None:
            return
        goal = self.follow.goal_msg()
        goal.trajectory = self._chunk(self.last, self.cfg.goal_horizon_s)
        # stamp 0: the controller starts it on receipt (JTC), our t = 0 is the current command
        goal.trajectory.header.stamp = self.node.stamp(0)
        self.follow.send(goal, plan_stamp_s)

    def _publish_command(self, cmd: Command) -> None:
        t = self.node.msg_type
        now_ns = int(round(cmd.stamp_s * 1e9))
        if self.interface == 'joint_trajectory':
            self.pub.publish(self._chunk(cmd, self.cfg.chunk_horizon_s))
        elif self.interface == 'joint_state_command':
            self.pub.publish(cv.joint_state_msg(t, now_ns, self.names_out, cmd.q_rad,
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
        if self.follow is not None:
            values.update(self.follow.book.summary())
        if self.hand is not None:
            values.update({f'gripper_{k}': v for k, v in self.hand.book.summary().items()})
        self.diag.publish(int(round(self.last.stamp_s * 1e9)),
                          {'executor': (level, self.last.mode, values)})

    def close(self) -> None:
        # stop what the controllers would otherwise go on executing, then leave
        for client in (self.follow, self.hand):
            try:
                if client is not None and client.cancel_active() is not None:
                    self.node.spin(timeout_s=0.2)
            except Exception as exc:  # noqa: BLE001 - the context may already be shut down
                print(f'vidplan_executor: could not cancel the {client.book.name} goal at '
                      f'shutdown ({exc}); the controller holds at its trajectory end',
                      file=sys.stderr)
        self.node.shutdown()


def main(argv: list[str] | None = None) -> int:
    return spin(ExecutorNode(sys.argv if argv is None else argv))


if __name__ == '__main__':
    sys.exit(main())
