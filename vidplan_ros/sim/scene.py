"""MuJoCo models of the sim scenes: a robot URDF attached into a workspace, plus task content.

A scene is `urdf/scenes/<name>.xml` (floor, table, lights, the frame `robot_mount`), the robot's
URDF (`urdf/<robot>.urdf`) attached at that frame with its own element names, and what the task
adds (objects, visible markers). This module adds the named cameras, the actuators and the
joint dynamics the URDF does not carry:

- one torque (motor) actuator per arm joint, named like the joint, limited to the spec's
  `effort_max_nm`: the env computes PD + compensation itself every physics step;
- Franka: one position actuator `gripper` on `fr3_finger_joint1` (0..0.04 m); the URDF mimic
  becomes an equality constraint that moves `fr3_finger_joint2` with it;
- armature (reflected motor inertia) and viscous damping per joint, which also keep an explicit
  PD stable at physics_dt_s = 0.002 with the small wrist inertias.

World frame = robot base frame (the robot is mounted at the origin). Collision bits: scene and
object geoms contype 1 / conaffinity 3; robot geoms contype 2 / conaffinity 1, so the robot
touches the table and objects but never itself (primitive links overlap at the joints).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from vidplan_ros.core.paths import urdf_dir
from vidplan_ros.core.robot_spec import RobotSpec, load_robot_spec
from vidplan_ros.sim.render import fast_visual, mujoco

SCENE_CONTYPE, SCENE_CONAFFINITY = 1, 3
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
GRIPPER_ACTUATOR = 'gripper'
GRIPPER_KP_N_M = 1000.0      # finger position gain: about 25 N squeezing a 5 cm cube shut
GRIPPER_KV_N_S_M = 40.0      # finger damping (implicit in the actuator), overdamped
GRIPPER_FORCE_MAX_N = 70.0   # Franka Hand continuous grasp force
FINGER_ARMATURE_KG = 0.05
ZNEAR_OF_EXTENT = 0.002      # near clip plane / model extent: the wrist camera sees the fingers
FINGER_DAMPING_N_S_M = 2.0


@dataclass(frozen=True)
class CameraMount:
    """A named pinhole camera on a body ('' = world), looking at a point or along given axes.

    `pos_m` and `look_at_m` are in the body's frame; `xyaxes` are the camera's image-right and
    image-up axes in that frame (MuJoCo cameras look along their -z).
    """

    name: str
    body: str
    pos_m: tuple[float, float, float]
    look_at_m: tuple[float, float, float] | None = None
    xyaxes: tuple[float, float, float, float, float, float] | None = None
    fovy_deg: float = 45.0


@dataclass(frozen=True)
class RobotScene:
    """How one robot's scene is built. Per-joint tuples follow the robot spec's joint order."""

    robot: str
    scene_xml: str
    table_top_z_m: float
    arm_armature: tuple[float, ...]
    arm_damping: tuple[float, ...]
    cameras: tuple[CameraMount, ...]


# FR3: armature and damping of the order MuJoCo Menagerie's identified FR3 model uses
# (0.195 kg m^2 for joints 1-4, 0.074 for 5-7; 0.21 N m s/rad).
_FRANKA = RobotScene(
    robot='franka_fr3',
    scene_xml='franka_table.xml',
    table_top_z_m=0.0,
    arm_armature=(0.195, 0.195, 0.195, 0.195, 0.074, 0.074, 0.074),
    arm_damping=(0.21,) * 7,
    cameras=(
        # Fixed workspace cameras framed on the task boxes (tasks.py): `top` looks straight down
        # on the table from 1 m (about 0.9 cm per pixel at 64 px: the 5 cm cube ~5 px), `front`
        # from across the table (about 0.8 cm per pixel at the workspace centre); the model
        # cards give the measured pixels per centimetre (vidplan_ros.sim.framing).
        CameraMount('top', '', (0.47, 0.0, 1.0), xyaxes=(0.0, -1.0, 0.0, 1.0, 0.0, 0.0),
                    fovy_deg=34.0),
        CameraMount('front', '', (1.1, 0.0, 0.6), look_at_m=(0.44, 0.0, 0.2), fovy_deg=48.0),
        CameraMount('side', '', (0.35, -1.15, 0.7), look_at_m=(0.35, 0.0, 0.28), fovy_deg=55.0),
        # On the hand, 6 cm off the TCP axis, looking along the TCP z axis tilted 20 degrees
        # toward it: the finger tips show at the bottom of the image, the grasp area beyond.
        CameraMount('wrist', 'fr3_hand', (0.06, 0.0, 0.03),
                    xyaxes=(0.0, 1.0, 0.0, 0.9397, 0.0, 0.3420), fovy_deg=65.0),
    ),
)

# G1: armature 0.01 kg m^2 and damping 0.05 N m s/rad on every joint, as unitree_mujoco's
# g1_29dof.xml sets them.
_G1 = RobotScene(
    robot='unitree_g1',
    scene_xml='g1_table.xml',
    table_top_z_m=-0.06,
    arm_armature=(0.01,) * 17,
    arm_damping=(0.05,) * 17,
    cameras=(
        # d435_link: x forward (pitched 0.83 rad down), z up -> image right = -y, up = +z.
        # fovy 72 deg: both arms' reach boxes in view (a D435's colour stream is 69 x 42 deg).
        CameraMount('head', 'd435_link', (0.0, 0.0, 0.0), xyaxes=(0, -1, 0, 0, 0, 1),
                    fovy_deg=72.0),
        # A fixed camera across the table, framed on the reach boxes (~0.9 px/cm at 64 px).
        CameraMount('front', '', (0.95, 0.0, 0.45), look_at_m=(0.28, 0.0, 0.2), fovy_deg=55.0),
    ),
)

ROBOT_SCENES: dict[str, RobotScene] = {s.robot: s for s in (_FRANKA, _G1)}


class SceneContent(Protocol):
    """Something that adds bodies to a scene spec before it is compiled (a task)."""

    def add_to_scene(self, spec: mujoco.MjSpec, scene: RobotScene) -> None: ...


def robot_scene(robot: str) -> RobotScene:
    """The scene description of `robot` ('franka_fr3' | 'unitree_g1')."""
    if robot not in ROBOT_SCENES:
        raise ValueError(f'no sim scene for robot {robot!r}; scenes exist for '
                         f'{sorted(ROBOT_SCENES)}')
    return ROBOT_SCENES[robot]


def camera_names(robot: str) -> tuple[str, ...]:
    """Names of the cameras of `robot`'s scene."""
    return tuple(c.name for c in robot_scene(robot).cameras)


def scene_path(robot: str) -> Path:
    return urdf_dir() / 'scenes' / robot_scene(robot).scene_xml


def look_at_quat(pos: np.ndarray, target: np.ndarray,
                 up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """(4,) wxyz quaternion of a MuJoCo camera at `pos` looking at `target` (image up ~ `up`)."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return _axes_quat(right, np.cross(right, forward))


def _axes_quat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float) / np.linalg.norm(x)
    y = np.asarray(y, float) - np.dot(y, x) * x
    y /= np.linalg.norm(y)
    mat = np.stack([x, y, np.cross(x, y)], axis=1)  # columns: camera axes in the parent frame
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


def build_spec(robot: str, content: SceneContent | None = None, *,
               physics_dt_s: float = 0.002, image_width: int = 256,
               image_height: int = 256) -> mujoco.MjSpec:
    """The uncompiled scene of `robot` with `content` (e.g. a task) added."""
    scene = robot_scene(robot)
    spec = load_robot_spec(robot)
    world = mujoco.MjSpec.from_file(str(scene_path(robot)))
    world.option.timestep = physics_dt_s
    world.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    fast_visual(world, image_width, image_height)
    world.visual.map.znear = ZNEAR_OF_EXTENT
    arm = mujoco.MjSpec.from_file(str(urdf_dir() / spec.urdf))
    _prepare_robot(arm, spec, scene)
    with _quiet_empty_prefix():
        world.attach(arm, frame=world.frame('robot_mount'), prefix='')
    for cam in scene.cameras:
        _add_camera(world, cam)
    _add_actuators(world, spec)
    if content is not None:
        content.add_to_scene(world, scene)
    return world


def build_model(robot: str, content: SceneContent | None = None, **kwargs: float
                ) -> mujoco.MjModel:
    """The compiled scene; keyword arguments as for `build_spec`."""
    return compile_spec(build_spec(robot, content, **kwargs))  # type: ignore[arg-type]


def compile_spec(spec: mujoco.MjSpec) -> mujoco.MjModel:
    """`spec.compile()` for a spec from `build_spec` (without its empty-prefix warning)."""
    with _quiet_empty_prefix():
        return spec.compile()


_EMPTY_PREFIX = 'Attaching a spec with an empty prefix'


@contextlib.contextmanager
def _quiet_empty_prefix() -> Iterator[None]:
    """Drop MuJoCo's warning that an empty attach prefix may break saving the XML: keeping the
    URDF's own names is the point, and these models are never saved. Other warnings pass."""
    previous = mujoco.get_mju_user_warning()
    others: list[str] = []

    def handler(message: str) -> None:
        if not message.startswith(_EMPTY_PREFIX):
            others.append(message)

    mujoco.set_mju_user_warning(handler)
    try:
        with warnings.catch_warnings():  # compile() repeats it as a Python warning
            warnings.filterwarnings('ignore', message=_EMPTY_PREFIX)
            yield
    finally:
        mujoco.set_mju_user_warning(previous)
        for message in others:
            if previous is not None:
                previous(message)
            else:
                warnings.warn(f'MuJoCo: {message}', RuntimeWarning, stacklevel=3)


def _prepare_robot(arm: mujoco.MjSpec, spec: RobotSpec, scene: RobotScene) -> None:
    for geom in arm.geoms:
        geom.contype, geom.conaffinity = ROBOT_CONTYPE, ROBOT_CONAFFINITY
    for name, armature, damping in zip(spec.joint_names, scene.arm_armature,
                                       scene.arm_damping):
        joint = arm.joint(name)
        if joint is None:
            raise ValueError(f'{spec.urdf} has no joint {name!r} of robot spec {spec.name!r}')
        joint.armature = armature
        joint.damping = [damping, 0.0, 0.0]
    for name in spec.gripper.joint_names:
        joint = arm.joint(name)
        joint.armature = FINGER_ARMATURE_KG
        joint.damping = [FINGER_DAMPING_N_S_M, 0.0, 0.0]


def _add_camera(world: mujoco.MjSpec, cam: CameraMount) -> None:
    parent = world.worldbody if not cam.body else world.body(cam.body)
    if parent is None:
        raise ValueError(f'camera {cam.name!r}: no body {cam.body!r} in the scene')
    if cam.look_at_m is not None:
        quat = look_at_quat(np.array(cam.pos_m), np.array(cam.look_at_m))
    elif cam.xyaxes is not None:
        quat = _axes_quat(np.array(cam.xyaxes[:3]), np.array(cam.xyaxes[3:]))
    else:
        raise ValueError(f'camera {cam.name!r}: give look_at_m or xyaxes')
    parent.add_camera(name=cam.name, pos=list(cam.pos_m), quat=list(quat), fovy=cam.fovy_deg)


def _add_actuators(world: mujoco.MjSpec, spec: RobotSpec) -> None:
    efforts = spec.effort_max_nm or (1e3,) * spec.num_joints
    for name, effort in zip(spec.joint_names, efforts):
        act = world.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [-effort, effort]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-effort, effort]
    if spec.gripper.width_max_m > 0:
        finger = spec.gripper.joint_names[0]
        act = world.add_actuator(name=GRIPPER_ACTUATOR, target=finger,
                                 trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=GRIPPER_KP_N_M, kv=GRIPPER_KV_N_S_M)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [0.0, spec.gripper.width_max_m / 2]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-GRIPPER_FORCE_MAX_N, GRIPPER_FORCE_MAX_N]


def warning_counts(data: mujoco.MjData) -> dict[str, int]:
    """MuJoCo warnings raised so far, {name: count}, only those that occurred."""
    return {mujoco.mjtWarning(i).name: int(data.warning[i].number)
            for i in range(len(data.warning)) if data.warning[i].number > 0}


class Appearance:
    """A compiled scene's nominal looks, restored or randomised per episode.

    Domain randomisation changes what does not define the task: light brightness and direction,
    the colours of the table, its legs and the floor, and each camera's pose by a few mm and a
    fraction of a degree. Task objects and markers keep their colours.
    """

    RANDOM_MATERIALS = ('table_mat', 'leg_mat', 'floor_mat')
    LIGHT_SCALE = (0.6, 1.3)          # diffuse brightness factor
    LIGHT_DIR_JITTER = 0.25           # added to each component of the unit direction
    COLOR_JITTER = 0.12               # per RGB channel
    CAMERA_POS_JITTER_M = 0.01
    CAMERA_ROT_JITTER_RAD = 0.02

    def __init__(self, model: mujoco.MjModel) -> None:
        self._light_diffuse = model.light_diffuse.copy()
        self._light_dir = model.light_dir.copy()
        self._mat_rgba = model.mat_rgba.copy()
        self._cam_pos = model.cam_pos.copy()
        self._cam_quat = model.cam_quat.copy()
        self._materials = [model.material(n).id for n in self.RANDOM_MATERIALS
                           if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MATERIAL, n) >= 0]

    def restore(self, model: mujoco.MjModel) -> None:
        model.light_diffuse[:] = self._light_diffuse
        model.light_dir[:] = self._light_dir
        model.mat_rgba[:] = self._mat_rgba
        model.cam_pos[:] = self._cam_pos
        model.cam_quat[:] = self._cam_quat

    def randomize(self, model: mujoco.MjModel, rng: np.random.Generator) -> None:
        self.restore(model)
        n_light, n_cam = len(self._light_diffuse), len(self._cam_pos)
        model.light_diffuse[:] = np.clip(
            self._light_diffuse * rng.uniform(*self.LIGHT_SCALE, size=(n_light, 1)), 0, 1)
        direction = self._light_dir + rng.uniform(-1, 1, (n_light, 3)) * self.LIGHT_DIR_JITTER
        direction[:, 2] = -np.abs(direction[:, 2]) - 0.2      # keep every light shining down
        model.light_dir[:] = direction / np.linalg.norm(direction, axis=1, keepdims=True)
        for mat in self._materials:
            rgb = self._mat_rgba[mat, :3] + rng.uniform(-1, 1, 3) * self.COLOR_JITTER
            model.mat_rgba[mat, :3] = np.clip(rgb, 0, 1)
        model.cam_pos[:] = self._cam_pos + rng.uniform(-1, 1, (n_cam, 3)) * \
            self.CAMERA_POS_JITTER_M
        for i in range(n_cam):
            rotvec = rng.uniform(-1, 1, 3) * self.CAMERA_ROT_JITTER_RAD
            delta = np.zeros(4)
            mujoco.mju_axisAngle2Quat(delta, rotvec / max(np.linalg.norm(rotvec), 1e-12),
                                      float(np.linalg.norm(rotvec)))
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, self._cam_quat[i], delta)
            model.cam_quat[i] = quat
