"""The compiled unitree_hg CDR machines (dds_msgs._unitree_fast) and the fast convert paths.

Reference points: the stock cyclonedds machines (rebuilt here with cyclonedds' own Builder),
rosbags CDR, and verbatim copies of the previous convert / unitree_crc implementations.
"""

import math
import random
import struct
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dds_msg_random import first_difference, make_typestore, random_pair  # noqa: E402

from cyclonedds.idl import IdlStruct  # noqa: E402
from cyclonedds.idl import types as t  # noqa: E402
from cyclonedds.idl._builder import Builder  # noqa: E402
from cyclonedds.idl._support import Buffer, Endianness  # noqa: E402

from vidplan_ros.transport import convert as cv  # noqa: E402
from vidplan_ros.transport.dds_msgs import dds_type  # noqa: E402
from vidplan_ros.transport.dds_msgs._unitree_fast import (CompiledStructMachine,  # noqa: E402
                                                          same_value, sample_value,
                                                          use_compiled_machines)
from vidplan_ros.transport.dds_msgs.unitree_hg import (IMUState, LowCmd, LowState,  # noqa: E402
                                                       MotorCmd, MotorState)
from vidplan_ros.transport.unitree_crc import (lowcmd_crc_ok, lowstate_crc,  # noqa: E402
                                               lowstate_crc_ok, pack_lowcmd, pack_lowstate,
                                               stamp_lowcmd_crc)

SEEDS = range(40)
TYPES = {'unitree_hg/msg/LowCmd': LowCmd, 'unitree_hg/msg/LowState': LowState}
VARIANTS = [(v2, e) for v2 in (False, True) for e in (Endianness.Little, Endianness.Big)]


@pytest.fixture(scope='module')
def ts():
    return make_typestore()


@contextmanager
def stock_machines(*classes):
    """Temporarily give ``classes`` freshly built stock cyclonedds machines."""
    saved = []
    for cls in classes:
        idl = cls.__idl__
        saved.append((idl, idl.v1_machine, idl.v2_machine))
        idl.v1_machine, idl.v2_machine = Builder.build_machines(cls)[:2]
    try:
        yield
    finally:
        for idl, v1, v2 in saved:
            idl.v1_machine, idl.v2_machine = v1, v2


def stock_serialize(msg, **kw) -> bytes:
    with stock_machines(type(msg)):
        return msg.serialize(**kw)


def stock_deserialize(cls, data: bytes):
    with stock_machines(cls):
        return cls.deserialize(data)


# --- installed, and actually used ------------------------------------------------------------

@pytest.mark.parametrize('cls', [LowCmd, LowState])
def test_compiled_machines_are_installed_and_used(cls):
    idl = cls.__idl__
    assert isinstance(idl.v1_machine, CompiledStructMachine)
    assert isinstance(idl.v2_machine, CompiledStructMachine)
    assert idl.default_version == 1  # XCDR1, as ROS 2 and Unitree use
    machine = idl.v1_machine
    fast, fallback = machine.fast_calls, machine.fallback_calls
    data = cls().serialize()
    back = cls.deserialize(data)
    assert isinstance(back, cls)
    # If cyclonedds stops routing through idl.v1_machine, these counters stop moving.
    assert machine.fast_calls == fast + 2, 'the compiled machine was bypassed'
    assert machine.fallback_calls == fallback
    # The stock members stay for keys, defaults and the error fallback.
    assert list(machine.members_machines) == [f for f in cls.__dataclass_fields__]


def test_buffer_internals_the_machine_relies_on():
    buf = Buffer()
    for name in ('_bytes', '_pos', '_endian', '_align_offset', '_align_max'):
        assert hasattr(buf, name), f'cyclonedds Buffer lost {name}'
    assert isinstance(buf._bytes, bytearray) and buf._endian in '<>'


def test_install_is_idempotent_and_self_checked():
    before = LowCmd.__idl__.v1_machine
    use_compiled_machines(LowCmd)
    assert LowCmd.__idl__.v1_machine is before


# --- bytes: stock machines, rosbags ----------------------------------------------------------

@pytest.mark.parametrize('typename', sorted(TYPES))
def test_bytes_equal_stock_and_rosbags_on_random_messages(ts, typename):
    cls = TYPES[typename]
    fallbacks = cls.__idl__.v1_machine.fallback_calls
    for seed in SEEDS:
        ours, ref = random_pair(ts, typename, seed)
        data = ours.serialize()
        expected = bytes(ts.serialize_cdr(ref, typename))
        assert data == expected, f'{typename} seed {seed}: differs from rosbags'
        assert data == stock_serialize(ours), f'{typename} seed {seed}: differs from stock'
        back = cls.deserialize(expected)
        stock_back = stock_deserialize(cls, expected)
        assert first_difference(back, stock_back) is None
        assert first_difference(ours, back) is None
        assert back.serialize() == expected
        # Big-endian CDR as rosbags writes it, both ways.
        big = bytes(ts.serialize_cdr(ref, typename, little_endian=False))
        assert ours.serialize(endianness=Endianness.Big) == big
        assert first_difference(cls.deserialize(big), back) is None
    assert cls.__idl__.v1_machine.fallback_calls == fallbacks, 'valid input hit the fallback'


@pytest.mark.parametrize('cls', [LowCmd, LowState])
@pytest.mark.parametrize('use_v2, endianness', VARIANTS)
def test_xcdr1_xcdr2_both_endiannesses_match_stock(ts, cls, use_v2, endianness):
    typename = f'unitree_hg/msg/{cls.__name__}'
    for seed in range(8):
        msg = random_pair(ts, typename, seed)[0]
        kw = {'use_version_2': use_v2, 'endianness': endianness}
        data = msg.serialize(**kw)
        assert data == stock_serialize(msg, **kw)
        assert first_difference(cls.deserialize(data), stock_deserialize(cls, data)) is None


def test_float32_rounding_and_specials_match_stock():
    values = [0.1, -1e-40, 3.4e38, 1.0 / 3.0, math.pi, -0.0, math.inf, -math.inf, math.nan,
              1e-46, 16777217.0]
    cmd = LowCmd(motor_cmd=[MotorCmd(mode=i % 256, q=values[i % len(values)],
                                     dq=values[(i + 1) % len(values)],
                                     tau=values[(i + 2) % len(values)], kp=float(i),
                                     kd=-float(i) / 7.0, reserve=2**32 - 1 - i)
                            for i in range(35)])
    data = cmd.serialize()
    assert data == stock_serialize(cmd)
    back, stock_back = LowCmd.deserialize(data), stock_deserialize(LowCmd, data)
    assert first_difference(back, stock_back) is None
    assert back.motor_cmd[0].q == float(np.float32(0.1)) != 0.1
    assert type(back.motor_cmd[0]) is MotorCmd and type(back.motor_cmd[0].q) is float


def test_layout_offsets_in_cdr():
    """CDR alignment is relative to the payload start; structs have no tail padding."""
    cmd = LowCmd(mode_pr=7, mode_machine=9)
    cmd.motor_cmd[0] = MotorCmd(mode=0xAB, q=1.5, reserve=0x11223344)
    cmd.motor_cmd[1] = MotorCmd(mode=0xCD, q=-2.5)
    payload = cmd.serialize()[4:]
    assert payload[0:3] == bytes([7, 9, 0xAB])
    assert struct.unpack_from('<f', payload, 4)[0] == 1.5      # after 1 pad byte
    assert struct.unpack_from('<I', payload, 24)[0] == 0x11223344
    assert payload[28] == 0xCD and struct.unpack_from('<f', payload, 32)[0] == -2.5
    assert len(payload) == 28 + 34 * 28 + 16 + 4                # element 0 ends at 28
    state = LowState(tick=5, imu_state=IMUState(temperature=-2))
    state.motor_state[0] = MotorState(mode=0xEE, q=0.5)
    payload = state.serialize()[4:]
    assert struct.unpack_from('<h', payload, 68)[0] == -2
    assert payload[70] == 0xEE                                  # no C padding after the IMU
    assert struct.unpack_from('<f', payload, 72)[0] == 0.5
    assert len(payload) == 2088


@dataclass
class Wrapper(IdlStruct, typename='vidplan_test::UnitreeWrapper'):
    """LowCmd / LowState nested at odd offsets: exercises the per-offset layouts."""
    a: t.uint8 = 0
    cmd: LowCmd = None
    b: t.uint8 = 0
    c: t.uint16 = 0
    state: LowState = None
    d: t.uint8 = 0
    cmds: t.array[LowCmd, 2] = None


def test_nested_at_other_offsets_matches_stock(ts):
    rng = random.Random(3)
    w = Wrapper(a=1, cmd=random_pair(ts, 'unitree_hg/msg/LowCmd', 1)[0], b=2, c=0xBEEF,
                state=random_pair(ts, 'unitree_hg/msg/LowState', 2)[0], d=rng.randint(0, 255),
                cmds=[random_pair(ts, 'unitree_hg/msg/LowCmd', s)[0] for s in (3, 4)])
    for use_v2, endianness in VARIANTS:
        kw = {'use_version_2': use_v2, 'endianness': endianness}
        data = w.serialize(**kw)
        with stock_machines(LowCmd, LowState):
            ref = w.serialize(**kw)
            ref_back = Wrapper.deserialize(ref)
        assert data == ref, (use_v2, endianness)
        assert first_difference(Wrapper.deserialize(data), ref_back) is None
    # The wrapper put LowCmd at payload offset 1 and LowState at 4 or 8: layouts got compiled.
    assert len(LowCmd.__idl__.v1_machine._compiled) >= 2


# --- inputs the stock machines accept, errors they raise ------------------------------------

def test_numpy_and_tuple_inputs_serialise_like_stock():
    cmd = LowCmd(reserve=np.array([1, 2, 3, 4], dtype=np.uint32), crc=np.uint32(9))
    cmd.motor_cmd[3] = MotorCmd(mode=np.uint8(4), q=np.float64(0.25), dq=np.float32(1.5))
    assert cmd.serialize() == stock_serialize(cmd)
    state = LowState(version=(1, 2), wireless_remote=np.arange(40, dtype=np.uint8),
                     imu_state=IMUState(quaternion=np.array([1.0, 0, 0, 0])))
    state.motor_state[5] = MotorState(temperature=np.array([3, -4], dtype=np.int16),
                                      reserve=(1, 2, 3, 4))
    expected = LowState(version=[1, 2], wireless_remote=bytes(range(40)),
                        imu_state=IMUState(quaternion=[1.0, 0.0, 0.0, 0.0]))
    expected.motor_state[5] = MotorState(temperature=[3, -4], reserve=[1, 2, 3, 4])
    assert state.serialize() == stock_serialize(expected)


@pytest.mark.parametrize('mutate', [
    lambda c: c.motor_cmd.pop(),                              # 34 motors
    lambda c: c.motor_cmd.append(MotorCmd()),                 # 36 motors
    lambda c: setattr(c.motor_cmd[2], 'mode', 256),           # uint8 overflow
    lambda c: setattr(c.motor_cmd[2], 'q', 'x'),              # not a number
    lambda c: setattr(c, 'reserve', [0, 0, 0]),               # short array
    lambda c: setattr(c.motor_cmd[2], 'kp', 1e39),            # float32 overflow
])
def test_bad_lowcmd_fails_like_stock(mutate):
    cmd = LowCmd()
    mutate(cmd)
    with pytest.raises(Exception) as ours:
        cmd.serialize()
    with pytest.raises(Exception) as stock:
        stock_serialize(cmd)
    assert type(ours.value) is type(stock.value)
    assert str(ours.value) == str(stock.value)


@pytest.mark.parametrize('mutate', [
    lambda s: setattr(s.motor_state[0], 'temperature', [1, 2, 3]),
    lambda s: (setattr(s.motor_state[0], 'temperature', [1, 2, 3]),
               setattr(s.motor_state[1], 'reserve', [1, 2, 3])),  # counts add up: still an error
    lambda s: setattr(s, 'wireless_remote', bytes(39)),
    lambda s: setattr(s.imu_state, 'temperature', 40000),
])
def test_bad_lowstate_fails(mutate):
    state = LowState()
    mutate(state)
    with pytest.raises(Exception):  # noqa: B017 — cyclonedds raises a bare Exception
        state.serialize()


def test_truncated_data_fails_like_stock():
    data = LowState().serialize()[:-8]
    with pytest.raises(Exception) as ours:
        LowState.deserialize(data)
    with pytest.raises(Exception) as stock:
        stock_deserialize(LowState, data)
    assert type(ours.value) is type(stock.value)


# --- round trip and CRC ----------------------------------------------------------------------

def test_round_trip_keeps_crc_valid(ts):
    rng = np.random.default_rng(0)
    for seed in range(10):
        q, dq, tau, kp, kd = rng.normal(size=(5, 35))
        cmd = cv.lowcmd_msg(dds_type, 3, q, dq, tau, kp, kd, rng.integers(0, 2, 35))
        assert lowcmd_crc_ok(cmd)
        back = LowCmd.deserialize(cmd.serialize())
        assert lowcmd_crc_ok(back)  # the CRC is over float32 values, which survive exactly
        assert same_value(back, LowCmd.deserialize(back.serialize()))
        state = cv.lowstate_msg(dds_type, seed, 1, q, dq, tau)
        back = LowState.deserialize(state.serialize())
        assert lowstate_crc_ok(back) and back.crc == state.crc
        random_state = random_pair(ts, 'unitree_hg/msg/LowState', seed)[0]
        random_state.crc = lowstate_crc(random_state)
        assert lowstate_crc_ok(LowState.deserialize(random_state.serialize()))


def test_deserialised_objects_are_independent():
    back = LowState.deserialize(LowState().serialize())
    assert back.motor_state[0] is not back.motor_state[1]
    assert back.motor_state[0].reserve is not back.motor_state[1].reserve
    back.motor_state[0].reserve[0] = 5
    assert back.motor_state[1].reserve[0] == 0
    assert back.wireless_remote == bytes(40) and type(back.wireless_remote) is bytes


def test_sample_value_has_distinct_values():
    s = sample_value(LowState)
    assert len({m.q for m in s.motor_state}) == 35
    assert s.serialize() == stock_serialize(s)


# --- convert and unitree_crc: same results as the previous implementations ------------------

def old_lowcmd_arrays(msg):
    motors = list(msg.motor_cmd)
    out = {name: np.array([getattr(m, name) for m in motors], dtype=np.float64)
           for name in ('q', 'dq', 'tau', 'kp', 'kd')}
    out['mode'] = np.array([m.mode for m in motors], dtype=np.uint8)
    out['mode_pr'] = int(msg.mode_pr)
    out['mode_machine'] = int(msg.mode_machine)
    return out


def old_lowcmd_msg(msg_type, mode_machine, q, dq, tau, kp, kd, mode, mode_pr=0):
    motor_cls = msg_type('unitree_hg/msg/MotorCmd')
    cols = [np.asarray(a, dtype=np.float64).reshape(35) for a in (q, dq, tau, kp, kd)]
    modes = np.asarray(mode).reshape(35)
    motors = [motor_cls(mode=int(modes[i]), q=float(cols[0][i]), dq=float(cols[1][i]),
                        tau=float(cols[2][i]), kp=float(cols[3][i]), kd=float(cols[4][i]))
              for i in range(35)]
    msg = msg_type('unitree_hg/msg/LowCmd')(mode_pr=mode_pr, mode_machine=mode_machine,
                                            motor_cmd=motors)
    return stamp_lowcmd_crc(msg)


def old_lowstate_msg(msg_type, tick, mode_machine, q, dq, tau_est,
                     quaternion_wxyz=(1.0, 0.0, 0.0, 0.0), gyroscope=(0.0, 0.0, 0.0),
                     accelerometer=(0.0, 0.0, 9.81), mode_pr=0):
    state_cls = msg_type('unitree_hg/msg/MotorState')
    cols = [np.asarray(a, dtype=np.float64).reshape(35) for a in (q, dq, tau_est)]
    motors = [state_cls(mode=1, q=float(cols[0][i]), dq=float(cols[1][i]),
                        tau_est=float(cols[2][i])) for i in range(35)]
    floats = lambda v: np.asarray(v, dtype=np.float64).reshape(-1).tolist()  # noqa: E731
    imu = msg_type('unitree_hg/msg/IMUState')(
        quaternion=floats(quaternion_wxyz), gyroscope=floats(gyroscope),
        accelerometer=floats(accelerometer), rpy=[0.0, 0.0, 0.0])
    msg = msg_type('unitree_hg/msg/LowState')(mode_pr=mode_pr, mode_machine=mode_machine,
                                              tick=int(tick) & 0xFFFFFFFF, imu_state=imu,
                                              motor_state=motors)
    msg.crc = lowstate_crc(msg)
    return msg


def old_lowstate_arrays(msg):
    motors = list(msg.motor_state)
    out = {name: np.array([getattr(m, name) for m in motors], dtype=np.float64)
           for name in ('q', 'dq', 'tau_est')}
    out['tick'] = int(msg.tick)
    out['mode_machine'] = int(msg.mode_machine)
    return out


def assert_same_arrays(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert type(a[k]) is type(b[k]) and a[k] == b[k], k


@pytest.mark.parametrize('mode', [
    lambda rng: rng.integers(0, 2, 35).astype(np.uint8),
    lambda rng: rng.integers(0, 2, 35),                       # int64
    lambda rng: rng.integers(0, 2, 35).astype(np.float64),    # floats: int() truncates
    lambda rng: rng.integers(0, 2, 35).astype(bool),
    lambda rng: [1] * 35,
])
def test_convert_lowcmd_same_as_before(mode):
    rng = np.random.default_rng(1)
    for _ in range(5):
        cols = list(rng.normal(size=(5, 35)))
        cols[1] = list(cols[1])                                # lists accepted too
        m = mode(rng)
        new = cv.lowcmd_msg(dds_type, 5, *cols, m, mode_pr=1)
        old = old_lowcmd_msg(dds_type, 5, *cols, m, mode_pr=1)
        assert first_difference(new, old) is None
        assert_same_arrays(cv.lowcmd_arrays(new), old_lowcmd_arrays(new))
        back = LowCmd.deserialize(new.serialize())
        assert_same_arrays(cv.lowcmd_arrays(back), old_lowcmd_arrays(back))


def test_convert_lowstate_same_as_before():
    rng = np.random.default_rng(2)
    for tick in (0, 7, 2**32 + 3):
        q, dq, tau = rng.normal(size=(3, 35))
        new = cv.lowstate_msg(dds_type, tick, 1, q, dq, tau, gyroscope=[0.1, 0.2, 0.3])
        old = old_lowstate_msg(dds_type, tick, 1, q, dq, tau, gyroscope=[0.1, 0.2, 0.3])
        assert first_difference(new, old) is None
        back = LowState.deserialize(new.serialize())
        assert_same_arrays(cv.lowstate_arrays(back), old_lowstate_arrays(back))


def test_convert_arrays_accept_rclpy_like_messages():
    """rclpy messages are not our dataclasses: plain attribute objects must still work."""
    rng = np.random.default_rng(4)
    motors = [SimpleNamespace(mode=i % 2, q=rng.normal(), dq=0.0, tau=1.0, kp=2.0, kd=3.0,
                              tau_est=4.0, reserve=0) for i in range(35)]
    cmd = SimpleNamespace(mode_pr=0, mode_machine=2, motor_cmd=motors)
    assert_same_arrays(cv.lowcmd_arrays(cmd), old_lowcmd_arrays(cmd))
    state = SimpleNamespace(tick=np.uint32(4), mode_machine=np.uint8(1), motor_state=motors)
    assert_same_arrays(cv.lowstate_arrays(state), old_lowstate_arrays(state))
    with pytest.raises(cv.MessageError):
        cv.lowcmd_arrays(SimpleNamespace(mode_pr=0, mode_machine=0, motor_cmd=motors[:34]))


def old_pack_lowstate(msg: Any) -> bytes:
    from vidplan_ros.transport.unitree_crc import _LOWSTATE, _u8_bytes
    imu = msg.imu_state
    vals = [*msg.version, msg.mode_pr, msg.mode_machine, msg.tick, *imu.quaternion,
            *imu.gyroscope, *imu.accelerometer, *imu.rpy, imu.temperature]
    for s in msg.motor_state:
        vals += (s.mode, s.q, s.dq, s.ddq, s.tau_est, *s.temperature, s.vol, *s.sensor,
                 s.motorstate, *s.reserve)
    vals.append(_u8_bytes(msg.wireless_remote, 40))
    vals += list(msg.reserve)
    vals.append(msg.crc)
    return _LOWSTATE.pack(*vals)


def old_pack_lowcmd(msg: Any) -> bytes:
    from vidplan_ros.transport.unitree_crc import _LOWCMD
    vals = [msg.mode_pr, msg.mode_machine]
    for m in msg.motor_cmd:
        vals += (m.mode, m.q, m.dq, m.tau, m.kp, m.kd, m.reserve)
    vals += list(msg.reserve)
    vals.append(msg.crc)
    return _LOWCMD.pack(*vals)


def test_pack_same_as_before(ts):
    for seed in range(10):
        cmd = random_pair(ts, 'unitree_hg/msg/LowCmd', seed)[0]
        assert pack_lowcmd(cmd) == old_pack_lowcmd(cmd)
        state = random_pair(ts, 'unitree_hg/msg/LowState', seed)[0]
        assert pack_lowstate(state) == old_pack_lowstate(state)
    # numpy arrays (rclpy messages hold them)
    state.reserve = np.array(state.reserve, dtype=np.uint32)
    state.motor_state[0].temperature = np.array([1, -1], dtype=np.int16)
    state.wireless_remote = np.frombuffer(bytes(range(40)), dtype=np.uint8)
    assert pack_lowstate(state) == old_pack_lowstate(state)
    state.motor_state[0].temperature = [1, 2, 3]
    with pytest.raises((ValueError, struct.error)):
        pack_lowstate(state)
