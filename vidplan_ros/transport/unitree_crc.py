"""Unitree G1 (unitree_hg) LowCmd/LowState CRC32 and packed C-struct layout. ROS-free.

The robot checks a CRC over the message laid out as a packed little-endian C struct with
natural 4-byte alignment (LowCmd 1004 bytes, LowState 2092 bytes). The CRC covers every
32-bit little-endian word except the trailing ``crc`` word. Unitree's bitwise loop
(init 0xFFFFFFFF, poly 0x04C11DB7, MSB first, no reflection, no final xor) equals
CRC-32/MPEG-2 over the stream of words fed big-endian.

:func:`crc32_words` is vectorised: the CRC is affine over GF(2), so for a fixed word count N
it is ``const_N ^ xor(table_N[i, b] for every set bit b of word i)`` with per-N tables built
once and cached. Works on our dds_msgs classes and on any object with the same attributes
(e.g. rclpy ``unitree_hg.msg.LowCmd``, whose arrays are numpy arrays).
"""

import struct
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np

POLY = 0x04C11DB7
INIT = 0xFFFFFFFF

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


def _byte_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ POLY) if c & 0x80000000 else (c << 1)
            c &= 0xFFFFFFFF
        table[i] = c
    return table


_TABLE = _byte_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def crc32_mpeg2(data: bytes, init: int = INIT) -> int:
    """Byte-wise table-driven CRC-32/MPEG-2 (``crc32_mpeg2(b'123456789') == 0x0376E6E7``)."""
    crc = init & 0xFFFFFFFF
    table = _TABLE_LIST
    for b in bytes(data):
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ b]
    return crc


def _advance_zero_word(v: np.ndarray) -> np.ndarray:
    """CRC register(s) ``v`` after feeding one all-zero 32-bit word (vectorised)."""
    for _ in range(4):
        v = (v << np.uint32(8)) ^ _TABLE[v >> np.uint32(24)]
    return v


@lru_cache(maxsize=8)
def _tables(n_words: int) -> tuple[int, np.ndarray]:
    """(CRC of n zero words, table[i * 32 + b] = contribution of bit b of word i)."""
    table = np.empty((n_words, 32), dtype=np.uint32)
    # Contribution of bit b of the last word, starting from a zero register.
    row = _advance_zero_word(np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32)))
    for i in range(n_words - 1, -1, -1):
        table[i] = row
        row = _advance_zero_word(row)
    const = np.array([INIT], dtype=np.uint32)
    for _ in range(n_words):
        const = _advance_zero_word(const)
    table.setflags(write=False)
    return int(const[0]), table.reshape(-1)


_BIT_SHIFTS = np.arange(32, dtype=np.uint32)


def crc32_words(words: np.ndarray) -> int:
    """Unitree CRC32 of a sequence of 32-bit words (uint32 values, not bytes)."""
    w = np.ascontiguousarray(words, dtype=np.uint32).reshape(-1)
    if w.size == 0:
        return INIT
    const, table = _tables(int(w.size))
    bits = ((w[:, None] >> _BIT_SHIFTS) & np.uint32(1)).astype(bool).reshape(-1)
    return const ^ int(np.bitwise_xor.reduce(table[bits])) if bits.any() else const


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
