"""unitree_hg/msg types (Unitree G1/H1-2 low level) as Cyclone DDS IDL structs.

Field order and types follow unitree_sdk2 ``idl/hg`` (all final, sequential ids). The DDS
type names are those Unitree publishes, e.g. ``unitree_hg::msg::dds_::LowCmd_`` on ``rt/lowcmd``.
``LowState.wireless_remote`` (``uint8[40]``) is ``bytes`` of length 40 (see ``_octets``).
LowCmd and LowState use compiled one-``struct.Struct`` CDR machines (see ``_unitree_fast``):
the same bytes and values as the stock cyclonedds machines, ~10x faster.
For the CRC see :mod:`vidplan_ros.transport.unitree_crc`.
"""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from vidplan_ros.transport.dds_msgs._octets import use_octet_machines
from vidplan_ros.transport.dds_msgs._unitree_fast import use_compiled_machines

NUM_MOTORS = 35
WIRELESS_REMOTE_LEN = 40


@dataclass
class MotorCmd(IdlStruct, typename='unitree_hg::msg::dds_::MotorCmd_'):
    mode: t.uint8 = 0
    q: t.float32 = 0.0
    dq: t.float32 = 0.0
    tau: t.float32 = 0.0
    kp: t.float32 = 0.0
    kd: t.float32 = 0.0
    reserve: t.uint32 = 0


@dataclass
class MotorState(IdlStruct, typename='unitree_hg::msg::dds_::MotorState_'):
    mode: t.uint8 = 0
    q: t.float32 = 0.0
    dq: t.float32 = 0.0
    ddq: t.float32 = 0.0
    tau_est: t.float32 = 0.0
    temperature: t.array[t.int16, 2] = field(default_factory=lambda: [0] * 2)
    vol: t.float32 = 0.0
    sensor: t.array[t.uint32, 2] = field(default_factory=lambda: [0] * 2)
    motorstate: t.uint32 = 0
    reserve: t.array[t.uint32, 4] = field(default_factory=lambda: [0] * 4)


@dataclass
class IMUState(IdlStruct, typename='unitree_hg::msg::dds_::IMUState_'):
    quaternion: t.array[t.float32, 4] = field(default_factory=lambda: [0.0] * 4)
    gyroscope: t.array[t.float32, 3] = field(default_factory=lambda: [0.0] * 3)
    accelerometer: t.array[t.float32, 3] = field(default_factory=lambda: [0.0] * 3)
    rpy: t.array[t.float32, 3] = field(default_factory=lambda: [0.0] * 3)
    temperature: t.int16 = 0


@dataclass
class LowCmd(IdlStruct, typename='unitree_hg::msg::dds_::LowCmd_'):
    mode_pr: t.uint8 = 0
    mode_machine: t.uint8 = 0
    motor_cmd: t.array[MotorCmd, NUM_MOTORS] = field(
        default_factory=lambda: [MotorCmd() for _ in range(NUM_MOTORS)])
    reserve: t.array[t.uint32, 4] = field(default_factory=lambda: [0] * 4)
    crc: t.uint32 = 0


@dataclass
class LowState(IdlStruct, typename='unitree_hg::msg::dds_::LowState_'):
    version: t.array[t.uint32, 2] = field(default_factory=lambda: [0] * 2)
    mode_pr: t.uint8 = 0
    mode_machine: t.uint8 = 0
    tick: t.uint32 = 0
    imu_state: IMUState = field(default_factory=IMUState)
    motor_state: t.array[MotorState, NUM_MOTORS] = field(
        default_factory=lambda: [MotorState() for _ in range(NUM_MOTORS)])
    wireless_remote: t.array[t.uint8, WIRELESS_REMOTE_LEN] = bytes(WIRELESS_REMOTE_LEN)
    reserve: t.array[t.uint32, 4] = field(default_factory=lambda: [0] * 4)
    crc: t.uint32 = 0


use_octet_machines(LowState, 'wireless_remote')
use_compiled_machines(LowCmd)
use_compiled_machines(LowState)
