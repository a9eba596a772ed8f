"""Batched, differentiable forward kinematics, geometric Jacobians and inverse kinematics (torch).

ROS-free. A :class:`KinematicChain` is built from a URDF (parsed by
:mod:`vidplan_ros.core.urdf_model`) for a (root link, tip link) pair. Its ``joint_names`` are the
joints that drive the path, in order from the root; a mimic joint on the path is driven by its
master, so the master's name appears instead. Methods take ``q`` of shape ``(B, n)`` (rad for
revolute, m for prismatic joints) on any device and floating dtype, return tensors on the same
device and dtype, and are differentiable.

Poses are 4x4 homogeneous transforms of a frame *in the root frame* (m). Jacobians are geometric,
``(B, 6, n)``: rows 0-2 the tip's linear velocity (m/s per unit joint speed), rows 3-5 its
angular velocity (rad/s), both in the root frame, computed analytically from the joint axes.

Inverse kinematics lives in :mod:`vidplan_ros.core.kinematics_ik` (re-exported here):
:meth:`KinematicChain.ik` for the torch solver, or :func:`make_ik_solver` to get cuRobo when it is
available and torch otherwise.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from vidplan_ros.core.urdf_model import UrdfModel, find_urdf, parse_urdf

if TYPE_CHECKING:  # pragma: no cover
    from vidplan_ros.core.kinematics_ik import IKConfig, IKResult

FR3_URDF = 'franka_fr3.urdf'
G1_UPPER_URDF = 'unitree_g1_upper.urdf'


# ---------------------------------------------------------------------------------------------
# Rotation helpers
# ---------------------------------------------------------------------------------------------

def rpy_matrix(rpy: tuple[float, float, float]) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw to a rotation matrix: ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), \
        math.cos(y), math.sin(y)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def origin_matrix(xyz: tuple[float, float, float], rpy: tuple[float, float, float]) -> np.ndarray:
    """4x4 transform of a URDF ``<origin xyz rpy>``."""
    out = np.eye(4)
    out[:3, :3] = rpy_matrix(rpy)
    out[:3, 3] = xyz
    return out


def rotation_log(rot: torch.Tensor) -> torch.Tensor:
    """Rotation vector (axis * angle, rad) of rotation matrices ``(..., 3, 3)`` -> ``(..., 3)``.

    Accurate for all angles in [0, pi], including near 0 and near pi.
    """
    v = 0.5 * torch.stack([rot[..., 2, 1] - rot[..., 1, 2], rot[..., 0, 2] - rot[..., 2, 0],
                           rot[..., 1, 0] - rot[..., 0, 1]], dim=-1)  # sin(angle) * axis
    s = v.norm(dim=-1)
    c = 0.5 * (rot[..., 0, 0] + rot[..., 1, 1] + rot[..., 2, 2] - 1.0)
    angle = torch.atan2(s, c)
    scale = torch.where(s > 1e-7, angle / s.clamp_min(1e-12), 1.0 + angle * angle / 6.0)
    small = v * scale.unsqueeze(-1)
    # Near pi, sin(angle) ~ 0 and v loses the axis: read it from the symmetric part
    # (R + R^T)/2 - cos(angle) I = (1 - cos(angle)) a a^T, sign chosen to agree with v.
    sym = 0.5 * (rot + rot.transpose(-1, -2))
    diag = torch.diagonal(sym, dim1=-2, dim2=-1) - c.unsqueeze(-1)
    k = diag.argmax(dim=-1, keepdim=True)
    column = torch.gather(sym, -1, k.unsqueeze(-2).expand(*sym.shape[:-1], 1)).squeeze(-1)
    column = column - c.unsqueeze(-1) * torch.nn.functional.one_hot(k.squeeze(-1), 3).to(rot)
    axis = column / column.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sign = torch.where((axis * v).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(rot)
    large = axis * sign * angle.unsqueeze(-1)
    return torch.where((c < -0.9).unsqueeze(-1), large, small)


def pose_error(pose: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Error from ``pose`` to ``target`` (both ``(B, 4, 4)``), in the common (root) frame.

    Returns:
        (position error ``p_target - p`` in m, ``(B, 3)``; rotation vector of
        ``R_target @ R^T`` in rad, ``(B, 3)``). Both are what a root-frame geometric Jacobian
        step ``J dq`` should produce to reach the target.
    """
    dp = target[..., :3, 3] - pose[..., :3, 3]
    dr = rotation_log(target[..., :3, :3] @ pose[..., :3, :3].transpose(-1, -2))
    return dp, dr


def homogeneous(rot: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Stack rotations ``(..., 3, 3)`` and positions ``(..., 3)`` into ``(..., 4, 4)``."""
    top = torch.cat([rot, pos.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


# ---------------------------------------------------------------------------------------------
# Kinematic chain
# ---------------------------------------------------------------------------------------------

class _Step(NamedTuple):
    joint: str
    kind: str             # 'fixed', 'revolute' (also continuous) or 'prismatic'
    origin: np.ndarray    # 4x4, parent link -> joint frame
    axis: np.ndarray      # unit axis in the joint frame
    column: int           # index into joint_names of the driving joint (-1 when fixed)
    multiplier: float     # theta = multiplier * q[column] + offset
    offset: float
    child: str


class _Consts(NamedTuple):
    pre_rot: torch.Tensor    # (m, 3, 3): fixed transform before each movable joint
    pre_pos: torch.Tensor    # (m, 3)
    axes: torch.Tensor       # (m, 3)
    skew: torch.Tensor       # (m, 3, 3): [axis]x
    skew2: torch.Tensor      # (m, 3, 3): [axis]x @ [axis]x
    post_rot: torch.Tensor   # (3, 3): fixed transform after the last movable joint
    post_pos: torch.Tensor   # (3,)
    columns: torch.Tensor    # (m,) long
    multiplier: torch.Tensor  # (m,)
    offset: torch.Tensor     # (m,)
    to_drivers: torch.Tensor | None  # (m, n) or None when joints and drivers are 1:1
    origins: tuple[torch.Tensor, ...]   # per step 4x4 (for fk_links)


def _skew(a: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])


class KinematicChain:
    """Forward kinematics and Jacobians of the path ``root_link -> tip_link`` of a URDF.

    Attributes:
        joint_names: the n driving joints, root to tip.
        lower, upper: joint position limits ``(n,)`` float64 (``-inf``/``inf`` if continuous).
        velocity_limits, effort_limits: ``(n,)`` float64 from the URDF.
        link_names: links on the path, root first, tip last.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> KinematicChain:
        return self     # a fixed description of the robot: copies of its users share it

    def __init__(self, model: UrdfModel, root_link: str, tip_link: str) -> None:
        self.model = model
        self.root_link = root_link
        self.tip_link = tip_link
        self.urdf_path: Path | None = model.source
        path = model.path(root_link, tip_link)
        names: list[str] = []
        steps: list[_Step] = []
        for joint in path:
            origin = origin_matrix(joint.origin_xyz, joint.origin_rpy)
            if not joint.is_movable:
                steps.append(_Step(joint.name, 'fixed', origin, np.zeros(3), -1, 0.0, 0.0,
                                   joint.child))
                continue
            driver, mult, off = joint.name, 1.0, 0.0
            if joint.mimic is not None:
                driver, mult, off = joint.mimic.joint, joint.mimic.multiplier, joint.mimic.offset
            if driver not in names:
                names.append(driver)
            kind = 'prismatic' if joint.type == 'prismatic' else 'revolute'
            steps.append(_Step(joint.name, kind, origin, np.asarray(joint.axis, float),
                               names.index(driver), mult, off, joint.child))
        self.joint_names: tuple[str, ...] = tuple(names)
        self.link_names: tuple[str, ...] = (root_link,) + tuple(s.child for s in steps)
        self._steps = tuple(steps)
        limits = [model.joints[name].limits for name in names]
        self.lower = torch.tensor([lim.lower for lim in limits], dtype=torch.float64)
        self.upper = torch.tensor([lim.upper for lim in limits], dtype=torch.float64)
        self.velocity_limits = torch.tensor([lim.velocity for lim in limits], dtype=torch.float64)
        self.effort_limits = torch.tensor([lim.effort for lim in limits], dtype=torch.float64)
        self._fold()
        self._cache: dict[tuple[torch.dtype, torch.device], _Consts] = {}

    @classmethod
    def from_urdf(cls, urdf: str | Path, root_link: str, tip_link: str) -> KinematicChain:
        """Build from a URDF path (or URDF text)."""
        is_text = isinstance(urdf, str) and urdf.lstrip().startswith('<')
        return cls(parse_urdf(urdf) if is_text else _load_model(urdf), root_link, tip_link)

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def __repr__(self) -> str:
        return (f'KinematicChain({self.model.name!r}: {self.root_link} -> {self.tip_link}, '
                f'joints={list(self.joint_names)})')

    def _fold(self) -> None:
        """Merge fixed transforms into the next movable joint's origin (or the tail)."""
        pre, movable = np.eye(4), []
        for step in self._steps:
            pre = pre @ step.origin
            if step.kind != 'fixed':
                movable.append((pre, step))
                pre = np.eye(4)
        self._movable = movable
        self._post = pre

    def _consts(self, dtype: torch.dtype, device: torch.device) -> _Consts:
        key = (dtype, device)
        if key not in self._cache:
            def t(x: object) -> torch.Tensor:
                return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(device=device,
                                                                              dtype=dtype)
            m, n = len(self._movable), self.dof
            pres = [p for p, _ in self._movable] or [np.eye(4)]
            axes = [s.axis for _, s in self._movable] or [np.zeros(3)]
            columns = [s.column for _, s in self._movable]
            mults = [s.multiplier for _, s in self._movable]
            to_drivers = None
            if columns != list(range(n)):  # a mimic pair on the path shares a driver
                mapping = np.zeros((m, n))
                mapping[np.arange(m), columns] = 1.0
                to_drivers = t(mapping)
            self._cache[key] = _Consts(
                pre_rot=t([p[:3, :3] for p in pres]), pre_pos=t([p[:3, 3] for p in pres]),
                axes=t(axes), skew=t([_skew(a) for a in axes]),
                skew2=t([_skew(a) @ _skew(a) for a in axes]),
                post_rot=t(self._post[:3, :3]), post_pos=t(self._post[:3, 3]),
                columns=torch.tensor(columns, dtype=torch.long, device=device),
                multiplier=t(mults), offset=t([s.offset for _, s in self._movable]),
                to_drivers=to_drivers, origins=tuple(t(s.origin) for s in self._steps))
        return self._cache[key]

    def _check_q(self, q: torch.Tensor) -> None:
        if not isinstance(q, torch.Tensor) or q.dim() != 2 or q.shape[1] != self.dof:
            shape = tuple(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
            raise ValueError(f'q must be a tensor of shape (B, {self.dof}) for joints '
                             f'{list(self.joint_names)}; got {shape}')
        if not q.is_floating_point():
            raise ValueError(f'q must be a floating-point tensor; got {q.dtype}')

    def _joint_motion(self, c: _Consts, i: int, theta: torch.Tensor) -> torch.Tensor:
        """Rotation of revolute joint i by theta (B,) (Rodrigues): ``I + s K + (1 - c) K^2``."""
        s = torch.sin(theta)[:, None, None]
        co = torch.cos(theta)[:, None, None]
        eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
        return eye + s * c.skew[i] + (1.0 - co) * c.skew2[i]

    def _forward(self, q: torch.Tensor, jacobian: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Tip rotation (B,3,3), position (B,3) and optionally the Jacobian (B,6,n)."""
        self._check_q(q)
        c = self._consts(q.dtype, q.device)
        batch = q.shape[0]
        rot = torch.eye(3, dtype=q.dtype, device=q.device).expand(batch, 3, 3)
        pos = torch.zeros(batch, 3, dtype=q.dtype, device=q.device)
        theta = q[:, c.columns] * c.multiplier + c.offset if self._movable else q[:, :0]
        axes_w, origins_w = [], []
        for i, (_, step) in enumerate(self._movable):
            pos = pos + rot @ c.pre_pos[i]
            rot = rot @ c.pre_rot[i]
            axis_w = rot @ c.axes[i]
            axes_w.append(axis_w)
            origins_w.append(pos)
            if step.kind == 'revolute':
                rot = rot @ self._joint_motion(c, i, theta[:, i])
            else:
                pos = pos + axis_w * theta[:, i:i + 1]
        pos = pos + rot @ c.post_pos
        rot = rot @ c.post_rot
        if not jacobian:
            return rot, pos, None
        if not self._movable:
            return rot, pos, q.new_zeros(batch, 6, 0)
        cols = []
        for i, (_, step) in enumerate(self._movable):
            if step.kind == 'revolute':
                cols.append(torch.cat([torch.cross(axes_w[i], pos - origins_w[i], dim=-1),
                                       axes_w[i]], dim=-1))
            else:
                cols.append(torch.cat([axes_w[i], torch.zeros_like(axes_w[i])], dim=-1))
        jac = torch.stack(cols, dim=-1) * c.multiplier
        if c.to_drivers is not None:
            jac = jac @ c.to_drivers
        return rot, pos, jac

    def fk(self, q: torch.Tensor) -> torch.Tensor:
        """Tip pose in the root frame, ``(B, 4, 4)``."""
        rot, pos, _ = self._forward(q, jacobian=False)
        return homogeneous(rot, pos)

    def jacobian(self, q: torch.Tensor) -> torch.Tensor:
        """Geometric Jacobian ``(B, 6, n)`` of the tip: [linear; angular], root frame."""
        return self._forward(q, jacobian=True)[2]  # type: ignore[return-value]

    def fk_and_jacobian(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fk(q), jacobian(q))`` from one pass."""
        rot, pos, jac = self._forward(q, jacobian=True)
        return homogeneous(rot, pos), jac  # type: ignore[return-value]

    def fk_links(self, q: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pose ``(B, 4, 4)`` in the root frame of every link on the path (root included)."""
        self._check_q(q)
        c = self._consts(q.dtype, q.device)
        pose = torch.eye(4, dtype=q.dtype, device=q.device).expand(q.shape[0], 4, 4)
        out = {self.root_link: pose}
        for k, step in enumerate(self._steps):
            pose = pose @ c.origins[k]
            if step.kind != 'fixed':
                theta = q[:, step.column] * step.multiplier + step.offset
                motion = torch.eye(4, dtype=q.dtype, device=q.device).repeat(q.shape[0], 1, 1)
                axis = torch.as_tensor(step.axis, dtype=q.dtype, device=q.device)
                if step.kind == 'revolute':
                    s, co = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
                    kx = torch.as_tensor(_skew(step.axis), dtype=q.dtype, device=q.device)
                    motion[:, :3, :3] = torch.eye(3, dtype=q.dtype, device=q.device) + s * kx \
                        + (1.0 - co) * (kx @ kx)
                else:
                    motion[:, :3, 3] = axis * theta[:, None]
                pose = pose @ motion
            out[step.child] = pose
        return out

    # -- joint-space helpers --------------------------------------------------------------------

    def limits(self, dtype: torch.dtype = torch.float64, device: str | torch.device = 'cpu'
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lower, upper)`` position limits ``(n,)`` on ``device`` in ``dtype``."""
        return self.lower.to(device=device, dtype=dtype), self.upper.to(device=device, dtype=dtype)

    def clamp(self, q: torch.Tensor) -> torch.Tensor:
        """``q`` clamped into the position limits (differentiable where inside)."""
        lo, hi = self.limits(q.dtype, q.device)
        return torch.maximum(torch.minimum(q, hi), lo)

    def sample(self, batch: int, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64, device: str | torch.device = 'cpu'
               ) -> torch.Tensor:
        """Uniform random configurations ``(batch, n)`` within the limits.

        Continuous joints are drawn from [-pi, pi]. ``generator`` must be a CPU generator.
        """
        lo = torch.where(torch.isfinite(self.lower), self.lower, -math.pi)
        hi = torch.where(torch.isfinite(self.upper), self.upper, math.pi)
        u = torch.rand(batch, self.dof, generator=generator, dtype=torch.float64)
        return (lo + u * (hi - lo)).to(device=device, dtype=dtype)

    def neutral(self, dtype: torch.dtype = torch.float64, device: str | torch.device = 'cpu'
                ) -> torch.Tensor:
        """Mid-range configuration ``(n,)`` (0 for continuous joints)."""
        mid = torch.where(torch.isfinite(self.lower) & torch.isfinite(self.upper),
                          0.5 * (self.lower + self.upper), 0.0)
        return mid.to(device=device, dtype=dtype)

    def ik(self, target: torch.Tensor, q_init: torch.Tensor | None = None,
           config: IKConfig | None = None) -> IKResult:
        """Batched IK with the torch solver; see :class:`kinematics_ik.TorchIKSolver`."""
        from vidplan_ros.core.kinematics_ik import TorchIKSolver
        return TorchIKSolver(self, config).solve(target, q_init)


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime_ns: int) -> UrdfModel:
    return parse_urdf(Path(path))


def _load_model(urdf: str | Path) -> UrdfModel:
    path = Path(urdf).resolve()
    return _load_cached(str(path), path.stat().st_mtime_ns)


def franka_fr3_chain(tip: str = 'fr3_hand_tcp', root: str = 'fr3_link0') -> KinematicChain:
    """FR3 arm from ``urdf/franka_fr3.urdf``.

    Args:
        tip: e.g. ``fr3_hand_tcp`` (default), ``fr3_hand``, ``fr3_link8`` (flange).
        root: ``fr3_link0`` (default, the robot spec's base link) or the world link ``base``
            (the same frame).
    """
    return KinematicChain(_load_model(find_urdf(FR3_URDF)), root, tip)


def g1_arm_chain(side: str = 'left', tip: str | None = None,
                 include_waist: bool = False) -> KinematicChain:
    """A G1 arm from ``urdf/unitree_g1_upper.urdf``.

    Args:
        side: ``'left'`` or ``'right'``.
        tip: tip link; default ``<side>_rubber_hand`` (the palm frame).
        include_waist: root the chain at ``pelvis`` so waist yaw/roll/pitch are part of it
            (10 joints); otherwise the root is ``torso_link`` (7 arm joints).
    """
    if side not in ('left', 'right'):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    root = 'pelvis' if include_waist else 'torso_link'
    return KinematicChain(_load_model(find_urdf(G1_UPPER_URDF)), root,
                          tip or f'{side}_rubber_hand')


_IK_NAMES = ('IKConfig', 'IKResult', 'IKSolver', 'TorchIKSolver', 'CuRoboIKSolver',
             'make_ik_solver')


def __getattr__(name: str) -> object:
    """Lazy re-export of the IK API (kinematics_ik imports this module)."""
    if name in _IK_NAMES:
        from vidplan_ros.core import kinematics_ik
        return getattr(kinematics_ik, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
