"""dds_msgs serialise byte-for-byte like ROS 2 (rosbags Humble typestore as the reference)."""

import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dds_msg_random import (first_difference, make_typestore, random_pair,  # noqa: E402
                            to_ros, zero_values)

from vidplan_ros.transport.dds_msgs import (DDS_TYPES, UnknownRosTypeError,  # noqa: E402
                                            dds_type, dds_type_name)
from vidplan_ros.transport.dds_msgs._octets import FixedOctetsMachine, OctetsMachine  # noqa: E402
from vidplan_ros.transport.dds_msgs.diagnostic_msgs import DiagnosticStatus  # noqa: E402
from vidplan_ros.transport.dds_msgs.sensor_msgs import (CameraInfo, CompressedImage,  # noqa: E402
                                                        Image)
from vidplan_ros.transport.dds_msgs.unitree_hg import LowCmd, LowState  # noqa: E402
from vidplan_ros.transport.unitree_crc import pack_lowcmd, pack_lowstate  # noqa: E402

SEEDS = range(20)
XCDR1_LE_HEADER = b'\x00\x01\x00\x00'
TYPE_NAMES = sorted(DDS_TYPES)
EXPECTED = {
    'builtin_interfaces': {'Time', 'Duration'},
    'std_msgs': {'Header', 'Bool', 'MultiArrayDimension', 'MultiArrayLayout',
                 'Float64MultiArray'},
    'sensor_msgs': {'Image', 'CompressedImage', 'RegionOfInterest', 'CameraInfo', 'JointState'},
    'trajectory_msgs': {'JointTrajectoryPoint', 'JointTrajectory'},
    'diagnostic_msgs': {'KeyValue', 'DiagnosticStatus', 'DiagnosticArray'},
    'rosgraph_msgs': {'Clock'},
    'unitree_hg': {'MotorCmd', 'MotorState', 'IMUState', 'LowCmd', 'LowState'},
}


@pytest.fixture(scope='module')
def ts():
    return make_typestore()


def test_registry_is_complete():
    expected = {f'{pkg}/msg/{n}' for pkg, names in EXPECTED.items() for n in names}
    assert set(DDS_TYPES) == expected


@pytest.mark.parametrize('typename', TYPE_NAMES)
def test_dds_typename_and_class_name(typename):
    cls = DDS_TYPES[typename]
    pkg, _, name = typename.split('/')
    assert cls.__idl_typename__ == f'{pkg}::msg::dds_::{name}_'
    assert dds_type_name(typename) == cls.__idl_typename__
    assert cls.__name__ == name
    assert dds_type(typename) is cls


def test_dds_type_name_rule():
    assert dds_type_name('sensor_msgs/msg/Image') == 'sensor_msgs::msg::dds_::Image_'
    assert dds_type_name('unitree_hg/msg/LowCmd') == 'unitree_hg::msg::dds_::LowCmd_'
    with pytest.raises(ValueError):
        dds_type_name('Image')


def test_unknown_type_lists_known_names():
    with pytest.raises(KeyError) as err:
        dds_type('geometry_msgs/msg/Twist')
    assert isinstance(err.value, UnknownRosTypeError)
    text = str(err.value)
    assert 'geometry_msgs/msg/Twist' in text and 'sensor_msgs/msg/Image' in text


@pytest.mark.parametrize('typename', TYPE_NAMES)
def test_field_names_and_order_match_ros(ts, typename):
    ours = [f.name for f in fields(DDS_TYPES[typename])]
    assert ours == [name for name, _ in ts.fielddefs[typename][1]]


@pytest.mark.parametrize('typename', TYPE_NAMES)
def test_default_construction_matches_ros_zero_message(ts, typename):
    ours = DDS_TYPES[typename]()
    ref = to_ros(ts, typename, zero_values(ts, typename))
    data = ours.serialize()
    assert data == bytes(ts.serialize_cdr(ref, typename))
    # Two default instances must not share mutable members.
    other = DDS_TYPES[typename]()
    for f in fields(ours):
        value = getattr(ours, f.name)
        if isinstance(value, (list, dict)) or hasattr(value, '__dataclass_fields__'):
            assert getattr(other, f.name) is not value, f.name


@pytest.mark.parametrize('typename', TYPE_NAMES)
def test_cdr_bytes_equal_rosbags(ts, typename):
    cls = DDS_TYPES[typename]
    for seed in SEEDS:
        ours, ref = random_pair(ts, typename, seed)
        data = ours.serialize()
        expected = bytes(ts.serialize_cdr(ref, typename))
        assert data[:4] == XCDR1_LE_HEADER
        assert data == expected, f'{typename} seed {seed}: CDR differs from rosbags'
        back = cls.deserialize(expected)
        diff = first_difference(ours, back)
        assert diff is None, f'{typename} seed {seed}: {diff}'
        assert back.serialize() == expected


def test_fixed_arrays_default_length():
    info = CameraInfo()
    assert (len(info.k), len(info.r), len(info.p)) == (9, 9, 12)
    cmd = LowCmd()
    assert len(cmd.motor_cmd) == 35 and len(cmd.reserve) == 4
    assert cmd.motor_cmd[0] is not cmd.motor_cmd[1]
    state = LowState()
    assert len(state.motor_state) == 35 and state.wireless_remote == bytes(40)


@pytest.mark.parametrize('typename', TYPE_NAMES)
def test_xtypes_type_object_builds(typename):
    """Creating a Topic needs the XTypes type object; cyclonedds cannot build one for `bytes`."""
    assert DDS_TYPES[typename].__idl__.get_type_id() is not None


def test_byte_payloads_use_bytes_fast_path():
    for cls in (Image, CompressedImage):
        idl = cls.__idl__
        idl.populate()
        assert isinstance(idl.v1_machine.members_machines['data'], OctetsMachine)
        assert isinstance(idl.v2_machine.members_machines['data'], OctetsMachine)
        assert cls().data == b''
    img = Image(height=480, width=640, encoding='rgb8', step=1920, data=bytes(range(256)) * 3600)
    back = Image.deserialize(img.serialize())
    assert isinstance(back.data, bytes) and back.data == img.data


def test_wireless_remote_octets():
    idl = LowState.__idl__
    idl.populate()
    assert isinstance(idl.v1_machine.members_machines['wireless_remote'], FixedOctetsMachine)
    remote = np.arange(40, dtype=np.uint8)
    expected = LowState(wireless_remote=remote.tobytes()).serialize()
    assert LowState(wireless_remote=remote).serialize() == expected
    assert LowState(wireless_remote=list(range(40))).serialize() == expected
    assert LowState.deserialize(expected).wireless_remote == remote.tobytes()
    with pytest.raises(Exception):  # noqa: B017 — cyclonedds raises a bare Exception
        LowState(wireless_remote=bytes(39)).serialize()


def test_byte_payloads_accept_numpy_and_buffers():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    expected = Image(data=pixels.tobytes()).serialize()
    for data in (pixels, np.asfortranarray(pixels), memoryview(pixels),
                 bytearray(pixels.tobytes()), list(pixels.tobytes())):
        assert Image(data=data).serialize() == expected
    assert CompressedImage(data=pixels[0]).serialize() == CompressedImage(
        data=pixels[0].tobytes()).serialize()
    with pytest.raises(Exception) as err:
        Image(data=np.zeros(3, dtype=np.float32)).serialize()
    assert isinstance(err.value.__cause__, TypeError)


def test_diagnostic_levels_are_constants_not_fields():
    assert (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR,
            DiagnosticStatus.STALE) == (0, 1, 2, 3)
    assert [f.name for f in fields(DiagnosticStatus)][0] == 'level'
    assert DiagnosticStatus().OK == 0


def test_g1_packed_sizes():
    assert len(pack_lowcmd(LowCmd())) == 1004
    assert len(pack_lowstate(LowState())) == 2092
