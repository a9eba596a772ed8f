"""Robot specifications: joints, limits, ready pose, controller interfaces, gains and rates.

A robot is one YAML file in ROS params format (`config/robots/<name>.yaml`); adding another arm
means writing one such file. Per-joint values are lists in `joint_names` order; code always
matches joints by name (`RobotSpec.indices_of`), never by position in a message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidplan_ros.core.config import (load_config, require, require_len, require_one_of,
                                     require_positive)
from vidplan_ros.core.errors import ConfigValueError, VidplanError
from vidplan_ros.core.paths import config_dir

# The one table of how the executor commands a robot: interface -> (ROS type, the
# RobotInterfaces field that names its topic or action). The executor, the node graph and
# `vidplan launch` all read it (through `RobotInterfaces.command`).
COMMAND_INTERFACES: dict[str, tuple[str, str]] = {
    # short chunks on <controller>/joint_trajectory (JTC topic interface, streamed)
    'joint_trajectory': ('trajectory_msgs/msg/JointTrajectory', 'joint_trajectory_topic'),
    # one goal per accepted plan on <controller>/follow_joint_trajectory (JTC action; rclpy)
    'follow_joint_trajectory': ('control_msgs/action/FollowJointTrajectory',
                                'follow_joint_trajectory_action'),
    # upper body over the built-in controller, arm_sdk weight in motor slot 29
    'unitree_arm_sdk': ('unitree_hg/msg/LowCmd', 'arm_sdk_topic'),
    # whole body, motion service released
    'unitree_lowcmd': ('unitree_hg/msg/LowCmd', 'lowcmd_topic'),
    # Isaac Sim's ROS 2 bridge (Subscribe Joint State -> Articulation Controller)
    'joint_state_command': ('sensor_msgs/msg/JointState', 'joint_command_topic'),
}
UNITREE_MOTOR_SLOTS = 35


def is_unitree_interface(interface: str) -> bool:
    """True where command interface `interface` sends Unitree LowCmds (state: LowState)."""
    return COMMAND_INTERFACES.get(interface, ('',))[0].startswith('unitree_hg/')

# Short robot names (CLI, `vidplan collect`) -> bundled robot spec names; written once here.
ROBOT_ALIASES = {'franka': 'franka_fr3', 'fr3': 'franka_fr3', 'panda': 'franka_panda',
                 'g1': 'unitree_g1'}


@dataclass(frozen=True)
class RobotInterfaces:
    """ROS 2 names the robot's controllers use (ROS names; the DDS name is `rt` + name)."""

    command_interface: str = 'joint_trajectory'
    joint_states_topic: str = '/joint_states'
    trajectory_controller: str = ''
    joint_trajectory_topic: str = ''
    follow_joint_trajectory_action: str = ''
    joint_command_topic: str = ''
    arm_sdk_topic: str = ''
    lowcmd_topic: str = ''
    lowstate_topic: str = ''
    dds_domain_id: int = 0

    def __post_init__(self) -> None:
        require_one_of(self, 'command_interface', COMMAND_INTERFACES)
        require(0 <= self.dds_domain_id <= 232, 'dds_domain_id', self.dds_domain_id,
                'a DDS domain id in [0, 232]')
        needed = COMMAND_INTERFACES[self.command_interface][1]
        require(bool(getattr(self, needed)), needed, getattr(self, needed),
                f'a topic name (command_interface is {self.command_interface!r})')

    @property
    def unitree(self) -> bool:
        """The robot speaks Unitree LowCmd / LowState (the G1), not ROS 2 controllers."""
        return is_unitree_interface(self.command_interface)

    def command(self, interface: str = '') -> tuple[str, str]:
        """(ROS type, topic or action name) the robot is commanded on over `interface`
        ('' = `command_interface`); a clear error when this robot does not name it."""
        chosen = interface or self.command_interface
        if chosen not in COMMAND_INTERFACES:
            raise VidplanError(f'command interface {chosen!r} is unknown; use one of '
                               f'{list(COMMAND_INTERFACES)}')
        ros_type, key = COMMAND_INTERFACES[chosen]
        name = getattr(self, key)
        if not name:
            raise VidplanError(f'this robot spec sets no interfaces.{key}, so it cannot be '
                               f'commanded over {chosen!r}; add it to the robot YAML')
        return ros_type, name


@dataclass(frozen=True)
class GripperSpec:
    """A parallel gripper; `width_max_m = 0` means the robot has none."""

    joint_names: tuple[str, ...] = ()
    width_max_m: float = 0.0
    speed_max_m_s: float = 0.1
    action: str = ''

    def __post_init__(self) -> None:
        require(self.width_max_m >= 0 and math.isfinite(self.width_max_m), 'width_max_m',
                self.width_max_m, 'a width >= 0 m (0 = no gripper)')
        require_positive(self, 'speed_max_m_s')


@dataclass(frozen=True)
class UnitreeSpec:
    """Unitree low-level (`unitree_hg` LowCmd) layout, for robots on /lowcmd or /arm_sdk."""

    motor_indices: tuple[int, ...] = ()
    arm_sdk_weight_slot: int = 29
    arm_sdk_weight_rate_per_s: float = 0.2
    mode_pr: int = 0

    def __post_init__(self) -> None:
        require(0 <= self.arm_sdk_weight_slot < UNITREE_MOTOR_SLOTS, 'arm_sdk_weight_slot',
                self.arm_sdk_weight_slot, f'a motor slot in [0, {UNITREE_MOTOR_SLOTS})')
        require_positive(self, 'arm_sdk_weight_rate_per_s')
        require(self.mode_pr in (0, 1), 'mode_pr', self.mode_pr, '0 (PR) or 1 (AB)')


@dataclass(frozen=True)
class RobotSpec:
    """Everything the stack needs to know about one robot. Angles in rad, per joint."""

    name: str
    description: str = ''
    urdf: str = ''
    base_link: str = ''
    tip_links: tuple[str, ...] = ()
    joint_names: tuple[str, ...] = ()
    # The same joints under another robot spec's names, in joint_names order (e.g. FR3 <->
    # Panda / Isaac Sim's panda_*): a model set trained on that robot drives this one, and
    # messages naming either set are matched (`names_in`). Empty = no other names.
    joint_aliases: tuple[str, ...] = ()
    position_min_rad: tuple[float, ...] = ()
    position_max_rad: tuple[float, ...] = ()
    velocity_max_rad_s: tuple[float, ...] = ()
    acceleration_max_rad_s2: tuple[float, ...] = ()
    jerk_max_rad_s3: tuple[float, ...] = ()
    effort_max_nm: tuple[float, ...] = ()
    # Optional position-dependent velocity limit (Franka FCI form); empty = rectangular only.
    velocity_offset_rad_s: tuple[float, ...] = ()
    deceleration_max_rad_s2: tuple[float, ...] = ()
    position_margin_rad: float = 0.1
    ready_pose_rad: tuple[float, ...] = ()
    control_rate_hz: float = 100.0
    joint_state_rate_hz: float = 100.0
    kp: tuple[float, ...] = ()
    kd: tuple[float, ...] = ()
    interfaces: RobotInterfaces = field(default_factory=RobotInterfaces)
    gripper: GripperSpec = field(default_factory=GripperSpec)
    unitree: UnitreeSpec = field(default_factory=UnitreeSpec)

    def __post_init__(self) -> None:
        require(bool(self.name), 'name', self.name, 'a non-empty robot name')
        n = len(self.joint_names)
        require(n > 0, 'joint_names', self.joint_names, 'at least one joint name')
        require(len(set(self.joint_names)) == n, 'joint_names', self.joint_names,
                'unique joint names')
        require_len(self, n, 'position_min_rad', 'position_max_rad', 'velocity_max_rad_s',
                    'acceleration_max_rad_s2', 'jerk_max_rad_s3', 'ready_pose_rad', 'kp', 'kd')
        require_len(self, n, 'effort_max_nm', 'velocity_offset_rad_s',
                    'deceleration_max_rad_s2', 'joint_aliases', allow_empty=True)
        require(len(set(self.joint_aliases)) == len(self.joint_aliases)
                and not set(self.joint_aliases) & set(self.joint_names), 'joint_aliases',
                self.joint_aliases, 'unique names, none of them one of joint_names')
        require(len(self.velocity_offset_rad_s) == len(self.deceleration_max_rad_s2),
                'deceleration_max_rad_s2', self.deceleration_max_rad_s2,
                'set together with velocity_offset_rad_s (both lists or both empty)')
        require_positive(self, 'velocity_max_rad_s', 'acceleration_max_rad_s2',
                         'jerk_max_rad_s3', 'control_rate_hz', 'joint_state_rate_hz')
        if self.effort_max_nm:
            require_positive(self, 'effort_max_nm')
        if self.deceleration_max_rad_s2:
            require_positive(self, 'deceleration_max_rad_s2')
        for name in ('position_min_rad', 'position_max_rad', 'kp', 'kd', 'velocity_offset_rad_s'):
            values = getattr(self, name)
            require(all(math.isfinite(v) for v in values), name, values, 'finite numbers')
        for name in ('kp', 'kd', 'velocity_offset_rad_s'):
            values = getattr(self, name)
            require(all(v >= 0 for v in values), name, values, 'every value >= 0')
        lo, hi = np.array(self.position_min_rad), np.array(self.position_max_rad)
        bad = np.flatnonzero(lo >= hi)
        require(bad.size == 0, 'position_max_rad', self.position_max_rad,
                f'greater than position_min_rad for every joint (not for {_names(self, bad)})')
        require(self.position_margin_rad >= 0 and
                bool(np.all(hi - lo > 2 * self.position_margin_rad)), 'position_margin_rad',
                self.position_margin_rad, 'a margin >= 0 smaller than half of every joint range')
        ready = np.array(self.ready_pose_rad)
        bad = np.flatnonzero((ready < lo) | (ready > hi))
        require(bad.size == 0, 'ready_pose_rad', self.ready_pose_rad,
                f'inside the position limits (not for {_names(self, bad)})')
        if self.interfaces.unitree:
            self._check_unitree(n)

    def _check_unitree(self, n: int) -> None:
        idx = self.unitree.motor_indices
        ok = (len(idx) == n and len(set(idx)) == n
              and all(0 <= i < UNITREE_MOTOR_SLOTS and i != self.unitree.arm_sdk_weight_slot
                      for i in idx))
        if not ok:
            raise ConfigValueError(
                'unitree.motor_indices', idx,
                f'{n} distinct LowCmd motor slots in [0, {UNITREE_MOTOR_SLOTS}), one per joint, '
                f'not the arm_sdk weight slot {self.unitree.arm_sdk_weight_slot}')

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def names_in(self, names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """This robot's joints as `names` (a message's) calls them: `joint_names`, or
        `joint_aliases` when the message uses those (Isaac's panda_* for an FR3 model set).
        Look them up with `cv.joint_state_arrays` & co., which name what is missing."""
        present = set(names)
        if self.joint_aliases and not set(self.joint_names) <= present \
                and set(self.joint_aliases) <= present:
            return self.joint_aliases
        return self.joint_names

    def indices_of(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """For each of this robot's joints, its index in `names` (e.g. a JointState's names),
        by joint name or, when `names` uses them, by `joint_aliases`.

        Raises `VidplanError` naming the joints that `names` lacks.
        """
        where = {name: i for i, name in enumerate(names)}
        mine = self.names_in(names)
        missing = [j for j in mine if j not in where]
        if missing:
            also = f' (or {list(self.joint_aliases)})' if self.joint_aliases else ''
            raise VidplanError(f'{self.name}: joints {missing}{also} are missing from '
                               f'{list(names)}; check that the robot spec matches the robot')
        return np.array([where[j] for j in mine], dtype=np.int64)


def _names(spec: RobotSpec, idx: np.ndarray) -> list[str]:
    return [spec.joint_names[i] for i in idx]


def resolve_robot_name(name: str) -> str:
    """A bundled spec name for a short one (`franka` -> `franka_fr3`); others unchanged."""
    return ROBOT_ALIASES.get(name, name)


def robot_spec_path(name_or_path: str) -> Path:
    """The YAML of a bundled robot (`franka_fr3`, or short: `franka`) or a path to a user's
    YAML."""
    path = Path(name_or_path)
    if path.suffix in ('.yaml', '.yml'):
        return path
    return config_dir() / 'robots' / f'{resolve_robot_name(name_or_path)}.yaml'


def available_robots() -> list[str]:
    """Names of the robot specs bundled in config/robots/."""
    return sorted(p.stem for p in (config_dir() / 'robots').glob('*.yaml'))


def load_robot_spec(name_or_path: str) -> RobotSpec:
    """Load and validate a robot spec by bundled name or YAML path."""
    path = robot_spec_path(name_or_path)
    if not path.exists():
        raise VidplanError(f'no robot spec {name_or_path!r} (looked for {path}); bundled robots: '
                           f'{available_robots()}; or pass the path of your own robot YAML')
    return load_config(RobotSpec, path)
