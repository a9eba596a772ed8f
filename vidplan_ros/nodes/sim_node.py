"""The embedded MuJoCo simulator as a ROS 2 node that looks like the real robots.

Franka (franka_ros2 + JTC):  sub <controller>/joint_trajectory  trajectory_msgs/JointTrajectory
                             <gripper.action>/gripper_action    control_msgs/GripperCommand
                                 (action server as franka_gripper's: rclpy with control_msgs only)
                             sub <gripper_command_topic>        sensor_msgs/JointState (width / 2)
                             (sim-only topic, the one `vidplan collect` records: the dds backend
                             has no services and so no action servers; franka_gripper's ~/move,
                             ~/grasp and ~/homing (franka_msgs) are not served)
                             pub /joint_states                  sensor_msgs/JointState
G1 (unitree_hg over DDS):    pub /lowstate                      unitree_hg/LowState (CRC, tick)
                             sub /lowcmd, /arm_sdk              unitree_hg/LowCmd (CRC checked)
Both:  pub /cameras/<name>/image_raw + camera_info (rgb8), /clock, /diagnostics (episode, task,
       drops). Episodes run back to back: after success (+ settle time) or the episode time the
       sim resets with the next seed and reports the result.
The physics steps in this node's loop (PD at the physics rate), paced to real time when it can.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from vidplan_ros.core.config import require, require_positive
from vidplan_ros.sim.env import SimConfig, SimEnv
from vidplan_ros.sim.trajectory import TrajectoryFollower
from vidplan_ros.sim.unitree_bridge import UnitreeBridgeConfig, UnitreeLowLevel
from vidplan_ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA, create_node
from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.unitree_crc import lowcmd_crc_ok
from vidplan_ros.nodes.diagnostics import Diagnostics


@dataclass(frozen=True)
class SimNodeConfig:
    robot: str = 'franka_fr3'
    task: str = 'franka/reach'
    seed: int = 0
    episodes: int = 0                  # 0 = run forever
    episode_time_s: float = 20.0
    settle_time_s: float = 0.5         # keep running this long after success, then reset
    cameras: tuple[str, ...] = ()      # empty = every camera of the scene
    image_width: int = 96
    image_height: int = 96
    physics_dt_s: float = 0.002
    camera_rate_hz: float = 10.0
    joint_state_rate_hz: float = 100.0
    lowstate_rate_hz: float = 500.0
    clock_rate_hz: float = 250.0
    status_rate_hz: float = 2.0
    realtime_factor: float = 1.0       # 0 = as fast as possible
    gripper_command_topic: str = '/franka_gripper/joint_command'
    gripper_timeout_s: float = 3.0     # a GripperCommand goal not reached by then is aborted
    mode_machine: int = 5              # G1 29-DoF rev 1.0 (robots.md §2.2)
    lowcmd_timeout_s: float = 0.1

    def __post_init__(self) -> None:
        require_positive(self, 'episode_time_s', 'image_width', 'image_height', 'physics_dt_s',
                         'camera_rate_hz', 'joint_state_rate_hz', 'lowstate_rate_hz',
                         'clock_rate_hz', 'status_rate_hz', 'lowcmd_timeout_s',
                         'gripper_timeout_s')
        require(self.episodes >= 0, 'episodes', self.episodes, 'an episode count >= 0')
        require(self.settle_time_s >= 0, 'settle_time_s', self.settle_time_s, 'a time >= 0 s')
        require(self.realtime_factor >= 0, 'realtime_factor', self.realtime_factor,
                'a factor >= 0 (0 = as fast as possible)')


class _Every:
    """Fires once per period of sim time."""

    def __init__(self, rate_hz: float) -> None:
        self.period_ns = int(1e9 / rate_hz)
        self.next_ns = 0

    def due(self, now_ns: int) -> bool:
        if now_ns < self.next_ns:
            return False
        self.next_ns = max(self.next_ns + self.period_ns, now_ns)
        return True


class SimNode:
    def __init__(self, argv: list[str] | None = None) -> None:
        self.node = create_node('vidplan_sim', argv)
        self.cfg = cfg = self.node.load_config(SimNodeConfig)
        self.env = SimEnv(SimConfig(robot=cfg.robot, task=cfg.task, cameras=cfg.cameras,
                                    image_width=cfg.image_width, image_height=cfg.image_height,
                                    physics_dt_s=cfg.physics_dt_s))
        self.spec = self.env.spec
        self.is_g1 = self.spec.interfaces.unitree
        self.sim_ns = 0
        self.dt_ns = int(round(cfg.physics_dt_s * 1e9))
        self.episode, self.seed = 0, cfg.seed
        self.results: list[dict] = []
        self.diag = Diagnostics(self.node, 'vidplan_sim')
        self.drops = {'crc': 0, 'mode_machine': 0, 'invalid': 0}
        msg = self.node.msg_type
        self.pub_clock = self.node.create_publisher('rosgraph_msgs/msg/Clock', '/clock')
        self.pub_cam = {c: (self.node.create_publisher('sensor_msgs/msg/Image',
                                                       f'/cameras/{c}/image_raw',
                                                       QOS_SENSOR_DATA),
                            self.node.create_publisher('sensor_msgs/msg/CameraInfo',
                                                       f'/cameras/{c}/camera_info',
                                                       QOS_SENSOR_DATA))
                        for c in self.env.camera_names}
        self.rates = {name: _Every(rate) for name, rate in (
            ('clock', cfg.clock_rate_hz), ('camera', cfg.camera_rate_hz),
            ('state', cfg.lowstate_rate_hz if self.is_g1 else cfg.joint_state_rate_hz),
            ('status', cfg.status_rate_hz))}
        if self.is_g1:
            self.lowlevel = UnitreeLowLevel(self.spec, UnitreeBridgeConfig(cfg.lowcmd_timeout_s))
            self.pub_state = self.node.create_publisher('unitree_hg/msg/LowState',
                                                        self.spec.interfaces.lowstate_topic)
            for source in ('lowcmd', 'arm_sdk'):
                self.node.create_subscription('unitree_hg/msg/LowCmd', f'/{source}',
                                              lambda m, s=source: self._on_lowcmd(s, m))
        else:
            self.follower = TrajectoryFollower(self.spec.joint_names,
                                               np.asarray(self.spec.ready_pose_rad))
            self.pub_state = self.node.create_publisher('sensor_msgs/msg/JointState',
                                                        self.spec.interfaces.joint_states_topic)
            self.node.create_subscription('trajectory_msgs/msg/JointTrajectory',
                                          self.spec.interfaces.joint_trajectory_topic,
                                          self._on_trajectory, QOS_DEFAULT)
            self.node.create_subscription('sensor_msgs/msg/JointState',
                                          cfg.gripper_command_topic, self._on_gripper)
            self._serve_gripper_action()
        self._msg = msg
        self._reset()

    # --- episodes -------------------------------------------------------------------------
    def _reset(self) -> None:
        self.env.reset(self.seed)
        self.episode_start_ns = self.sim_ns
        self.success_ns: int | None = None
        if not self.is_g1:
            self.follower.hold(self.env.q(), self.now_s)
        self.node.logger.info(f'episode {self.episode}: {self.cfg.task} seed {self.seed}')

    @property
    def now_s(self) -> float:
        return self.sim_ns * 1e-9

    def _check_episode(self) -> bool:
        """Reset when the episode is over; False once the configured episodes are done."""
        elapsed_s = (self.sim_ns - self.episode_start_ns) * 1e-9
        if self.success_ns is None and self.env.success():
            self.success_ns = self.sim_ns
        settled = (self.success_ns is not None
                   and (self.sim_ns - self.success_ns) * 1e-9 >= self.cfg.settle_time_s)
        if not (settled or elapsed_s >= self.cfg.episode_time_s):
            return True
        result = {'episode': self.episode, 'seed': self.seed,
                  'success': self.success_ns is not None,
                  'time_to_success_s': None if self.success_ns is None else
                  (self.success_ns - self.episode_start_ns) * 1e-9}
        self.results.append(result)
        self.node.logger.info(f'episode {self.episode} seed {self.seed}: '
                              f'{"SUCCESS" if result["success"] else "failure"}')
        self._publish_status(force=True)
        self.episode += 1
        self.seed += 1
        if self.cfg.episodes and self.episode >= self.cfg.episodes:
            return False
        self._reset()
        return True

    # --- commands in ----------------------------------------------------------------------
    def _on_trajectory(self, msg: object) -> None:
        try:
            times, pos, vel = cv.joint_trajectory_arrays(msg, self.spec.joint_names)
            start_s = cv.time_to_ns(msg.header.stamp) * 1e-9
            if len(times) == 0:
                self.follower.hold(self.env.q(), self.now_s)
                return
            self.follower.set_trajectory(start_s, times, pos, vel, self.now_s, self.env.q(),
                                         self.env.dq())
        except ValueError as exc:
            self.drops['invalid'] += 1
            self.node.logger.warning(f'rejected a joint trajectory: {exc}', throttle_s=1.0)

    def _on_gripper(self, msg: object) -> None:
        try:
            q, _ = cv.joint_state_arrays(msg, self.spec.gripper.joint_names[:1])
            width = 2.0 * float(q[0])
            if not np.isfinite(width):
                raise ValueError(f'gripper width {width} is not finite')
            self.env.set_gripper_width(float(np.clip(width, 0.0, self.spec.gripper.width_max_m)))
        except ValueError as exc:
            self.drops['invalid'] += 1
            self.node.logger.warning(f'rejected a gripper command: {exc}', throttle_s=1.0)

    def _serve_gripper_action(self) -> None:
        """franka_gripper's ~/gripper_action (franka_ros2 franka_gripper
        gripper_action_server.cpp): target width = 2 * command.position, rejected outside
        [0, max width]; ends when the fingers get there (succeeded, reached_goal) or after
        gripper_timeout_s (aborted, e.g. blocked by an object: stalled)."""
        self.grip: tuple | None = None
        g = self.spec.gripper
        if self.node.backend != 'rclpy' or g.width_max_m <= 0 or not g.action:
            return
        import importlib.util
        if importlib.util.find_spec('control_msgs') is None:
            self.node.logger.info('control_msgs is not installed: no GripperCommand server '
                                  f'(gripper commands on {self.cfg.gripper_command_topic})')
            return
        from rclpy.action import ActionServer, CancelResponse, GoalResponse
        self._grip_type = grip = self.node.msg_type('control_msgs/action/GripperCommand')

        def goal_ok(goal: object) -> object:
            width = 2.0 * goal.command.position
            ok = np.isfinite(width) and 0.0 <= width <= g.width_max_m + 1e-9
            return GoalResponse.ACCEPT if ok else GoalResponse.REJECT

        self._grip_server = ActionServer(
            self.node.ros_node, grip, f'{g.action.rstrip("/")}/gripper_action',
            self._grip_execute, goal_callback=goal_ok,
            cancel_callback=lambda _h: CancelResponse.ACCEPT)

    async def _grip_execute(self, handle: object) -> object:
        from rclpy.task import Future
        if self.grip is not None:                     # a newer goal replaces the running one
            self.grip[2].set_result('preempted')
        width = 2.0 * handle.request.command.position
        self.env.set_gripper_width(float(np.clip(width, 0.0, self.spec.gripper.width_max_m)))
        done = Future()
        self.grip = (handle, width, done,
                     self.sim_ns + int(self.cfg.gripper_timeout_s * 1e9))
        outcome = await done                          # set by _gripper_progress in the loop
        result = self._grip_type.Result()
        result.position = self.env.gripper_width() / 2.0
        result.reached_goal = outcome == 'reached'
        result.stalled = outcome == 'timeout'
        if outcome == 'reached':
            handle.succeed()
        elif outcome == 'canceled':
            handle.canceled()
        else:
            handle.abort()
        return result

    def _gripper_progress(self) -> None:
        if self.grip is None:
            return
        handle, width, done, deadline_ns = self.grip
        outcome = ('canceled' if handle.is_cancel_requested else
                   'reached' if abs(self.env.gripper_width() - width) < 1e-3 else
                   'timeout' if self.sim_ns > deadline_ns else '')
        if outcome:
            self.grip = None
            done.set_result(outcome)

    def _on_lowcmd(self, source: str, msg: object) -> None:
        if not lowcmd_crc_ok(msg):
            self.drops['crc'] += 1
            self.node.logger.warning(f'/{source}: dropped a LowCmd with a wrong CRC '
                                     f'({self.drops["crc"]} so far)', throttle_s=1.0)
            return
        try:
            arrays = cv.lowcmd_arrays(msg)
            # rt/lowcmd must echo LowState.mode_machine; the SDK's arm_sdk examples leave it 0.
            if source == 'lowcmd' and arrays['mode_machine'] != self.cfg.mode_machine:
                self.drops['mode_machine'] += 1
                raise ValueError(f'mode_machine {arrays["mode_machine"]} != '
                                 f'{self.cfg.mode_machine} from LowState; echo it')
            self.lowlevel.on_frame(source, arrays, self.now_s)
        except ValueError as exc:
            self.drops['invalid'] += 1
            self.node.logger.warning(f'/{source}: dropped a LowCmd: {exc}', throttle_s=1.0)

    # --- physics and publishing -----------------------------------------------------------
    def _control_step(self) -> None:
        if self.is_g1:
            c = self.lowlevel.command(self.now_s)
            self.env.set_joint_command(c.q_des, c.dq_des, c.kp, c.kd, c.tau_ff)
        else:
            q_des, dq_des, _ = self.follower.sample(self.now_s)
            self.env.set_joint_command(q_des, dq_des)
            self._gripper_progress()
        self.env.step(1)
        self.sim_ns += self.dt_ns

    def _publish_due(self) -> None:
        now, msg = self.sim_ns, self._msg
        if self.rates['clock'].due(now):
            self.pub_clock.publish(cv.clock_msg(msg, now))
        if self.rates['state'].due(now):
            self.pub_state.publish(self._state_msg(now))
        if self.rates['camera'].due(now):
            for cam, (pub_img, pub_info) in self.pub_cam.items():
                pixels = self.env.render(cam)
                frame = f'{cam}_camera_optical_frame'
                pub_img.publish(cv.image_msg(msg, now, frame, pixels, 'rgb8'))
                pub_info.publish(cv.camera_info_msg(msg, now, frame, pixels.shape[1],
                                                    pixels.shape[0],
                                                    self.env.camera_intrinsics(cam)))
        self._publish_status()

    def _state_msg(self, now_ns: int) -> object:
        q, dq, tau = self.env.q(), self.env.dq(), self.env.effort()
        if self.is_g1:
            slots = np.asarray(self.spec.unitree.motor_indices)
            full = [np.zeros(cv.UNITREE_MOTORS) for _ in range(3)]
            for arr, val in zip(full, (q, dq, tau)):
                arr[slots] = val
            return cv.lowstate_msg(self._msg, now_ns // 1_000_000, self.cfg.mode_machine, *full)
        names = list(self.spec.joint_names) + list(self.spec.gripper.joint_names)
        half = self.env.gripper_width() / 2.0
        fingers = [half] * len(self.spec.gripper.joint_names)
        return cv.joint_state_msg(self._msg, now_ns, names, np.concatenate([q, fingers]),
                                  np.concatenate([dq, np.zeros(len(fingers))]),
                                  np.concatenate([tau, np.zeros(len(fingers))]))

    def _publish_status(self, force: bool = False) -> None:
        if not (self.rates['status'].due(self.sim_ns) or force):
            return
        done = self.results
        values = {'task': self.cfg.task, 'episode': self.episode, 'seed': self.seed,
                  'success': self.env.success(), 'episodes_done': len(done),
                  'episodes_succeeded': sum(r['success'] for r in done),
                  'sim_time_s': round(self.now_s, 3),
                  **{f'dropped_{k}': v for k, v in self.drops.items()}}
        self.diag.publish(self.sim_ns, {'episode': (0, 'running', values)})

    def run(self) -> list[dict]:
        cfg = self.cfg
        wall0, sim0 = time.monotonic(), self.sim_ns
        while self.node.ok():
            self._control_step()
            self._publish_due()
            if not self._check_episode():
                break
            self.node.spin_once(0.0)
            while cfg.realtime_factor > 0:  # serve callbacks while waiting for wall time
                ahead_s = (self.sim_ns - sim0) * 1e-9 / cfg.realtime_factor - (
                    time.monotonic() - wall0)
                if ahead_s < -0.25:  # cannot keep up: do not try to catch up in a burst
                    wall0, sim0 = time.monotonic(), self.sim_ns
                if ahead_s <= 0:
                    break
                self.node.spin_once(ahead_s)
        return self.results

    def close(self) -> None:
        self.env.close()
        self.node.shutdown()


def main(argv: list[str] | None = None) -> int:
    sim = SimNode(sys.argv if argv is None else argv)
    try:
        results = sim.run()
    except KeyboardInterrupt:
        results = sim.results
    finally:
        sim.close()
    ok = sum(r['success'] for r in results)
    print(f'vidplan_sim: {ok}/{len(results)} episodes succeeded', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
