"""Test helpers: random ROS messages built from the rosbags Humble field definitions.

One random value tree per message drives both a rosbags message (reference CDR) and our
vidplan_ros.transport.dds_msgs instance. unitree_hg is registered from .msg text written here
(from robots.md section 2.2), independent of the dds_msgs module.
"""

import math
import random
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from rosbags.typesys.base import Nodetype

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from vidplan_ros.transport.dds_msgs import DDS_TYPES  # noqa: E402

UNITREE_HG_MSGS = {
    'MotorCmd': ['uint8 mode', 'float32 q', 'float32 dq', 'float32 tau', 'float32 kp',
                 'float32 kd', 'uint32 reserve'],
    'MotorState': ['uint8 mode', 'float32 q', 'float32 dq', 'float32 ddq', 'float32 tau_est',
                   'int16[2] temperature', 'float32 vol', 'uint32[2] sensor', 'uint32 motorstate',
                   'uint32[4] reserve'],
    'IMUState': ['float32[4] quaternion', 'float32[3] gyroscope', 'float32[3] accelerometer',
                 'float32[3] rpy', 'int16 temperature'],
    'LowCmd': ['uint8 mode_pr', 'uint8 mode_machine', 'MotorCmd[35] motor_cmd',
               'uint32[4] reserve', 'uint32 crc'],
    'LowState': ['uint32[2] version', 'uint8 mode_pr', 'uint8 mode_machine', 'uint32 tick',
                 'IMUState imu_state', 'MotorState[35] motor_state', 'uint8[40] wireless_remote',
                 'uint32[4] reserve', 'uint32 crc'],
}


def make_typestore():
    """A fresh ROS 2 Humble typestore with unitree_hg registered (the shared one is untouched)."""
    ts = get_typestore(Stores.ROS2_HUMBLE)
    types: dict = {}
    for name, lines in UNITREE_HG_MSGS.items():
        types.update(get_types_from_msg('\n'.join(lines), f'unitree_hg/msg/{name}'))
    ts.register(types)
    return ts


_INT_RANGES = {
    'int8': (-2**7, 2**7 - 1), 'uint8': (0, 2**8 - 1), 'byte': (0, 255), 'char': (0, 255),
    'int16': (-2**15, 2**15 - 1), 'uint16': (0, 2**16 - 1),
    'int32': (-2**31, 2**31 - 1), 'uint32': (0, 2**32 - 1),
    'int64': (-2**63, 2**63 - 1), 'uint64': (0, 2**64 - 1),
}
_BYTE_TYPES = ('uint8', 'byte', 'char')
_NP_DTYPES = {
    'bool': np.bool_, 'int8': np.int8, 'uint8': np.uint8, 'byte': np.uint8, 'char': np.uint8,
    'int16': np.int16, 'uint16': np.uint16, 'int32': np.int32, 'uint32': np.uint32,
    'int64': np.int64, 'uint64': np.uint64, 'float32': np.float32, 'float64': np.float64,
}
_F64_SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.7976931348623157e308, 5e-324,
                -2.2250738585072014e-308, 1.0]
_F32_SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, 3.4028234663852886e38,
                1.401298464324817e-45, -1.1754943508222875e-38, 1.0]
_STR_PIECES = list('abcxyzABC019 _-/.:') + ['é', 'ß', 'Ω', '日本語', '🤖', '\t', '\n', 'ü']


def _rand_base(rng: random.Random, typ: str) -> Any:
    if typ == 'bool':
        return rng.random() < 0.5
    if typ in _INT_RANGES:
        lo, hi = _INT_RANGES[typ]
        if rng.random() < 0.3:
            return rng.choice([lo, hi, 0])
        return rng.randint(lo, hi)
    if typ == 'float64':
        if rng.random() < 0.3:
            return rng.choice(_F64_SPECIAL)
        return rng.gauss(0.0, 1.0) * 10.0 ** rng.randint(-5, 5)
    if typ == 'float32':
        if rng.random() < 0.3:
            return rng.choice(_F32_SPECIAL)
        return float(np.float32(rng.gauss(0.0, 1.0) * 10.0 ** rng.randint(-5, 5)))
    if typ == 'string':
        return ''.join(rng.choice(_STR_PIECES) for _ in range(rng.choice([0, 1, 3, 7, 12])))
    raise NotImplementedError(f'random value for base type {typ}')


def _seq_len(rng: random.Random, nested: bool) -> int:
    return rng.choice([0, 1, 2, 3] if nested else [0, 0, 1, 2, 3, 5, 9])


def _rand_desc(ts, rng: random.Random, desc: tuple) -> Any:
    kind, arg = desc
    if kind == Nodetype.BASE:
        return _rand_base(rng, arg[0])
    if kind == Nodetype.NAME:
        return random_values(ts, arg, rng)
    sub, count = arg
    if kind == Nodetype.SEQUENCE:
        if sub[0] == Nodetype.BASE and sub[1][0] in _BYTE_TYPES:
            count = rng.choice([0, 1, 3, 17, 64, 1000])
        else:
            count = _seq_len(rng, sub[0] == Nodetype.NAME)
    if sub[0] == Nodetype.BASE and sub[1][0] in _BYTE_TYPES:
        return bytes(rng.getrandbits(8) for _ in range(count))
    return [_rand_desc(ts, rng, sub) for _ in range(count)]


def random_values(ts, typename: str, rng: random.Random) -> dict[str, Any]:
    """Random field values (plain Python; uint8/byte arrays and sequences as bytes)."""
    return {name: _rand_desc(ts, rng, desc) for name, desc in ts.fielddefs[typename][1]}


def _ros_desc(ts, desc: tuple, value: Any) -> Any:
    kind, arg = desc
    if kind == Nodetype.BASE:
        if arg[0] == 'byte' and value > 127:
            return value - 256  # rosbags reads ROS `byte` as int8, ours is octet (uint8)
        return value
    if kind == Nodetype.NAME:
        return to_ros(ts, arg, value)
    sub = arg[0]
    if sub[0] == Nodetype.BASE and sub[1][0] != 'string':
        if isinstance(value, bytes):
            return np.frombuffer(value, dtype=np.uint8).copy()
        return np.array(value, dtype=_NP_DTYPES[sub[1][0]])
    return [_ros_desc(ts, sub, v) for v in value]


def to_ros(ts, typename: str, values: dict[str, Any]) -> Any:
    """The rosbags message for a value tree."""
    kwargs = {name: _ros_desc(ts, desc, values[name])
              for name, desc in ts.fielddefs[typename][1]}
    return ts.types[typename](**kwargs)


def _dds_desc(ts, desc: tuple, value: Any) -> Any:
    kind, arg = desc
    if kind == Nodetype.BASE or isinstance(value, bytes):
        return value
    if kind == Nodetype.NAME:
        return to_dds(ts, arg, value)
    return [_dds_desc(ts, arg[0], v) for v in value]


def to_dds(ts, typename: str, values: dict[str, Any]) -> Any:
    """Our dds_msgs instance for a value tree (field names passed as keywords)."""
    kwargs = {name: _dds_desc(ts, desc, values[name])
              for name, desc in ts.fielddefs[typename][1]}
    return DDS_TYPES[typename](**kwargs)


def _zero_desc(ts, desc: tuple) -> Any:
    kind, arg = desc
    if kind == Nodetype.BASE:
        return {'bool': False, 'string': '', 'float32': 0.0, 'float64': 0.0}.get(arg[0], 0)
    if kind == Nodetype.NAME:
        return zero_values(ts, arg)
    sub, count = arg
    if kind == Nodetype.SEQUENCE:
        count = 0
    if sub[0] == Nodetype.BASE and sub[1][0] in _BYTE_TYPES:
        return bytes(count)
    return [_zero_desc(ts, sub) for _ in range(count)]


def zero_values(ts, typename: str) -> dict[str, Any]:
    """The value tree of a default-constructed ROS message."""
    return {name: _zero_desc(ts, desc) for name, desc in ts.fielddefs[typename][1]}


def random_pair(ts, typename: str, seed: int) -> tuple[Any, Any]:
    """(our dds_msgs instance, rosbags message) holding the same random values."""
    rng = random.Random(f'{typename}:{seed}')
    values = random_values(ts, typename, rng)
    return to_dds(ts, typename, values), to_ros(ts, typename, values)


def first_difference(a: Any, b: Any, path: str = 'msg') -> Optional[str]:
    """None when equal (NaN equals NaN, -0.0 differs from 0.0), else where and how they differ."""
    if is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return f'{path}: type {type(a).__name__} != {type(b).__name__}'
        for f in fields(a):
            diff = first_difference(getattr(a, f.name), getattr(b, f.name), f'{path}.{f.name}')
            if diff:
                return diff
        return None
    if isinstance(a, (bytes, bytearray)) or isinstance(b, (bytes, bytearray)):
        if not isinstance(a, (bytes, bytearray)) or not isinstance(b, (bytes, bytearray)):
            return f'{path}: {type(a).__name__} vs {type(b).__name__}'
        return None if bytes(a) == bytes(b) else f'{path}: bytes differ'
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return f'{path}: length {len(a)} != {len(b)}'
        for i, (x, y) in enumerate(zip(a, b)):
            diff = first_difference(x, y, f'{path}[{i}]')
            if diff:
                return diff
        return None
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, float) or not isinstance(b, float):
            return f'{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})'
        if math.isnan(a) and math.isnan(b):
            return None
        if a == b and math.copysign(1.0, a) == math.copysign(1.0, b):
            return None
        return f'{path}: {a!r} != {b!r}'
    if type(a) is not type(b) or a != b:
        return f'{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})'
    return None
