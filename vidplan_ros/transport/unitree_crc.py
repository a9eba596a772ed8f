"""Unitree G1 (unitree_hg) LowCmd/LowState CRC32 and packed C-struct layout. ROS-free.

The robot checks a CRC over the message laid out as a packed little-endian C struct with
natural 4-byte alignment (LowCmd 1004 bytes, LowState 2092 bytes). The CRC covers every
32-bit little-endian word except the trailing ``crc`` word. Unitree's bitwise loop
(init 0xFFFFFFFF, poly 0x04C11DB7, MSB first, no reflection, no final xor) equals
CRC-32/MPEG-2 over the stream of words fed big-endian.

Works on our dds_msgs classes and on any object with the same attributes (e.g. rclpy
``unitree_hg.msg.LowCmd``, whose arrays are numpy arrays).
"""

import struct
import zlib
from typing import Any, TypeVar

import numpy as np


NUM_MOTORS = 35
LOWCMD_SIZE = 1004
LOWSTATE_SIZE = 2092

# Packed little-endian layouts; 'x' bytes are the C padding (written as zeros).
_MOTOR_CMD_FMT = 'B3x5fI'                       # 28 bytes
_LOWCMD = struct.Struct('<2B2x' + _MOTOR_CMD_FMT * NUM_MOTORS + '4I' + 'I')
_IMU_FMT = '4f3f3f3fh2x'                       # 56 bytes
_MOTOR_STATE_FMT = 'B3x4f2hf2II4I'             # 56 bytes
_LOWSTATE = struct.Struct('<2I2B2xI' + _IMU_FMT + _MOTOR_STATE_FMT * NUM_MOTORS
                          + '40s' + '4I' + 'I')
assert _LOWCMD.size == LOWCMD_SIZE and _LOWSTATE.size == LOWSTATE_SIZE

_M = TypeVar('_M')

# CRC-32/MPEG-2 is zlib's (reflected) CRC-32 run on bit-reversed bytes, bit-reversed back and
# without zlib's final xor; zlib does the per-byte work in C.
_REVERSE_BITS = bytes(int(f'{i:08b}'[::-1], 2) for i in range(256))


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 of `data` (``crc32_mpeg2(b'123456789') == 0x0376E6E7``)."""
    reflected = zlib.crc32(bytes(data).translate(_REVERSE_BITS)) ^ 0xFFFFFFFF
    return int(f'{reflected:032b}'[::-1], 2)


def crc32_words(words: np.ndarray) -> int:
    """Unitree CRC32 of a sequence of 32-bit words (uint32 values, not bytes)."""
    w = np.ascontiguousarray(words, dtype=np.uint32).reshape(-1)
    return crc32_mpeg2(w.astype('>u4').tobytes())


def _u8_bytes(value: Any, length: int) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        out = bytes(value)
    else:
        out = np.asarray(value, dtype=np.uint8).tobytes()
    if len(out) != length:
        raise ValueError(f'expected {length} bytes, got {len(out)}')
    return out


def pack_lowcmd(msg: Any) -> bytes:
    """The 1004-byte packed little-endian C layout of a unitree_hg LowCmd."""
    cmds = msg.motor_cmd
    if len(cmds) != NUM_MOTORS:
        raise ValueError(f'LowCmd.motor_cmd must have {NUM_MOTORS} entries, got {len(cmds)}')
    vals: list = [msg.mode_pr, msg.mode_machine]
    extend = vals.extend
    for m in cmds:
        extend((m.mode, m.q, m.dq, m.tau, m.kp, m.kd, m.reserve))
    extend(msg.reserve)
    vals.append(msg.crc)
    return _LOWCMD.pack(*vals)


def pack_lowstate(msg: Any) -> bytes:
    """The 2092-byte packed little-endian C layout of a unitree_hg LowState."""
    states = msg.motor_state
    if len(states) != NUM_MOTORS:
        raise ValueError(
            f'LowState.motor_state must have {NUM_MOTORS} entries, got {len(states)}')
    imu = msg.imu_state
    vals: list = [*msg.version, msg.mode_pr, msg.mode_machine, msg.tick,
                  *imu.quaternion, *imu.gyroscope, *imu.accelerometer, *imu.rpy,
                  imu.temperature]
    extend = vals.extend
    for s in states:
        t0, t1 = s.temperature
        s0, s1 = s.sensor
        r0, r1, r2, r3 = s.reserve
        extend((s.mode, s.q, s.dq, s.ddq, s.tau_est, t0, t1, s.vol, s0, s1, s.motorstate,
                r0, r1, r2, r3))
    vals.append(_u8_bytes(msg.wireless_remote, 40))
    extend(msg.reserve)
    vals.append(msg.crc)
    return _LOWSTATE.pack(*vals)


def _crc_of_packed(packed: bytes) -> int:
    return crc32_words(np.frombuffer(packed, dtype='<u4')[:-1])


def lowcmd_crc(msg: Any) -> int:
    """CRC that ``msg.crc`` of a LowCmd must hold (the current ``crc`` value is ignored)."""
    return _crc_of_packed(pack_lowcmd(msg))


def lowstate_crc(msg: Any) -> int:
    """CRC that ``msg.crc`` of a LowState must hold (the current ``crc`` value is ignored)."""
    return _crc_of_packed(pack_lowstate(msg))


def stamp_lowcmd_crc(msg: _M) -> _M:
    """Set ``msg.crc`` of a LowCmd to its CRC and return ``msg``."""
    msg.crc = lowcmd_crc(msg)
    return msg


def lowcmd_crc_ok(msg: Any) -> bool:
    return int(msg.crc) == lowcmd_crc(msg)


def lowstate_crc_ok(msg: Any) -> bool:
    return int(msg.crc) == lowstate_crc(msg)


__all__ = ['LOWCMD_SIZE', 'LOWSTATE_SIZE', 'crc32_mpeg2', 'crc32_words', 'lowcmd_crc',
           'lowcmd_crc_ok', 'lowstate_crc', 'lowstate_crc_ok', 'pack_lowcmd', 'pack_lowstate',
           'stamp_lowcmd_crc']
