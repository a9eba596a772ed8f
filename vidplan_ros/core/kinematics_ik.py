"""Batched inverse kinematics: a torch Levenberg-Marquardt solver and a cuRobo adapter.

ROS-free. Targets are tip poses ``(B, 4, 4)`` in the chain's root frame (m); solutions are joint
positions ``(B, n)`` in ``chain.joint_names`` order. Use :func:`make_ik_solver` to get NVIDIA
cuRobo when ``import curobo`` works and a CUDA device is present, and the torch solver otherwise.

The torch solver runs ``num_seeds`` problems per target at once (seed 0 is ``q_init`` when given,
the others uniform in the joint limits), takes damped-least-squares steps
``dq = J^T (J J^T + lambda I)^-1 e`` with a per-problem damping lambda adapted Levenberg-Marquardt
style (a step is kept only if it lowers the error), clamps every step into the joint limits, and
restarts a seed from a fresh random configuration when it stops improving. Once every target has
a seed within tolerance it runs ``polish_iters`` more iterations and stops; per target it returns
the successful seed closest to ``q_init`` (or with the lowest error when there is no ``q_init``).
"""

from __future__ import annotations

import abc
import logging
import math
from dataclasses import dataclass

import torch

from vidplan_ros.core.config import require
from vidplan_ros.core.kinematics import KinematicChain, pose_error

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class IKConfig:
    """Settings of the IK solvers (the cuRobo adapter uses the seeds and tolerances)."""

    num_seeds: int = 16               # problems per target (seed 0 = q_init when given)
    max_iters: int = 200              # iteration budget shared by all seeds and restarts
    pos_tol_m: float = 1e-3           # success: position error <= this
    rot_tol_rad: float = 1e-2         # success: rotation error <= this (ignored if position_only)
    position_only: bool = False       # reach a point; orientation is free
    rot_weight_m_per_rad: float = 0.2  # weight of rotation against position errors in the steps
    damping_init: float = 1e-2        # initial LM damping lambda
    damping_min: float = 1e-7
    damping_max: float = 1e3
    damping_up: float = 4.0           # lambda *= up after a rejected step
    damping_down: float = 0.3         # lambda *= down after an accepted step
    max_step_rad: float = 0.5         # largest joint change per step (rad or m)
    stall_iters: int = 15             # restart a seed after this many iterations without progress
    check_every: int = 4              # test for "all targets solved" every this many iterations
    polish_iters: int = 3             # extra iterations once all are solved (tighter errors)
    random_seed: int = 0              # for the random seeds (reproducible); -1 = nondeterministic

    def __post_init__(self) -> None:
        require(isinstance(self.num_seeds, int) and self.num_seeds >= 1, 'num_seeds',
                self.num_seeds, 'an integer >= 1 (8-32 is typical)')
        require(isinstance(self.max_iters, int) and self.max_iters >= 1, 'max_iters',
                self.max_iters, 'an integer >= 1')
        for name in ('pos_tol_m', 'rot_tol_rad', 'rot_weight_m_per_rad', 'damping_init',
                     'damping_min', 'damping_max', 'max_step_rad'):
            value = getattr(self, name)
            require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                    name, value, 'a finite number > 0')
        require(self.damping_min <= self.damping_init <= self.damping_max, 'damping_init',
                self.damping_init, f'within [damping_min, damping_max] = '
                f'[{self.damping_min}, {self.damping_max}]')
        require(self.damping_up > 1.0, 'damping_up', self.damping_up, 'a factor > 1')
        require(0.0 < self.damping_down < 1.0, 'damping_down', self.damping_down,
                'a factor in (0, 1)')
        require(isinstance(self.stall_iters, int) and self.stall_iters >= 0, 'stall_iters',
                self.stall_iters, 'an integer >= 0 (0 disables restarts)')
        require(isinstance(self.check_every, int) and self.check_every >= 1, 'check_every',
                self.check_every, 'an integer >= 1')
        require(isinstance(self.polish_iters, int) and self.polish_iters >= 0, 'polish_iters',
                self.polish_iters, 'an integer >= 0')
        require(isinstance(self.random_seed, int) and self.random_seed >= -1, 'random_seed',
                self.random_seed, 'an integer >= 0, or -1 for a nondeterministic seed')


@dataclass(frozen=True)
class IKResult:
    """Best solution per target.

    Attributes:
        q: ``(B, n)`` joint positions, ``chain.joint_names`` order, within the limits.
        pos_err_m: ``(B,)`` tip position error of ``q`` (m).
        rot_err_rad: ``(B,)`` tip rotation error angle of ``q`` (rad; reported, not required,
            in position-only mode).
        success: ``(B,)`` bool, errors within the configured tolerances.
        iterations: iterations run.
        backend: ``'torch'`` or ``'curobo'``.
    """

    q: torch.Tensor
    pos_err_m: torch.Tensor
    rot_err_rad: torch.Tensor
    success: torch.Tensor
    iterations: int
    backend: str = 'torch'


class IKSolver(abc.ABC):
    """Batched IK for one :class:`KinematicChain`."""

    backend: str = ''

    def __init__(self, chain: KinematicChain, config: IKConfig | None = None) -> None:
        self.chain = chain
        self.config = config or IKConfig()

    @property
    def joint_names(self) -> tuple:
        return self.chain.joint_names

    @abc.abstractmethod
    def solve(self, target: torch.Tensor, q_init: torch.Tensor | None = None) -> IKResult:
        """Solve for tip poses ``target`` ``(B, 4, 4)``; ``q_init`` ``(B, n)`` seeds/prefers."""

    def _check(self, target: torch.Tensor, q_init: torch.Tensor | None) -> None:
        if not isinstance(target, torch.Tensor) or target.dim() != 3 or \
                target.shape[1:] != (4, 4) or not target.is_floating_point():
            raise ValueError(f'target must be a float tensor (B, 4, 4) of tip poses in '
                             f'{self.chain.root_link!r}; got {getattr(target, "shape", target)}')
        if q_init is not None and (not isinstance(q_init, torch.Tensor) or
                                   tuple(q_init.shape) != (target.shape[0], self.chain.dof)):
            raise ValueError(f'q_init must be None or a tensor ({target.shape[0]}, '
                             f'{self.chain.dof}); got {getattr(q_init, "shape", q_init)}')

    def evaluate(self, q: torch.Tensor, target: torch.Tensor,
                 iterations: int = 0) -> IKResult:
        """Errors and success of solutions ``q`` for ``target`` under this config."""
        dp, dr = pose_error(self.chain.fk(q), target)
        pos_err, rot_err = dp.norm(dim=-1), dr.norm(dim=-1)
        success = pos_err <= self.config.pos_tol_m
        if not self.config.position_only:
            success = success & (rot_err <= self.config.rot_tol_rad)
        return IKResult(q, pos_err, rot_err, success, iterations, self.backend)


class TorchIKSolver(IKSolver):
    """Damped-least-squares (Levenberg-Marquardt) IK with seeds and restarts, any device."""

    backend = 'torch'

    def solve(self, target: torch.Tensor, q_init: torch.Tensor | None = None) -> IKResult:
        self._check(target, q_init)
        cfg, chain = self.config, self.chain
        dtype, device = target.dtype, target.device
        batch, seeds, n = target.shape[0], cfg.num_seeds, chain.dof
        gen = torch.Generator()
        gen.manual_seed(cfg.random_seed if cfg.random_seed >= 0 else
                        int(torch.randint(0, 2**62, (1,))))
        lo, hi = chain.limits(dtype, device)
        q = chain.sample(batch * seeds, gen, dtype, device).view(batch, seeds, n)
        q[:, 0] = chain.neutral(dtype, device) if q_init is None else chain.clamp(q_init.to(q))
        q = q.reshape(batch * seeds, n)
        goal = target.repeat_interleave(seeds, dim=0)
        rows = 3 if cfg.position_only else 6
        weight = torch.ones(rows, dtype=dtype, device=device)
        if not cfg.position_only:
            weight[3:] = cfg.rot_weight_m_per_rad
        eye = torch.eye(rows, dtype=dtype, device=device)

        def residual(q_: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            """Weighted error (N, rows), weighted Jacobian (N, rows, n), cost, success."""
            pose, jac = chain.fk_and_jacobian(q_)
            dp, dr = pose_error(pose, goal)
            err = dp if cfg.position_only else torch.cat([dp, dr], dim=-1)
            ok = dp.norm(dim=-1) <= cfg.pos_tol_m
            if not cfg.position_only:
                ok = ok & (dr.norm(dim=-1) <= cfg.rot_tol_rad)
            err_w, jac_w = err * weight, jac[:, :rows] * weight[:, None]
            return err_w, jac_w, (err_w * err_w).sum(-1), ok

        err, jac, cost, ok = residual(q)
        damping = torch.full_like(cost, cfg.damping_init)
        stall = torch.zeros_like(cost, dtype=torch.long)
        iters, stop_at = 0, cfg.max_iters
        for iters in range(1, cfg.max_iters + 1):
            dq = self._step(jac, err, damping, eye)
            # Joints at a limit that the step pushes outwards are frozen and the step is re-solved
            # without them, so the other joints make up for them (else convergence crawls).
            blocked = ((q <= lo) & (dq < 0)) | ((q >= hi) & (dq > 0))
            if bool(blocked.any()):
                dq = self._step(jac * (~blocked)[:, None, :].to(jac), err, damping, eye)
            scale = (cfg.max_step_rad / dq.abs().amax(dim=-1).clamp_min(1e-12)).clamp(max=1.0)
            trial = q + dq * scale[:, None]
            restart = (stall >= cfg.stall_iters) & ~ok if cfg.stall_iters > 0 else \
                torch.zeros_like(ok)
            if bool(restart.any()):
                fresh = chain.sample(q.shape[0], gen, dtype, device)
                trial = torch.where(restart[:, None], fresh, trial)
            trial = torch.maximum(torch.minimum(trial, hi), lo)
            t_err, t_jac, t_cost, t_ok = residual(trial)
            accept = (t_cost < cost) | restart
            progress = accept & (t_cost < 0.99 * cost)
            q = torch.where(accept[:, None], trial, q)
            err = torch.where(accept[:, None], t_err, err)
            jac = torch.where(accept[:, None, None], t_jac, jac)
            cost = torch.where(accept, t_cost, cost)
            ok = torch.where(accept, t_ok, ok)
            damping = torch.where(accept, damping * cfg.damping_down, damping * cfg.damping_up)
            damping = damping.clamp(cfg.damping_min, cfg.damping_max)
            damping = torch.where(restart, torch.full_like(damping, cfg.damping_init), damping)
            stall = torch.where(progress | restart, torch.zeros_like(stall), stall + 1)
            if iters >= stop_at:
                break
            if stop_at == cfg.max_iters and iters % cfg.check_every == 0 and \
                    bool(ok.view(batch, seeds).any(dim=1).all()):
                stop_at = min(cfg.max_iters, iters + cfg.polish_iters)
                if iters >= stop_at:
                    break
        # Per target: a successful seed, the one nearest q_init (else the lowest error).
        ok_bs, cost_bs = ok.view(batch, seeds), cost.view(batch, seeds)
        if q_init is not None:
            rank = (q.view(batch, seeds, n) - q_init.to(q)[:, None]).square().sum(-1)
        else:
            rank = cost_bs
        rank = torch.where(ok_bs, rank, rank.new_tensor(float('inf')))
        fallback = cost_bs.argmin(dim=1)
        best = torch.where(ok_bs.any(dim=1), rank.argmin(dim=1), fallback)
        q_best = q.view(batch, seeds, n)[torch.arange(batch, device=device), best]
        return self.evaluate(q_best, target, iters)

    @staticmethod
    def _step(jac: torch.Tensor, err: torch.Tensor, damping: torch.Tensor,
              eye: torch.Tensor) -> torch.Tensor:
        """``dq = J^T (J J^T + lambda I)^-1 e``: a (rows x rows) system per problem."""
        lhs = jac @ jac.transpose(1, 2) + damping[:, None, None] * eye
        return (jac.transpose(1, 2) @ torch.linalg.solve(lhs, err.unsqueeze(-1))).squeeze(-1)


def matrix_to_quaternion_wxyz(rot: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` (w, x, y, z; w >= 0) of rotation matrices ``(..., 3, 3)``."""
    m00, m11, m22 = rot[..., 0, 0], rot[..., 1, 1], rot[..., 2, 2]
    # Squared magnitudes of the 4 components, then take the largest for numerical stability.
    sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                      1 - m00 - m11 + m22], dim=-1).clamp_min(0.0)
    cand = torch.stack([
        torch.stack([sq[..., 0], rot[..., 2, 1] - rot[..., 1, 2], rot[..., 0, 2] - rot[..., 2, 0],
                     rot[..., 1, 0] - rot[..., 0, 1]], dim=-1),
        torch.stack([rot[..., 2, 1] - rot[..., 1, 2], sq[..., 1], rot[..., 1, 0] + rot[..., 0, 1],
                     rot[..., 0, 2] + rot[..., 2, 0]], dim=-1),
        torch.stack([rot[..., 0, 2] - rot[..., 2, 0], rot[..., 1, 0] + rot[..., 0, 1], sq[..., 2],
                     rot[..., 2, 1] + rot[..., 1, 2]], dim=-1),
        torch.stack([rot[..., 1, 0] - rot[..., 0, 1], rot[..., 0, 2] + rot[..., 2, 0],
                     rot[..., 2, 1] + rot[..., 1, 2], sq[..., 3]], dim=-1),
    ], dim=-2)  # row k = 4 q_k q
    k = sq.argmax(dim=-1)
    row = torch.gather(cand, -2, k[..., None, None].expand(*k.shape, 1, 4)).squeeze(-2)
    quat = row / row.norm(dim=-1, keepdim=True)
    return torch.where(quat[..., :1] < 0, -quat, quat)


class CuRoboIKSolver(IKSolver):
    """Thin adapter over NVIDIA cuRobo's ``IKSolver`` (CUDA only; untested without cuRobo).

    cuRobo is built from the chain's URDF file, root and tip links, without collision checking;
    its solutions are re-ordered to ``chain.joint_names`` and their errors and success are
    recomputed with our FK and tolerances, so results compare with the torch solver's.
    ``q_init`` is not passed to cuRobo (it seeds itself). Position-only IK is not adapted.
    """

    backend = 'curobo'

    def __init__(self, chain: KinematicChain, config: IKConfig | None = None) -> None:
        super().__init__(chain, config)
        if self.config.position_only:
            raise NotImplementedError('the cuRobo adapter does not do position-only IK')
        if chain.urdf_path is None:
            raise ValueError('the cuRobo adapter needs a chain built from a URDF file')
        from curobo.types.base import TensorDeviceType
        from curobo.types.robot import RobotConfig
        from curobo.wrap.reacher.ik_solver import IKSolver as CuIKSolver
        from curobo.wrap.reacher.ik_solver import IKSolverConfig
        self._tensor_args = TensorDeviceType()
        robot = RobotConfig.from_basic(str(chain.urdf_path), chain.root_link, chain.tip_link,
                                       self._tensor_args)
        ik_config = IKSolverConfig.load_from_robot_config(
            robot, None, position_threshold=self.config.pos_tol_m,
            rotation_threshold=self.config.rot_tol_rad, num_seeds=self.config.num_seeds,
            self_collision_check=False, self_collision_opt=False,
            tensor_args=self._tensor_args, use_cuda_graph=False)
        self._solver = CuIKSolver(ik_config)
        names = list(self._solver.kinematics.joint_names)
        missing = [j for j in chain.joint_names if j not in names]
        if missing:
            raise ValueError(f'cuRobo model lacks joints {missing}; it has {names}')
        self._order = [names.index(j) for j in chain.joint_names]

    def solve(self, target: torch.Tensor, q_init: torch.Tensor | None = None) -> IKResult:
        from curobo.types.math import Pose
        self._check(target, q_init)
        goal_t = target.to(device=self._tensor_args.device, dtype=self._tensor_args.dtype)
        goal = Pose(position=goal_t[:, :3, 3].contiguous(),
                    quaternion=matrix_to_quaternion_wxyz(goal_t[:, :3, :3]).contiguous())
        result = self._solver.solve_batch(goal)
        solution = result.solution.reshape(target.shape[0], -1, result.solution.shape[-1])
        q = solution[:, 0, self._order].to(device=target.device, dtype=target.dtype)
        return self.evaluate(self.chain.clamp(q), target, iterations=-1)


def make_ik_solver(chain: KinematicChain, config: IKConfig | None = None,
                   backend: str = 'auto') -> IKSolver:
    """An IK solver for ``chain``.

    Args:
        backend: ``'auto'`` (cuRobo when ``import curobo`` works, CUDA is available and the
            adapter accepts the config; torch otherwise), ``'curobo'`` (error if unavailable) or
            ``'torch'``. The choice is logged at INFO.
    """
    if backend not in ('auto', 'torch', 'curobo'):
        raise ValueError(f"backend must be 'auto', 'torch' or 'curobo'; got {backend!r}")
    reason = 'requested'
    if backend != 'torch':
        try:
            import curobo  # noqa: F401
        except ImportError as exc:
            reason = f'cuRobo is not importable ({exc})'
        else:
            if not torch.cuda.is_available():
                reason = 'cuRobo needs CUDA and none is available'
            else:
                try:
                    solver = CuRoboIKSolver(chain, config)
                except Exception as exc:  # noqa: BLE001 - fall back, but say why
                    reason = f'the cuRobo adapter failed: {exc!r}'
                else:
                    _LOG.info('IK backend: cuRobo for %s', chain)
                    return solver
        if backend == 'curobo':
            raise RuntimeError(f'cuRobo IK was requested but {reason}')
    _LOG.info('IK backend: torch for %s (%s)', chain, reason)
    return TorchIKSolver(chain, config)
