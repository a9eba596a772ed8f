"""The embedded simulation as one ROS-free object: a robot scene, a task, PD joint control.

`SimEnv` is what the sim node (hardware interfaces, /clock), scripted experts and recorders
build on. Joint arrays are always in the robot spec's joint order (`spec.joint_names`).

Control, at every physics step (like the robots' own joint controllers):

    tau = clip(tau_ff + kp (q_des - q) + kd (dq_des - dq) + comp, -effort_max, effort_max)

- Franka: `comp` = gravity + Coriolis/centrifugal torques (MuJoCo's `qfrc_bias`), as the FCI
  compensates them on the real robot. Default gains `FRANKA_SIM_KP/KD` (10x / 3x the
  franka_ros2 JTC gains): tracking a 1 rad/s sine stays well under 1 mrad RMS.
- G1: no compensation (the real motors do plain PD); default gains are the spec's arm_sdk
  gains (kp 60 arms / 240 waist).

Command inputs are validated whole before anything changes: a non-finite value or a wrong shape
raises ValueError and the previous command stays in force.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidplan_ros.core.config import require, require_one_of
from vidplan_ros.core.robot_spec import RobotSpec, load_robot_spec
from vidplan_ros.sim.render import CameraRenderer, mujoco
from vidplan_ros.sim.scene import (GRIPPER_ACTUATOR, ROBOT_SCENES, Appearance, build_spec,
                                   camera_names, compile_spec)
from vidplan_ros.sim.tasks import TASKS, Task, TaskState, make_task, task_robot

# Franka gains that track well here (N m/rad, N m s/rad): with the armature of scene.py the
# explicit PD is stable at 2 ms and a 4 rad/s, 0.25 rad sine is tracked to ~0.5 mrad RMS.
FRANKA_SIM_KP = (6000.0, 6000.0, 6000.0, 6000.0, 2500.0, 1500.0, 500.0)
FRANKA_SIM_KD = (90.0, 90.0, 90.0, 90.0, 30.0, 30.0, 15.0)
GRAVITY_COMPENSATED = {'franka_fr3': True, 'unitree_g1': False}
MAX_IMAGE_SIZE = 4096


@dataclass(frozen=True)
class SimConfig:
    """Which robot, task and cameras; image size; physics step."""

    robot: str = 'franka_fr3'          # robot spec name ('franka_fr3' | 'unitree_g1')
    task: str = 'franka/reach'         # see vidplan_ros.sim.tasks (must match the robot)
    cameras: tuple[str, ...] = ()      # empty = all cameras of the scene
    image_width: int = 96              # pixels
    image_height: int = 96
    physics_dt_s: float = 0.002
    domain_randomization: bool = False  # light, table/floor colours, camera jitter per reset

    def __post_init__(self) -> None:
        require_one_of(self, 'robot', sorted(ROBOT_SCENES))
        require_one_of(self, 'task', sorted(TASKS))
        require(task_robot(self.task) == self.robot, 'task', self.task,
                f'a task for robot {self.robot!r} (this one is for {task_robot(self.task)!r})')
        known = camera_names(self.robot)
        require(all(c in known for c in self.cameras) and
                len(set(self.cameras)) == len(self.cameras), 'cameras', self.cameras,
                f'distinct names from {list(known)} (empty = all)')
        for name in ('image_width', 'image_height'):
            value = getattr(self, name)
            require(isinstance(value, int) and 0 < value <= MAX_IMAGE_SIZE, name, value,
                    f'an integer number of pixels in [1, {MAX_IMAGE_SIZE}]')
        require(isinstance(self.physics_dt_s, float) and 0 < self.physics_dt_s <= 0.01,
                'physics_dt_s', self.physics_dt_s, 'a step in (0, 0.01] s (0.002 is tuned)')


def _selector(index: np.ndarray) -> slice | np.ndarray:
    """`index` as a slice when it is a contiguous ascending run, else as is."""
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[0]) + len(index))
    return index


class SimEnv:
    """A MuJoCo scene of one robot doing one task, driven by joint PD commands."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.spec: RobotSpec = load_robot_spec(cfg.robot)
        self.joint_names: tuple[str, ...] = self.spec.joint_names
        self.camera_names: tuple[str, ...] = cfg.cameras or camera_names(cfg.robot)
        self.task: Task = make_task(cfg.task)
        world = build_spec(cfg.robot, self.task, physics_dt_s=cfg.physics_dt_s,
                           image_width=cfg.image_width, image_height=cfg.image_height)
        self.model = compile_spec(world)
        self.data = mujoco.MjData(self.model)
        self.task.bind(self.model)
        self._appearance = Appearance(self.model)
        m = self.model
        self._qadr = np.array([m.joint(j).qposadr[0] for j in self.joint_names])
        self._dadr = np.array([m.joint(j).dofadr[0] for j in self.joint_names])
        self._act = np.array([m.actuator(j).id for j in self.joint_names])
        # Slices (views that follow the state in place) where the addresses are contiguous.
        self._qsel, self._dsel, self._asel = (_selector(a) for a in
                                              (self._qadr, self._dadr, self._act))
        self._copies = not (isinstance(self._qsel, slice) and isinstance(self._dsel, slice))
        self._effort_max = np.array(self.spec.effort_max_nm or (np.inf,) * len(self._qadr))
        self._compensate = GRAVITY_COMPENSATED[cfg.robot]
        if cfg.robot == 'franka_fr3':
            self.default_kp, self.default_kd = np.array(FRANKA_SIM_KP), np.array(FRANKA_SIM_KD)
        else:
            self.default_kp, self.default_kd = np.array(self.spec.kp), np.array(self.spec.kd)
        self._defaults = np.stack([np.zeros(len(self._qadr)), np.zeros(len(self._qadr)),
                                   self.default_kp, self.default_kd,
                                   np.zeros(len(self._qadr))])
        self._has_gripper = self.spec.gripper.width_max_m > 0
        self._grip_step = self.spec.gripper.speed_max_m_s / 2 * self.model.opt.timestep
        self._kinematics_stale = False
        if self._has_gripper:
            self._grip_act = m.actuator(GRIPPER_ACTUATOR).id
            self._finger_qadr = np.array([m.joint(j).qposadr[0]
                                          for j in self.spec.gripper.joint_names])
        self._renderer: CameraRenderer | None = None
        self.reset(0)

    # -- episode -------------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        """Robot at the spec's ready pose (at rest, gripper at the task's opening, default
        open), task randomised from `seed`."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        ready = np.array(self.spec.ready_pose_rad, dtype=np.float64)
        d.qpos[self._qadr] = ready
        self._cmd = self._defaults.copy()
        self._cmd[0] = ready
        self._effort = np.zeros(len(ready))
        if self._has_gripper:
            width = self.task.gripper_width_m
            half = (self.spec.gripper.width_max_m if width is None else width) / 2
            d.qpos[self._finger_qadr] = half
            d.ctrl[self._grip_act] = half
            self._grip_goal = half
        self.task.reset(d, np.random.default_rng(seed))
        if self.cfg.domain_randomization:
            self._appearance.randomize(m, np.random.default_rng((seed, 0xD7)))
        else:
            self._appearance.restore(m)
        mujoco.mj_forward(m, d)
        self._kinematics_stale = False

    @property
    def time_s(self) -> float:
        """Simulated time since the last reset (s)."""
        return float(self.data.time)

    @property
    def physics_dt_s(self) -> float:
        return float(self.model.opt.timestep)

    # -- joints --------------------------------------------------------------------------------

    def q(self) -> np.ndarray:
        """(n,) joint positions, rad."""
        return self.data.qpos[self._qadr].copy()

    def dq(self) -> np.ndarray:
        """(n,) joint velocities, rad/s."""
        return self.data.qvel[self._dadr].copy()

    def effort(self) -> np.ndarray:
        """(n,) joint torques applied during the last physics step, N m (0 after reset)."""
        return self._effort.copy()

    def set_joint_command(self, q_des: np.ndarray, dq_des: np.ndarray | None = None,
                          kp: np.ndarray | None = None, kd: np.ndarray | None = None,
                          tau_ff: np.ndarray | None = None) -> None:
        """PD targets applied from the next step on; each (n,), spec joint order.

        None means: dq_des 0, kp/kd the env defaults (`default_kp`, `default_kd`), tau_ff 0.
        Raises ValueError (and keeps the previous command) for a wrong shape, a non-finite
        value or a negative gain.
        """
        n = len(self._qadr)
        given = (('q_des', q_des), ('dq_des', dq_des), ('kp', kp), ('kd', kd),
                 ('tau_ff', tau_ff))
        cmd = np.empty((5, n))   # rows: q_des, dq_des, kp, kd, tau_ff
        for row, (name, value) in enumerate(given):
            if value is None:
                cmd[row] = self._defaults[row]
                continue
            if np.shape(value) != (n,):
                raise ValueError(f'{name} must have shape ({n},) (joints {self.joint_names}), '
                                 f'got {np.shape(value)}; command ignored')
            try:
                cmd[row] = value
            except (TypeError, ValueError):
                raise ValueError(f'{name} must be numbers, got {value!r}') from None
        if not np.isfinite(cmd).all():
            bad = [given[i][0] for i in np.flatnonzero(~np.isfinite(cmd).all(axis=1))]
            raise ValueError(f'{bad} must be finite; command ignored')
        if (cmd[2:4] < 0).any():
            raise ValueError('kp and kd must be >= 0; command ignored')
        self._cmd = cmd

    def set_joint_positions(self, q: np.ndarray) -> None:
        """Teleport the joints to `q` (n,) at rest and hold there (tests, scripted set-ups)."""
        q = np.array(q, dtype=np.float64)
        if q.shape != (len(self._qadr),) or not np.all(np.isfinite(q)):
            raise ValueError(f'q must be finite with shape ({len(self._qadr)},), got {q}')
        self.data.qpos[self._qadr] = q
        self.data.qvel[self._dadr] = 0.0
        self.set_joint_command(q)
        mujoco.mj_forward(self.model, self.data)
        self._kinematics_stale = False

    def nudge_object(self, offset_xy_m: np.ndarray, dyaw_rad: float = 0.0) -> bool:
        """Push the task's object (the cube) by `offset_xy_m` (2,) m and `dyaw_rad` about z,
        at rest: an external disturbance. False (nothing moved) where the task has no object
        or it would end inside the robot."""
        off = np.asarray(offset_xy_m, dtype=np.float64)
        if off.shape != (2,) or not np.all(np.isfinite(off)) or not math.isfinite(dyaw_rad):
            raise ValueError(f'offset_xy_m must be 2 finite metres and dyaw_rad finite, got '
                             f'{offset_xy_m}, {dyaw_rad}')
        self._update_kinematics()
        moved = self.task.nudge_object(self.data, off, float(dyaw_rad))
        self._kinematics_stale = False
        return moved

    def copy_state_from(self, other: SimEnv) -> None:
        """Make this env's physics, commands and task state equal to `other`'s (same robot,
        task and scene): a copy to look ahead in (e.g. the expert's future for `vidplan eval
        --plan-source expert`) without touching `other`."""
        if other.model.nq != self.model.nq or other.cfg.task != self.cfg.task:
            raise ValueError(f'cannot copy the state of a {other.cfg.task} env into a '
                             f'{self.cfg.task} env')
        mujoco.mj_copyData(self.data, self.model, other.data)
        self.task.copy_state_from(other.task)   # the target / goal live in Python, not MjData
        self._cmd = other._cmd.copy()
        self._effort = other._effort.copy()
        if self._has_gripper:
            self._grip_goal = other._grip_goal
        self._kinematics_stale = True

    # -- gripper -------------------------------------------------------------------------------

    def set_gripper_width(self, width_m: float) -> None:
        """Move the fingers to a total opening in [0, spec.gripper.width_max_m] (m), at the
        gripper's speed (spec.gripper.speed_max_m_s). ValueError if out of range or no gripper."""
        if not self._has_gripper:
            raise ValueError(f'robot {self.spec.name!r} has no gripper')
        width_max = self.spec.gripper.width_max_m
        if not (np.isfinite(width_m) and -1e-9 <= width_m <= width_max + 1e-9):
            raise ValueError(f'gripper width must be in [0, {width_max}] m, got {width_m}')
        self._grip_goal = float(np.clip(width_m, 0.0, width_max)) / 2

    def gripper_width(self) -> float:
        """Current total finger opening (m); 0 for a robot without a gripper."""
        if not self._has_gripper:
            return 0.0
        return float(self.data.qpos[self._finger_qadr].sum())

    # -- stepping ------------------------------------------------------------------------------

    def step(self, n: int = 1) -> None:
        """Advance `n` physics steps, running the PD (and the gripper ramp) before each."""
        m, d = self.model, self.data
        q_des, dq_des, kp, kd, tau_ff = self._cmd
        lo, hi = -self._effort_max, self._effort_max
        q, dq, bias, ctrl = (d.qpos[self._qsel], d.qvel[self._dsel], d.qfrc_bias[self._dsel],
                             d.ctrl)
        tau = self._effort
        for _ in range(int(n)):
            mujoco.mj_step1(m, d)  # kinematics and bias forces of the current state
            tau = tau_ff + kp * (q_des - q) + kd * (dq_des - dq)
            if self._compensate:
                tau += bias
            tau = np.minimum(np.maximum(tau, lo), hi)
            ctrl[self._asel] = tau
            if self._has_gripper:
                now = float(ctrl[self._grip_act])
                ctrl[self._grip_act] = now + min(max(self._grip_goal - now, -self._grip_step),
                                                 self._grip_step)
            mujoco.mj_step2(m, d)
            if self._copies:          # joint addresses not contiguous: re-read the copies
                q, dq, bias = (d.qpos[self._qsel], d.qvel[self._dsel],
                               d.qfrc_bias[self._dsel])
        self._effort = tau
        self._kinematics_stale = True

    def _update_kinematics(self) -> None:
        """Poses of the current state (mj_step leaves body and camera poses one step behind);
        done lazily, before anything reads them."""
        if self._kinematics_stale:
            m, d = self.model, self.data
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_camlight(m, d)
            self._kinematics_stale = False

    # -- observations --------------------------------------------------------------------------

    def render(self, camera: str) -> np.ndarray:
        """(image_height, image_width, 3) uint8 RGB image of `camera`."""
        self._check_camera(camera)
        self._update_kinematics()
        if self._renderer is None:
            self._renderer = CameraRenderer(self.model, self.cfg.image_width,
                                            self.cfg.image_height)
        return self._renderer.render(self.data, camera)

    def camera_intrinsics(self, camera: str) -> np.ndarray:
        """(3, 3) pinhole K in pixels (OpenCV convention: pixel centres at integers)."""
        self._check_camera(camera)
        w, h = self.cfg.image_width, self.cfg.image_height
        fovy = np.deg2rad(self.model.cam_fovy[self.model.camera(camera).id])
        f = 0.5 * h / np.tan(0.5 * fovy)   # MuJoCo pixels are square
        return np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])

    def camera_pose(self, camera: str) -> np.ndarray:
        """(4, 4) pose of the camera's optical frame (z forward, x right, y down) in the robot
        base frame, the extrinsics that go with `camera_intrinsics`."""
        self._check_camera(camera)
        self._update_kinematics()
        cam = self.data.cam(camera)
        pose = np.eye(4)
        pose[:3, :3] = cam.xmat.reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        pose[:3, 3] = cam.xpos
        return self._in_base(pose)

    def _check_camera(self, camera: str) -> None:
        if camera not in self.camera_names:
            raise ValueError(f'no camera {camera!r}; cameras: {list(self.camera_names)}')

    def task_state(self) -> TaskState:
        """The task's state now (target / cube / goal positions, tip position)."""
        self._update_kinematics()
        return self.task.state(self.data)

    def success(self) -> bool:
        self._update_kinematics()
        return bool(self.task.success(self.data))

    def tcp_pose(self, link: str | None = None) -> np.ndarray:
        """(4, 4) pose of `link` (default: the task's tip link) in the robot base frame (m)."""
        link = link or self.task.tip_link
        if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, link) < 0:
            raise ValueError(f'no link {link!r} in the {self.spec.name} scene')
        self._update_kinematics()
        body = self.data.body(link)
        pose = np.eye(4)
        pose[:3, :3] = body.xmat.reshape(3, 3)
        pose[:3, 3] = body.xpos
        return self._in_base(pose)

    def _in_base(self, pose: np.ndarray) -> np.ndarray:
        base = self.data.body(self.spec.base_link)
        rot = base.xmat.reshape(3, 3)
        out = np.eye(4)
        out[:3, :3] = rot.T @ pose[:3, :3]
        out[:3, 3] = rot.T @ (pose[:3, 3] - base.xpos)
        return out

    def close(self) -> None:
        """Free the renderer's GL context (the env can still step; render reopens it)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> SimEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
