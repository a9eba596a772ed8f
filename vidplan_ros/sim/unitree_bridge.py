"""What the G1's low level does with LowCmd frames, for the embedded sim (ROS-free).

- `rt/lowcmd`: every motor with `mode == 1` runs PD on (q, dq, kp, kd) plus `tau`
  (robots.md §2.6: tau + kp (q_des - q) + kd (dq_des - dq)); `mode == 0` motors are limp.
- `rt/arm_sdk`: the upper body blends the SDK command over the built-in controller with the
  weight in `motor_cmd[29].q`, clamped to [0, 1]: cmd = w * sdk + (1 - w) * builtin
  (Unitree states this for hand_sdk; arm_sdk by analogy, robots.md §2.5). Motor `mode` is not
  used (the SDK examples leave it 0).
- The built-in controller (standing, arms held at the ready pose with the spec gains) runs when
  no command is fresh: a stream that stops for `command_timeout_s` hands control back.
Frames with a wrong CRC never get here: the node drops and counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidplan_ros.core.config import require_positive
from vidplan_ros.core.robot_spec import RobotSpec


@dataclass(frozen=True)
class UnitreeBridgeConfig:
    command_timeout_s: float = 0.1

    def __post_init__(self) -> None:
        require_positive(self, 'command_timeout_s')


@dataclass(frozen=True)
class JointCommand:
    """PD targets in the robot spec's joint order, (n,) each."""

    q_des: np.ndarray
    dq_des: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    tau_ff: np.ndarray


class UnitreeLowLevel:
    """Turns the latest lowcmd / arm_sdk frames into joint PD targets."""

    def __init__(self, spec: RobotSpec, cfg: UnitreeBridgeConfig | None = None) -> None:
        self.spec = spec
        self.cfg = cfg or UnitreeBridgeConfig()
        self.slots = np.asarray(spec.unitree.motor_indices, dtype=np.int64)
        n = spec.num_joints
        self.builtin = JointCommand(np.asarray(spec.ready_pose_rad, dtype=np.float64),
                                    np.zeros(n), np.asarray(spec.kp, dtype=np.float64),
                                    np.asarray(spec.kd, dtype=np.float64), np.zeros(n))
        self._frames: dict[str, tuple[float, dict]] = {}

    def on_frame(self, source: str, arrays: dict, now_s: float) -> None:
        """Store a CRC-checked frame (`convert.lowcmd_arrays`) from 'lowcmd' or 'arm_sdk'.

        Raises ValueError (and keeps the previous frame) if a commanded value is not finite.
        """
        if source not in ('lowcmd', 'arm_sdk'):
            raise ValueError(f'unknown LowCmd source {source!r}')
        for key in ('q', 'dq', 'tau', 'kp', 'kd'):
            if not np.all(np.isfinite(arrays[key][self.slots])):
                raise ValueError(f'{source}: non-finite {key} in the commanded motors; '
                                 'frame ignored')
        self._frames[source] = (now_s, arrays)

    def _fresh(self, source: str, now_s: float) -> dict | None:
        entry = self._frames.get(source)
        if entry is None or now_s - entry[0] > self.cfg.command_timeout_s:
            return None
        return entry[1]

    def arm_sdk_weight(self, now_s: float) -> float:
        frame = self._fresh('arm_sdk', now_s)
        if frame is None:
            return 0.0
        w = float(frame['q'][self.spec.unitree.arm_sdk_weight_slot])
        return float(np.clip(w, 0.0, 1.0)) if np.isfinite(w) else 0.0

    def command(self, now_s: float) -> JointCommand:
        """The PD targets to apply now."""
        low = self._fresh('lowcmd', now_s)
        if low is not None:
            on = low['mode'][self.slots] == 1
            pick = {k: low[k][self.slots] for k in ('q', 'dq', 'kp', 'kd', 'tau')}
            # Disabled motors are limp: no stiffness, no damping, no torque.
            return JointCommand(np.where(on, pick['q'], 0.0), np.where(on, pick['dq'], 0.0),
                                np.where(on, pick['kp'], 0.0), np.where(on, pick['kd'], 0.0),
                                np.where(on, pick['tau'], 0.0))
        w = self.arm_sdk_weight(now_s)
        if w == 0.0:
            return self.builtin
        sdk = self._frames['arm_sdk'][1]
        b = self.builtin

        def mix(key: str, builtin: np.ndarray) -> np.ndarray:
            return w * sdk[key][self.slots] + (1.0 - w) * builtin

        return JointCommand(mix('q', b.q_des), mix('dq', b.dq_des), mix('kp', b.kp),
                            mix('kd', b.kd), mix('tau', b.tau_ff))
