"""Unitree G1 CRC32 and packed layouts (robots.md section 2.3)."""

import random
import struct
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vidplan_ros.transport.dds_msgs.unitree_hg import (IMUState, LowCmd, LowState,  # noqa: E402
                                                       MotorCmd, MotorState)
from vidplan_ros.transport.unitree_crc import (crc32_mpeg2, crc32_words, lowcmd_crc,  # noqa: E402
                                               lowcmd_crc_ok, lowstate_crc, lowstate_crc_ok,
                                               pack_lowcmd, pack_lowstate, stamp_lowcmd_crc)

POLY = 0x04C11DB7


def reference_crc(words) -> int:
    """Unitree's bit-by-bit loop, as described in words in robots.md section 2.3."""
    crc = 0xFFFFFFFF
    for word in words:
        word = int(word)
        for bit in range(31, -1, -1):
            top = crc & 0x80000000
            crc = (crc << 1) & 0xFFFFFFFF
            if top:
                crc ^= POLY
            if (word >> bit) & 1:
                crc ^= POLY
    return crc


def f32(rng: random.Random) -> float:
    return float(np.float32(rng.uniform(-50.0, 50.0)))


def random_lowcmd(rng: random.Random) -> LowCmd:
    return LowCmd(
        mode_pr=rng.randint(0, 255), mode_machine=rng.randint(0, 255),
        motor_cmd=[MotorCmd(mode=rng.randint(0, 255), q=f32(rng), dq=f32(rng), tau=f32(rng),
                            kp=f32(rng), kd=f32(rng), reserve=rng.getrandbits(32))
                   for _ in range(35)],
        reserve=[rng.getrandbits(32) for _ in range(4)], crc=rng.getrandbits(32))


def random_lowstate(rng: random.Random) -> LowState:
    def i16() -> int:
        return rng.randint(-32768, 32767)

    return LowState(
        version=[rng.getrandbits(32) for _ in range(2)], mode_pr=rng.randint(0, 255),
        mode_machine=rng.randint(0, 255), tick=rng.getrandbits(32),
        imu_state=IMUState(quaternion=[f32(rng) for _ in range(4)],
                           gyroscope=[f32(rng) for _ in range(3)],
                           accelerometer=[f32(rng) for _ in range(3)],
                           rpy=[f32(rng) for _ in range(3)], temperature=i16()),
        motor_state=[MotorState(mode=rng.randint(0, 255), q=f32(rng), dq=f32(rng), ddq=f32(rng),
                                tau_est=f32(rng), temperature=[i16(), i16()], vol=f32(rng),
                                sensor=[rng.getrandbits(32) for _ in range(2)],
                                motorstate=rng.getrandbits(32),
                                reserve=[rng.getrandbits(32) for _ in range(4)])
                     for _ in range(35)],
        wireless_remote=bytes(rng.getrandbits(8) for _ in range(40)),
        reserve=[rng.getrandbits(32) for _ in range(4)], crc=rng.getrandbits(32))


def test_mpeg2_check_value():
    assert crc32_mpeg2(b'123456789') == 0x0376E6E7


def test_all_zero_lowcmd_check_value():
    assert crc32_words(np.zeros(250, dtype=np.uint32)) == 0xFE172F9F
    assert reference_crc([0] * 250) == 0xFE172F9F
    assert lowcmd_crc(LowCmd()) == 0xFE172F9F


@pytest.mark.parametrize('n_words', [1, 2, 7, 250, 522])
def test_fast_crc_equals_bitwise_reference(n_words):
    rng = np.random.default_rng(n_words)
    for _ in range(3):
        words = rng.integers(0, 2**32, n_words, dtype=np.uint32)
        expected = reference_crc(words)
        assert crc32_words(words) == expected
        assert crc32_mpeg2(words.astype('>u4').tobytes()) == expected
        assert crc32_words(list(map(int, words))) == expected


def test_empty_and_special_words():
    assert crc32_words(np.zeros(0, dtype=np.uint32)) == 0xFFFFFFFF
    for w in (0xFFFFFFFF, 0x80000000, 1):
        assert crc32_words(np.array([w, 0, w], dtype=np.uint32)) == reference_crc([w, 0, w])


def test_lowcmd_layout_offsets():
    cmd = LowCmd(mode_pr=1, mode_machine=5, reserve=[11, 12, 13, 14], crc=0xDEADBEEF)
    cmd.motor_cmd[1] = MotorCmd(mode=1, q=0.5, dq=-1.0, tau=2.0, kp=60.0, kd=1.5, reserve=7)
    raw = pack_lowcmd(cmd)
    assert len(raw) == 1004
    assert raw[:4] == b'\x01\x05\x00\x00'
    assert struct.unpack_from('<B3x5fI', raw, 4 + 28) == (1, 0.5, -1.0, 2.0, 60.0, 1.5, 7)
    assert struct.unpack_from('<4II', raw, 984) == (11, 12, 13, 14, 0xDEADBEEF)


def test_lowstate_layout_offsets():
    state = LowState(version=[1, 2], mode_pr=3, mode_machine=4, tick=99,
                     wireless_remote=bytes(range(40)), reserve=[5, 6, 7, 8], crc=9)
    state.imu_state.temperature = -3
    state.motor_state[34].temperature = [-1, 2]
    state.motor_state[34].motorstate = 0xABCD
    raw = pack_lowstate(state)
    assert len(raw) == 2092
    assert struct.unpack_from('<2I2B2xI', raw, 0) == (1, 2, 3, 4, 99)
    assert struct.unpack_from('<h', raw, 16 + 52) == (-3,)
    motor34 = 72 + 34 * 56
    assert struct.unpack_from('<2h', raw, motor34 + 20) == (-1, 2)
    assert struct.unpack_from('<I', raw, motor34 + 36) == (0xABCD,)
    assert raw[2032:2072] == bytes(range(40))
    assert struct.unpack_from('<5I', raw, 2072) == (5, 6, 7, 8, 9)


def test_crc_over_packed_words_matches_reference():
    rng = random.Random(1)
    cmd, state = random_lowcmd(rng), random_lowstate(rng)
    cmd_words = np.frombuffer(pack_lowcmd(cmd), dtype='<u4')
    state_words = np.frombuffer(pack_lowstate(state), dtype='<u4')
    assert lowcmd_crc(cmd) == reference_crc(cmd_words[:250])
    assert lowstate_crc(state) == reference_crc(state_words[:522])


def test_stamped_lowcmd_verifies_and_crc_field_is_excluded():
    rng = random.Random(2)
    for _ in range(10):
        cmd = random_lowcmd(rng)
        assert stamp_lowcmd_crc(cmd) is cmd
        assert lowcmd_crc_ok(cmd)
        before = cmd.crc
        cmd.crc ^= 1
        assert lowcmd_crc(cmd) == before and not lowcmd_crc_ok(cmd)


def _stamped(rng: random.Random) -> LowCmd:
    return stamp_lowcmd_crc(random_lowcmd(rng))


@pytest.mark.parametrize('corrupt', [
    lambda c: setattr(c.motor_cmd[17], 'q', c.motor_cmd[17].q + 0.25),
    lambda c: setattr(c.motor_cmd[0], 'mode', c.motor_cmd[0].mode ^ 1),
    lambda c: setattr(c.motor_cmd[34], 'kd', -c.motor_cmd[34].kd - 1.0),
    lambda c: setattr(c.motor_cmd[5], 'reserve', c.motor_cmd[5].reserve ^ 0x80000000),
    lambda c: setattr(c, 'mode_machine', c.mode_machine ^ 0x10),
    lambda c: setattr(c, 'mode_pr', c.mode_pr ^ 1),
    lambda c: c.reserve.__setitem__(3, c.reserve[3] ^ 1),
], ids=['q', 'mode', 'kd', 'motor_reserve', 'mode_machine', 'mode_pr', 'reserve_word'])
def test_single_field_corruption_detected(corrupt):
    cmd = _stamped(random.Random(3))
    corrupt(cmd)
    assert not lowcmd_crc_ok(cmd)


def test_every_single_bit_flip_detected():
    cmd = _stamped(random.Random(4))
    raw = bytearray(pack_lowcmd(cmd))
    words = np.frombuffer(bytes(raw), dtype='<u4')[:250].copy()
    good = crc32_words(words)
    assert good == cmd.crc
    for bit in range(250 * 32):
        flipped = words.copy()
        flipped[bit // 32] ^= np.uint32(1 << (bit % 32))
        assert crc32_words(flipped) != good, f'bit {bit} flip not detected'


def test_lowstate_crc_ok():
    state = random_lowstate(random.Random(5))
    assert not lowstate_crc_ok(state)
    state.crc = lowstate_crc(state)
    assert lowstate_crc_ok(state)
    state.motor_state[3].temperature[1] += 1
    assert not lowstate_crc_ok(state)


def _rclpy_like(obj):
    """A look-alike of an rclpy message: plain attributes, fixed arrays as numpy arrays."""
    if is_dataclass(obj):
        return SimpleNamespace(**{f.name: _rclpy_like(getattr(obj, f.name)) for f in fields(obj)})
    if isinstance(obj, bytes):
        return np.frombuffer(obj, dtype=np.uint8)
    if isinstance(obj, list) and obj and is_dataclass(obj[0]):
        return [_rclpy_like(v) for v in obj]
    if isinstance(obj, list):
        return np.array(obj, dtype=np.float32 if isinstance(obj[0], float) else np.int64)
    return obj


def test_works_on_rclpy_like_objects_with_numpy_arrays():
    state = random_lowstate(random.Random(6))
    fake_state = _rclpy_like(state)
    assert isinstance(fake_state.motor_state[0].sensor, np.ndarray)
    assert pack_lowstate(fake_state) == pack_lowstate(state)
    assert lowstate_crc(fake_state) == lowstate_crc(state)

    cmd = _stamped(random.Random(7))
    fake_cmd = _rclpy_like(cmd)
    assert lowcmd_crc_ok(fake_cmd)
    fake_cmd.crc = 0
    assert stamp_lowcmd_crc(fake_cmd).crc == cmd.crc


def test_wrong_motor_count_rejected():
    cmd = LowCmd()
    cmd.motor_cmd = cmd.motor_cmd[:29]
    with pytest.raises(ValueError):
        pack_lowcmd(cmd)
