"""sensor_msgs/msg types as Cyclone DDS IDL structs (rmw_cyclonedds names).

``Image.data`` and ``CompressedImage.data`` (ROS ``uint8[]``) are received as ``bytes`` and
may be sent as bytes, memoryview or a numpy uint8 array of any shape (see ``_octets``).
"""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from vidplan_ros.transport.dds_msgs._octets import use_octet_machines
from vidplan_ros.transport.dds_msgs.std_msgs import Header


@dataclass
class Image(IdlStruct, typename='sensor_msgs::msg::dds_::Image_'):
    header: Header = field(default_factory=Header)
    height: t.uint32 = 0
    width: t.uint32 = 0
    encoding: str = ''
    is_bigendian: t.uint8 = 0
    step: t.uint32 = 0
    data: t.sequence[t.uint8] = b''


@dataclass
class CompressedImage(IdlStruct, typename='sensor_msgs::msg::dds_::CompressedImage_'):
    header: Header = field(default_factory=Header)
    format: str = ''
    data: t.sequence[t.uint8] = b''


@dataclass
class RegionOfInterest(IdlStruct, typename='sensor_msgs::msg::dds_::RegionOfInterest_'):
    x_offset: t.uint32 = 0
    y_offset: t.uint32 = 0
    height: t.uint32 = 0
    width: t.uint32 = 0
    do_rectify: bool = False


@dataclass
class CameraInfo(IdlStruct, typename='sensor_msgs::msg::dds_::CameraInfo_'):
    header: Header = field(default_factory=Header)
    height: t.uint32 = 0
    width: t.uint32 = 0
    distortion_model: str = ''
    d: t.sequence[t.float64] = field(default_factory=list)
    k: t.array[t.float64, 9] = field(default_factory=lambda: [0.0] * 9)
    r: t.array[t.float64, 9] = field(default_factory=lambda: [0.0] * 9)
    p: t.array[t.float64, 12] = field(default_factory=lambda: [0.0] * 12)
    binning_x: t.uint32 = 0
    binning_y: t.uint32 = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)


@dataclass
class JointState(IdlStruct, typename='sensor_msgs::msg::dds_::JointState_'):
    header: Header = field(default_factory=Header)
    name: t.sequence[str] = field(default_factory=list)
    position: t.sequence[t.float64] = field(default_factory=list)
    velocity: t.sequence[t.float64] = field(default_factory=list)
    effort: t.sequence[t.float64] = field(default_factory=list)


use_octet_machines(Image, 'data')
use_octet_machines(CompressedImage, 'data')
