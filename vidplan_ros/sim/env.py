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
        self._effort_max = np.array(self.spec.effort_max_nm or (np.inf,) * len(self._qadr))
        self._compensate = GRAVITY_COMPENSATED[cfg.robot]
        if cfg.robot == 'franka_fr3':
            self.default_kp, self.default_kd = np.array(FRANKA_SIM_KP), np.array(FRANKA_SIM_KD)
        else:
            self.default_kp, self.default_kd = np.array(self.spec.kp), np.array(self.spec.kd)
        self._has_gripper = self.spec.gripper.width_max_m > 0
        if self._has_gripper:
            self._grip_act = m.actuator(GRIPPER_ACTUATOR).id
            self._finger_qadr = np.array([m.joint(j).qposadr[0]
                                          for j in self.spec.gripper.joint_names])
        self._renderer: CameraRenderer | None = None
        self.reset(0)

    # -- episode -------------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        """Robot at the spec's ready pose (at rest, gripper open), task randomised from `seed`."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        ready = np.array(self.spec.ready_pose_rad, dtype=np.float64)
        d.qpos[self._qadr] = ready
        n = len(ready)
        self._cmd = (ready.copy(), np.zeros(n), self.default_kp.copy(), self.default_kd.copy(),
                     np.zeros(n))
        self._effort = np.zeros(n)
        if self._has_gripper:
            half = self.spec.gripper.width_max_m / 2
            d.qpos[self._finger_qadr] = half
            d.ctrl[self._grip_act] = half
            self._grip_goal = half
        self.task.reset(d, np.random.default_rng(seed))
        if self.cfg.domain_randomization:
            self._appearance.randomize(m, np.random.default_rng((seed, 0xD7)))
        else:
            self._appearance.restore(m)
        mujoco.mj_forward(m, d)

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
        values = {'q_des': q_des, 'dq_des': np.zeros(n) if dq_des is None else dq_des,
                  'kp': self.default_kp if kp is None else kp,
                  'kd': self.default_kd if kd is None else kd,
                  'tau_ff': np.zeros(n) if tau_ff is None else tau_ff}
        arrays = {}
        for name, value in values.items():
            try:
                array = np.array(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f'{name} must be numbers, got {value!r}') from None
            if array.shape != (n,):
                raise ValueError(f'{name} must have shape ({n},) (joints {self.joint_names}), '
                                 f'got {array.shape}')
            if not np.all(np.isfinite(array)):
                raise ValueError(f'{name} must be finite, got {array}; command ignored')
            arrays[name] = array
        if np.any(arrays['kp'] < 0) or np.any(arrays['kd'] < 0):
            raise ValueError('kp and kd must be >= 0; command ignored')
        self._cmd = (arrays['q_des'], arrays['dq_des'], arrays['kp'], arrays['kd'],
                     arrays['tau_ff'])

    def set_joint_positions(self, q: np.ndarray) -> None:
        """Teleport the joints to `q` (n,) at rest and hold there (tests, scripted set-ups)."""
        q = np.array(q, dtype=np.float64)
        if q.shape != (len(self._qadr),) or not np.all(np.isfinite(q)):
            raise ValueError(f'q must be finite with shape ({len(self._qadr)},), got {q}')
        self.data.qpos[self._qadr] = q
        self.data.qvel[self._dadr] = 0.0
        self.set_joint_command(q)
        mujoco.mj_forward(self.model, self.data)

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
        grip_step = self.spec.gripper.speed_max_m_s / 2 * m.opt.timestep
        tau = self._effort
        for _ in range(int(n)):
            mujoco.mj_step1(m, d)  # kinematics, bias forces for the current state
            tau = tau_ff + kp * (q_des - d.qpos[self._qadr]) + kd * (dq_des - d.qvel[self._dadr])
            if self._compensate:
                tau = tau + d.qfrc_bias[self._dadr]
            tau = np.clip(tau, -self._effort_max, self._effort_max)
            d.ctrl[self._act] = tau
            if self._has_gripper:
                ctrl = d.ctrl[self._grip_act]
                d.ctrl[self._grip_act] = ctrl + np.clip(self._grip_goal - ctrl, -grip_step,
                                                        grip_step)
            mujoco.mj_step2(m, d)
        self._effort = tau
        # Poses of the new state for tcp_pose, success and rendering (mj_step leaves them one
        # step behind).
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_camlight(m, d)

    # -- observations --------------------------------------------------------------------------

    def render(self, camera: str) -> np.ndarray:
        """(image_height, image_width, 3) uint8 RGB image of `camera`."""
        self._check_camera(camera)
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
        return self.task.state(self.data)

    def success(self) -> bool:
        return bool(self.task.success(self.data))

    def tcp_pose(self, link: str | None = None) -> np.ndarray:
        """(4, 4) pose of `link` (default: the task's tip link) in the robot base frame (m)."""
        link = link or self.task.tip_link
        if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, link) < 0:
            raise ValueError(f'no link {link!r} in the {self.spec.name} scene')
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
