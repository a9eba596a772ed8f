"""Sim tasks: what they add to the scene, how a seed randomises them, and when they succeed.

- `franka/reach` (franka_fr3): a target sphere drawn in a box where hand-down IK succeeds;
  success when `fr3_hand_tcp` is within 2 cm of it.
- `franka/push` (franka_fr3): a 5 cm cube's start, a push direction and a distance of 0.10-0.20 m
  (goal = start + distance * direction, both in the push box, so a straight push works);
  success when the cube centre is within 3 cm of the goal centre in the table plane, on the table.
- `g1/reach` (unitree_g1): the side (left/right) is drawn from the seed, then a target in front
  of that shoulder; success when `<side>_rubber_hand` is within 3 cm of it.
  `g1/reach_left` and `g1/reach_right` fix the side.

All positions are in the robot base frame (the scene's world frame; the robot is mounted at the
origin), metres. Targets and goals are visible markers without collision (mocap bodies, moved
without recompiling). Sampling regions are verified by IK in test/sim/test_scene.py.
"""

from __future__ import annotations

import abc
import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vidplan_ros.sim.render import mujoco
from vidplan_ros.sim.scene import SCENE_CONAFFINITY, SCENE_CONTYPE, RobotScene

TARGET_RGBA = (0.9, 0.15, 0.1, 1.0)
GOAL_RGBA = (0.15, 0.75, 0.2, 1.0)
CUBE_RGBA = (0.15, 0.35, 0.85, 1.0)
MIN_START_DISTANCE_M = 0.08   # a reach target is never this close to the tip at reset

# Franka reach: hand-down IK succeeds in the whole box (>= 0.12 rad from every joint limit).
FRANKA_REACH_BOX_M = ((0.30, -0.25, 0.04), (0.62, 0.25, 0.35))
# Franka push: start and goal cube centres in this table-plane box, push 0.10-0.20 m.
FRANKA_PUSH_BOX_M = ((0.38, -0.20), (0.62, 0.20))
FRANKA_PUSH_DISTANCE_M = (0.10, 0.20)
CUBE_HALF_SIZE_M = 0.025
CUBE_MASS_KG = 0.1
# G1 reach: a box in front of the shoulder, cut to a ball of this radius around the shoulder
# (the arm reaches ~0.42 m; IK succeeds everywhere inside 0.40 m).
G1_REACH_BOX_M = ((0.18, 0.0, 0.0), (0.38, 0.30, 0.25))   # y mirrored for the right side
G1_REACH_RADIUS_M = 0.36
G1_SHOULDER_M = (0.0, 0.1002, 0.2918)                        # left shoulder pitch, q = 0


@dataclass(frozen=True)
class ReachState:
    """A reach task now. Positions (3,) in the robot base frame, metres."""

    target_pos_m: np.ndarray
    tip_link: str                 # the link that must reach the target
    tip_pos_m: np.ndarray
    tolerance_m: float
    side: str = ''                # 'left' | 'right' for the G1, '' for the Franka

    @property
    def distance_m(self) -> float:
        return float(np.linalg.norm(self.tip_pos_m - self.target_pos_m))


@dataclass(frozen=True)
class PushState:
    """The push task now. Positions in the robot base frame, metres; directions unit (3,)."""

    cube_pos_m: np.ndarray        # (3,) cube centre
    cube_quat_wxyz: np.ndarray    # (4,)
    goal_pos_m: np.ndarray        # (3,) goal centre on the table top
    start_pos_m: np.ndarray       # (3,) cube centre at reset
    push_dir: np.ndarray          # (3,) unit, start -> goal, horizontal
    cube_half_size_m: float
    tip_link: str
    tip_pos_m: np.ndarray
    tolerance_m: float

    @property
    def distance_m(self) -> float:
        """Cube centre to goal centre in the table plane."""
        return float(np.linalg.norm((self.cube_pos_m - self.goal_pos_m)[:2]))


TaskState = ReachState | PushState

# The task's ground truth as a flat vector (`task_vector`), recorded beside the cameras as a
# training label: what the views must show for the task to be done. A cube looks the same
# every quarter turn, so its yaw goes in as sin / cos of 4 yaw.
PUSH_STATE_NAMES = ('cube_x_m', 'cube_y_m', 'cube_sin_4yaw', 'cube_cos_4yaw', 'goal_x_m',
                    'goal_y_m')
REACH_STATE_NAMES = ('target_x_m', 'target_y_m', 'target_z_m')


def task_vector(state: TaskState) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, values) of the task's ground truth (robot base frame, m)."""
    if isinstance(state, PushState):
        w, x, y, z = np.asarray(state.cube_quat_wxyz, dtype=float)
        yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        values = [*state.cube_pos_m[:2], np.sin(4 * yaw), np.cos(4 * yaw), *state.goal_pos_m[:2]]
        return PUSH_STATE_NAMES, np.array(values, dtype=float)
    return REACH_STATE_NAMES, np.asarray(state.target_pos_m, dtype=float).copy()


class Task(abc.ABC):
    """One task of one robot; `add_to_scene` before compiling, `bind` after."""

    name: str = ''
    robot: str = ''
    tolerance_m: float = 0.0
    # Gripper opening at reset (m; None = fully open). The Franka tasks run with closed
    # fingers, as their experts do: the learned stack commands the arm only, so an episode
    # must start with the fingers the models were trained on (and a closed pair is the pusher:
    # open, the 5 cm cube slides between the 8 cm fingers).
    gripper_width_m: float | None = None

    def __init__(self) -> None:
        self._table_z = 0.0

    @property
    @abc.abstractmethod
    def tip_link(self) -> str:
        """The link (body) that does the task."""

    def add_to_scene(self, spec: mujoco.MjSpec, scene: RobotScene) -> None:
        """Add the task's objects and markers to an uncompiled scene."""
        self._table_z = scene.table_top_z_m
        self._add(spec)

    @abc.abstractmethod
    def _add(self, spec: mujoco.MjSpec) -> None: ...

    def bind(self, model: mujoco.MjModel) -> None:
        """Look up ids in the compiled model."""
        self._model = model

    def copy_state_from(self, other: Task) -> None:
        """Take `other`'s sampled episode (target, goal, side: what `reset` drew and keeps
        outside MjData), keeping this task's own compiled model."""
        for key, value in vars(other).items():
            if key != '_model':
                setattr(self, key, copy.deepcopy(value))

    @abc.abstractmethod
    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Sample the task from `rng` and place objects and markers (robot already reset)."""

    def nudge_object(self, data: mujoco.MjData, offset_xy_m: np.ndarray, dyaw_rad: float
                     ) -> bool:
        """Move the task's object by a horizontal offset (2,) and a turn about z (an external
        push); False where there is no object or it would end inside the robot (unchanged)."""
        return False

    @abc.abstractmethod
    def state(self, data: mujoco.MjData) -> TaskState: ...

    def success(self, data: mujoco.MjData) -> bool:
        return self.state(data).distance_m <= self.tolerance_m

    def _tip_pos(self, data: mujoco.MjData) -> np.ndarray:
        return data.body(self.tip_link).xpos.copy()


def _add_marker(spec: mujoco.MjSpec, name: str, geom_type: mujoco.mjtGeom,
                size: list[float], rgba: tuple[float, ...]) -> None:
    body = spec.worldbody.add_body(name=name, mocap=True)
    body.add_geom(name=f'{name}_marker', type=geom_type, size=size, rgba=list(rgba),
                  contype=0, conaffinity=0, density=0.0)


class ReachTask(Task):
    """Bring the tip link within `tolerance_m` of a visible target sphere.

    The sphere is drawn with radius `marker_radius_m` (default: the tolerance): the models see
    64-pixel frames, where a 2 cm sphere a metre from the camera is one or two pixels that the
    autoencoder averages away, so the planner would not know where to go.
    """

    side = ''
    marker_radius_m = 0.0      # 0: tolerance_m

    def __init__(self) -> None:
        super().__init__()
        self._target = np.zeros(3)

    def _add(self, spec: mujoco.MjSpec) -> None:
        radius = self.marker_radius_m or self.tolerance_m
        _add_marker(spec, 'target', mujoco.mjtGeom.mjGEOM_SPHERE, [radius, 0, 0], TARGET_RGBA)

    @abc.abstractmethod
    def _sample_target(self, rng: np.random.Generator) -> np.ndarray: ...

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        self._pick_side(rng)
        mujoco.mj_kinematics(self._model, data)
        tip = self._tip_pos(data)
        while True:
            target = self._sample_target(rng)
            if np.linalg.norm(target - tip) >= MIN_START_DISTANCE_M:
                break
        self.set_target(data, target)

    def _pick_side(self, rng: np.random.Generator) -> None:
        """Tasks with a choice of arm draw it first."""

    def set_target(self, data: mujoco.MjData, target_pos_m: np.ndarray) -> None:
        """Move the target (3,) (base frame, m); for tests and scripted scenarios."""
        self._target = np.asarray(target_pos_m, dtype=np.float64).copy()
        data.mocap_pos[self._model.body('target').mocapid[0]] = self._target

    def state(self, data: mujoco.MjData) -> ReachState:
        return ReachState(self._target.copy(), self.tip_link, self._tip_pos(data),
                          self.tolerance_m, self.side)


class FrankaReach(ReachTask):
    name, robot, tolerance_m = 'franka/reach', 'franka_fr3', 0.02
    gripper_width_m = 0.0
    # 5 cm, not the 2 cm tolerance: models trained on the 2 cm sphere reached 0/4 closed-loop
    # (the autoencoder averaged it away); retrained on the 5 cm one, 3/6 (models/franka_reach)
    marker_radius_m = 0.05

    @property
    def tip_link(self) -> str:
        return 'fr3_hand_tcp'

    def _sample_target(self, rng: np.random.Generator) -> np.ndarray:
        lo, hi = FRANKA_REACH_BOX_M
        return rng.uniform(lo, hi) + np.array([0.0, 0.0, self._table_z])


class G1Reach(ReachTask):
    """G1 reach with one hand; `side=None` draws the side from the seed."""

    robot, tolerance_m = 'unitree_g1', 0.03

    def __init__(self, side: str | None = None) -> None:
        super().__init__()
        if side not in (None, 'left', 'right'):
            raise ValueError(f"side must be None, 'left' or 'right', got {side!r}")
        self.fixed_side = side
        self.side = side or 'left'
        self.name = 'g1/reach' if side is None else f'g1/reach_{side}'

    @property
    def tip_link(self) -> str:
        return f'{self.side}_rubber_hand'

    def _pick_side(self, rng: np.random.Generator) -> None:
        self.side = self.fixed_side or ('left' if rng.random() < 0.5 else 'right')

    def _sample_target(self, rng: np.random.Generator) -> np.ndarray:
        sign = 1.0 if self.side == 'left' else -1.0
        flip = np.array([1.0, sign, 1.0])
        shoulder = np.array(G1_SHOULDER_M) * flip
        lo, hi = G1_REACH_BOX_M
        while True:
            point = rng.uniform(lo, hi) * flip
            if np.linalg.norm(point - shoulder) <= G1_REACH_RADIUS_M:
                return point


class FrankaPush(Task):
    """Push a cube along the table into a goal disc (radius = tolerance)."""

    name, robot, tolerance_m = 'franka/push', 'franka_fr3', 0.03
    gripper_width_m = 0.0

    def __init__(self) -> None:
        super().__init__()
        self._goal = np.zeros(3)
        self._start = np.zeros(3)
        self._dir = np.array([1.0, 0.0, 0.0])

    @property
    def tip_link(self) -> str:
        return 'fr3_hand_tcp'

    def _add(self, spec: mujoco.MjSpec) -> None:
        half = CUBE_HALF_SIZE_M
        cube = spec.worldbody.add_body(name='cube', pos=[0.5, 0.0, self._table_z + half])
        cube.add_freejoint(name='cube_joint')
        cube.add_geom(name='cube', type=mujoco.mjtGeom.mjGEOM_BOX, size=[half] * 3,
                      mass=CUBE_MASS_KG, rgba=list(CUBE_RGBA), contype=SCENE_CONTYPE,
                      conaffinity=SCENE_CONAFFINITY, friction=[0.8, 0.005, 0.0001])
        # A thin disc 1 mm above the table, radius = the success tolerance.
        _add_marker(spec, 'goal', mujoco.mjtGeom.mjGEOM_CYLINDER,
                    [self.tolerance_m, 0.001, 0], GOAL_RGBA)

    def reset(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        (x0, y0), (x1, y1) = FRANKA_PUSH_BOX_M
        while True:
            start = rng.uniform((x0, y0), (x1, y1))
            angle = rng.uniform(-np.pi, np.pi)
            direction = np.array([np.cos(angle), np.sin(angle)])
            goal = start + rng.uniform(*FRANKA_PUSH_DISTANCE_M) * direction
            if x0 <= goal[0] <= x1 and y0 <= goal[1] <= y1:
                break
        z = self._table_z + CUBE_HALF_SIZE_M
        self._start = np.array([start[0], start[1], z])
        self._dir = np.array([direction[0], direction[1], 0.0])
        self._goal = np.array([goal[0], goal[1], self._table_z])
        self.set_cube_pose(data, self._start, yaw_rad=rng.uniform(-np.pi / 4, np.pi / 4))
        data.mocap_pos[self._model.body('goal').mocapid[0]] = self._goal + [0, 0, 0.001]

    def set_cube_pose(self, data: mujoco.MjData, pos_m: np.ndarray, yaw_rad: float = 0.0
                      ) -> None:
        """Place the cube (centre (3,), base frame) at rest; for reset, tests and scenarios."""
        joint = self._model.joint('cube_joint')
        qpos = np.concatenate([np.asarray(pos_m, float),
                               [np.cos(yaw_rad / 2), 0.0, 0.0, np.sin(yaw_rad / 2)]])
        data.qpos[joint.qposadr[0]:joint.qposadr[0] + 7] = qpos
        data.qvel[joint.dofadr[0]:joint.dofadr[0] + 6] = 0.0

    def nudge_object(self, data: mujoco.MjData, offset_xy_m: np.ndarray, dyaw_rad: float
                     ) -> bool:
        cube = data.body('cube')
        w, _, _, z = cube.xquat
        yaw = 2.0 * float(np.arctan2(z, w))   # the cube stays flat on the table
        before = (data.qpos.copy(), data.qvel.copy())
        pos = cube.xpos.copy()
        pos[:2] += np.asarray(offset_xy_m, float)
        pos[2] = self._table_z + CUBE_HALF_SIZE_M
        self.set_cube_pose(data, pos, yaw + float(dyaw_rad))
        mujoco.mj_forward(self._model, data)
        geom = self._model.geom('cube').id
        table = {self._model.geom(n).id for n in ('table_top', 'floor')}
        for c in data.contact[:data.ncon]:
            pair = {int(c.geom1), int(c.geom2)}
            if geom in pair and not (pair - {geom}) <= table and c.dist < 0.0:
                data.qpos[:], data.qvel[:] = before
                mujoco.mj_forward(self._model, data)
                return False
        return True

    def state(self, data: mujoco.MjData) -> PushState:
        cube = data.body('cube')
        return PushState(cube.xpos.copy(), cube.xquat.copy(), self._goal.copy(),
                         self._start.copy(), self._dir.copy(), CUBE_HALF_SIZE_M,
                         self.tip_link, self._tip_pos(data), self.tolerance_m)

    def success(self, data: mujoco.MjData) -> bool:
        s = self.state(data)
        on_table = abs(s.cube_pos_m[2] - (self._table_z + CUBE_HALF_SIZE_M)) < 0.01
        return on_table and s.distance_m <= self.tolerance_m


TASKS: dict[str, Callable[[], Task]] = {
    'franka/reach': FrankaReach,
    'franka/push': FrankaPush,
    'g1/reach': G1Reach,
    'g1/reach_left': functools.partial(G1Reach, 'left'),
    'g1/reach_right': functools.partial(G1Reach, 'right'),
}


def make_task(name: str) -> Task:
    """A fresh task object by name (see the module table)."""
    if name not in TASKS:
        raise ValueError(f'unknown sim task {name!r}; tasks: {sorted(TASKS)}')
    return TASKS[name]()


def task_robot(name: str) -> str:
    """The robot spec name the task is for."""
    return make_task(name).robot
