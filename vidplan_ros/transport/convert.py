"""All message <-> array conversion, for any backend's message classes.

Functions take `msg_type`, a callable mapping `pkg/msg/Name` to a class (`node.msg_type`, or
`dds_type` for bags), so the same code builds rclpy messages and Cyclone DDS structs. Arrays
go out as Python lists (both backends accept them) and come back as numpy arrays. Decoding
checks what it is given and raises `MessageError` saying what was wrong and how to fix it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from vidplan_ros.core import images
from vidplan_ros.core.errors import VidplanError

MsgType = Callable[[str], type]

# encoding -> (channels, numpy dtype); sensor_msgs/image_encodings names.
IMAGE_ENCODINGS = {
    'rgb8': (3, np.uint8), 'bgr8': (3, np.uint8), 'mono8': (1, np.uint8),
    'rgba8': (4, np.uint8), 'bgra8': (4, np.uint8),
    '16UC1': (1, np.uint16), 'mono16': (1, np.uint16), '32FC1': (1, np.float32),
}


class MessageError(VidplanError, ValueError):
    """A message that cannot be used as it is."""


def ns_to_time(msg_type: MsgType, ns: int) -> Any:
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return msg_type('builtin_interfaces/msg/Time')(sec=sec, nanosec=nanosec)


def time_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def duration_from_s(msg_type: MsgType, seconds: float) -> Any:
    ns = int(round(seconds * 1e9))
    sec, nanosec = divmod(ns, 1_000_000_000)
    return msg_type('builtin_interfaces/msg/Duration')(sec=sec, nanosec=nanosec)


def duration_to_s(duration: Any) -> float:
    return int(duration.sec) + int(duration.nanosec) * 1e-9


def header(msg_type: MsgType, stamp_ns: int, frame_id: str = '') -> Any:
    return msg_type('std_msgs/msg/Header')(stamp=ns_to_time(msg_type, stamp_ns),
                                           frame_id=frame_id)


def _floats(values: Any) -> list[float]:
    return np.asarray(values, dtype=np.float64).reshape(-1).tolist()


# --- sensor_msgs/JointState ------------------------------------------------------------------

def joint_state_msg(msg_type: MsgType, stamp_ns: int, names: Sequence[str],
                    position: Any, velocity: Any = (), effort: Any = ()) -> Any:
    return msg_type('sensor_msgs/msg/JointState')(
        header=header(msg_type, stamp_ns), name=list(names), position=_floats(position),
        velocity=_floats(velocity), effort=_floats(effort))


def joint_state_arrays(msg: Any, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(position (n,), velocity (n,)) of joints `names`, matched by name; velocity may be NaN
    where the message has none. Raises `MessageError` on missing joints or bad lengths."""
    msg_names = list(msg.name)
    pos = np.asarray(msg.position, dtype=np.float64)
    vel = np.asarray(msg.velocity, dtype=np.float64)
    if len(pos) != len(msg_names) or len(vel) not in (0, len(msg_names)):
        raise MessageError(f'JointState has {len(msg_names)} names but {len(pos)} positions and '
                           f'{len(vel)} velocities; the publisher must fill them per name')
    where = {n: i for i, n in enumerate(msg_names)}
    missing = [n for n in names if n not in where]
    if missing:
        raise MessageError(f'JointState lacks joints {missing} (has {msg_names}); check the '
                           'robot spec joint names')
    idx = [where[n] for n in names]
    return pos[idx], (vel[idx] if len(vel) else np.full(len(idx), np.nan))


# --- trajectory_msgs/JointTrajectory ---------------------------------------------------------

def joint_trajectory_msg(msg_type: MsgType, stamp_ns: int, names: Sequence[str],
                         times_s: Any, positions: Any, velocities: Any | None = None,
                         accelerations: Any | None = None) -> Any:
    """`positions` (T, n) at `times_s` (T,) from the header stamp; optional (T, n) derivatives."""
    point_cls = msg_type('trajectory_msgs/msg/JointTrajectoryPoint')
    positions = np.asarray(positions, dtype=np.float64)
    points = []
    for k, t in enumerate(np.asarray(times_s, dtype=np.float64)):
        points.append(point_cls(
            positions=_floats(positions[k]),
            velocities=_floats(velocities[k]) if velocities is not None else [],
            accelerations=_floats(accelerations[k]) if accelerations is not None else [],
            effort=[], time_from_start=duration_from_s(msg_type, float(t))))
    return msg_type('trajectory_msgs/msg/JointTrajectory')(
        header=header(msg_type, stamp_ns), joint_names=list(names), points=points)


def joint_trajectory_arrays(msg: Any, names: Sequence[str]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(times_s (T,), positions (T, n), velocities (T, n) or None) for joints `names`.

    Joints are matched by name. Raises `MessageError` for missing joints, ragged or non-finite
    points, or times that do not increase.
    """
    msg_names = list(msg.joint_names)
    where = {n: i for i, n in enumerate(msg_names)}
    missing = [n for n in names if n not in where]
    if missing:
        raise MessageError(f'JointTrajectory lacks joints {missing} (has {msg_names})')
    idx = [where[n] for n in names]
    times, pos, vel = [], [], []
    for k, p in enumerate(msg.points):
        q = np.asarray(p.positions, dtype=np.float64)
        if len(q) != len(msg_names):
            raise MessageError(f'JointTrajectory point {k} has {len(q)} positions for '
                               f'{len(msg_names)} joints')
        v = np.asarray(p.velocities, dtype=np.float64)
        if len(v) not in (0, len(msg_names)):
            raise MessageError(f'JointTrajectory point {k} has {len(v)} velocities for '
                               f'{len(msg_names)} joints')
        times.append(duration_to_s(p.time_from_start))
        pos.append(q[idx])
        vel.append(v[idx] if len(v) else None)
    times_a = np.asarray(times, dtype=np.float64)
    pos_a = np.asarray(pos, dtype=np.float64).reshape(len(times), len(names))
    if not (np.all(np.isfinite(pos_a)) and np.all(np.isfinite(times_a))):
        raise MessageError('JointTrajectory has non-finite positions or times; rejected')
    if np.any(np.diff(times_a) <= 0) or (len(times_a) and times_a[0] < 0):
        raise MessageError(f'JointTrajectory time_from_start must increase from >= 0 '
                           f'(got {times_a.tolist()})')
    vel_a = None
    if vel and all(v is not None for v in vel):
        vel_a = np.asarray(vel, dtype=np.float64)
        if not np.all(np.isfinite(vel_a)):
            raise MessageError('JointTrajectory has non-finite velocities; rejected')
    return times_a, pos_a, vel_a


# --- sensor_msgs/Image, CameraInfo -----------------------------------------------------------

def image_msg(msg_type: MsgType, stamp_ns: int, frame_id: str, pixels: np.ndarray,
              encoding: str = 'rgb8') -> Any:
    """An Image from (H, W, C) or (H, W) pixels whose dtype matches `encoding`."""
    channels, dtype = IMAGE_ENCODINGS[encoding]
    arr = np.ascontiguousarray(pixels, dtype=dtype)
    h, w = arr.shape[:2]
    return msg_type('sensor_msgs/msg/Image')(
        header=header(msg_type, stamp_ns, frame_id), height=h, width=w, encoding=encoding,
        is_bigendian=0, step=w * channels * arr.itemsize, data=arr.tobytes())


def image_array(msg: Any, want: str = 'rgb8') -> np.ndarray:
    """Pixels of an Image as (H, W, 3) uint8 RGB (`want='rgb8'`) or as stored (`want=None`).

    Accepts rgb8, bgr8, mono8, rgba8, bgra8 for RGB output; checks size, step and encoding.
    """
    enc = msg.encoding
    if enc not in IMAGE_ENCODINGS:
        raise MessageError(f'image encoding {enc!r} is not supported; publish one of '
                           f'{sorted(IMAGE_ENCODINGS)}')
    channels, dtype = IMAGE_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * channels * np.dtype(dtype).itemsize
    data = bytes(msg.data)
    if h <= 0 or w <= 0 or step < row or len(data) < step * h:
        raise MessageError(f'image {w}x{h} {enc}: step {step} and {len(data)} data bytes do not '
                           f'hold it (need step >= {row} and {row * h} bytes)')
    rows = np.frombuffer(data, dtype=np.uint8, count=step * h).reshape(h, step)[:, :row]
    pix = rows.copy().view(np.dtype(dtype).newbyteorder('>' if msg.is_bigendian else '<'))
    pix = pix.reshape(h, w, channels).astype(dtype)
    if want is None:
        return pix if channels > 1 else pix[..., 0]
    if want != 'rgb8':
        raise ValueError(f'unsupported output {want!r}')
    try:
        return images.to_rgb8(pix, enc)
    except images.ImageError as exc:
        raise MessageError(str(exc)) from None


def compressed_image_msg(msg_type: MsgType, stamp_ns: int, frame_id: str, pixels: np.ndarray,
                         fmt: str = 'jpeg', quality: int = 90) -> Any:
    """A CompressedImage (JPEG or PNG, through OpenCV) from (H, W, 3) RGB or (H, W) mono uint8.

    `format` is written as image_transport's compressed plugin does: `rgb8; jpeg compressed bgr8`
    (the compressed picture itself has true colours, whatever the wording says).
    """
    arr = np.asarray(pixels)
    encoding = 'mono8' if arr.ndim == 2 else 'rgb8'
    data = images.encode_compressed(arr, fmt, quality)
    compressed = 'mono8' if encoding == 'mono8' else 'bgr8'
    return msg_type('sensor_msgs/msg/CompressedImage')(
        header=header(msg_type, stamp_ns, frame_id),
        format=f'{encoding}; {fmt} compressed {compressed}', data=data)


def compressed_image_array(msg: Any) -> np.ndarray:
    """Pixels of a JPEG or PNG CompressedImage as (H, W, 3) uint8 RGB (`core.images`).

    The picture's own header decides how it decodes (the `format` string is informational);
    mono pictures are repeated into 3 channels, as `image_array` does for mono8. Raises
    `MessageError` for data that are not a complete JPEG/PNG colour or mono picture.
    """
    data = bytes(msg.data)
    if not data:
        raise MessageError(f'CompressedImage ({msg.format!r}) has no data')
    try:
        return images.decode_compressed(data)
    except images.ImageError as exc:
        raise MessageError(f'CompressedImage ({msg.format!r}): {exc}') from None


# --- stamped float tensors (latents, latent video plans) as sensor_msgs/Image 32FC1 ----------

def latent_msg(msg_type: MsgType, stamp_ns: int, tensor: np.ndarray,
               frame_id: str = 'latent') -> Any:
    """A float tensor (..., w) as a 32FC1 Image: width w, height the product of the other dims.

    A latent (V, C, h, w) goes out V*C*h rows high, a video plan (H, V, C, h, w) H*V*C*h rows;
    the receiver restores the shape from its model's config (`latent_array`).
    """
    arr = np.asarray(tensor, dtype=np.float32)
    if arr.ndim < 2 or arr.size == 0:
        raise ValueError(f'latent_msg wants a non-empty (..., w) tensor, got shape {arr.shape}')
    return image_msg(msg_type, stamp_ns, frame_id, arr.reshape(-1, arr.shape[-1]), '32FC1')


def latent_array(msg: Any, shape: Sequence[int]) -> np.ndarray:
    """The float32 tensor of `shape` (..., w) carried by a 32FC1 Image.

    Raises `MessageError` when the encoding is not 32FC1, the image is not prod(shape[:-1])
    rows by shape[-1] columns (a publisher with another model), or a value is not finite.
    """
    shape = tuple(int(d) for d in shape)
    rows, width = int(np.prod(shape[:-1])), shape[-1]
    if msg.encoding != '32FC1':
        raise MessageError(f'a latent must be a 32FC1 Image, got encoding {msg.encoding!r}')
    if (int(msg.height), int(msg.width)) != (rows, width):
        raise MessageError(f'32FC1 image is {msg.height} rows x {msg.width}, but this model '
                           f'needs {rows} x {width} (shape {list(shape)}); run every node with '
                           'the same model set')
    arr = image_array(msg, want=None)
    if not np.all(np.isfinite(arr)):
        raise MessageError(f'latent {list(shape)} has {int((~np.isfinite(arr)).sum())} '
                           'non-finite values; rejected')
    return np.ascontiguousarray(arr, dtype=np.float32).reshape(shape)


def named_values_msg(msg_type: MsgType, names: Sequence[str], values: Any) -> Any:
    """Named floats as a Float64MultiArray: one dimension labelled with the comma-joined
    names (the task state, data.recorder)."""
    vals = _floats(values)
    if len(names) != len(vals) or any(',' in n for n in names):
        raise ValueError(f'named_values_msg: {len(names)} names without commas for '
                         f'{len(vals)} values, got {list(names)}')
    dim = msg_type('std_msgs/msg/MultiArrayDimension')(label=','.join(names), size=len(vals),
                                                       stride=len(vals))
    return msg_type('std_msgs/msg/Float64MultiArray')(
        layout=msg_type('std_msgs/msg/MultiArrayLayout')(dim=[dim]), data=vals)


def named_values_arrays(msg: Any) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, values) of a `named_values_msg`; names x0, x1, ... where the label is not one
    name per value."""
    dims = list(msg.layout.dim)
    values = np.asarray(msg.data, np.float64)
    names = tuple(str(dims[0].label).split(',')) if dims else ()
    if len(names) != len(values):
        names = tuple(f'x{i}' for i in range(len(values)))
    return names, values


def camera_info_msg(msg_type: MsgType, stamp_ns: int, frame_id: str, width: int, height: int,
                    k: np.ndarray) -> Any:
    """A pinhole CameraInfo without distortion from intrinsics `k` (3, 3)."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    p = np.concatenate([k, np.zeros((3, 1))], axis=1)
    return msg_type('sensor_msgs/msg/CameraInfo')(
        header=header(msg_type, stamp_ns, frame_id), height=height, width=width,
        distortion_model='plumb_bob', d=[0.0] * 5, k=_floats(k),
        r=_floats(np.eye(3)), p=_floats(p))


def clock_msg(msg_type: MsgType, ns: int) -> Any:
    return msg_type('rosgraph_msgs/msg/Clock')(clock=ns_to_time(msg_type, ns))


# --- unitree_hg LowCmd / LowState (G1) -------------------------------------------------------

UNITREE_MOTORS = 35


def lowcmd_arrays(msg: Any) -> dict[str, np.ndarray | int]:
    """Per-motor arrays (35,) of a LowCmd: mode, q, dq, tau, kp, kd; plus mode_pr/mode_machine."""
    motors = list(msg.motor_cmd)
    if len(motors) != UNITREE_MOTORS:
        raise MessageError(f'LowCmd has {len(motors)} motor commands, expected {UNITREE_MOTORS}')
    f64 = np.float64
    out: dict[str, np.ndarray | int] = {
        'q': np.array([m.q for m in motors], dtype=f64),
        'dq': np.array([m.dq for m in motors], dtype=f64),
        'tau': np.array([m.tau for m in motors], dtype=f64),
        'kp': np.array([m.kp for m in motors], dtype=f64),
        'kd': np.array([m.kd for m in motors], dtype=f64),
        'mode': np.array([m.mode for m in motors], dtype=np.uint8)}
    out['mode_pr'] = int(msg.mode_pr)
    out['mode_machine'] = int(msg.mode_machine)
    return out


def lowcmd_msg(msg_type: MsgType, mode_machine: int, q: Any, dq: Any, tau: Any, kp: Any,
               kd: Any, mode: Any, mode_pr: int = 0) -> Any:
    """A LowCmd from per-motor (35,) arrays, with its CRC set (unitree_crc)."""
    from vidplan_ros.transport.unitree_crc import stamp_lowcmd_crc
    motor_cls = msg_type('unitree_hg/msg/MotorCmd')
    cols = [np.asarray(a, dtype=np.float64).reshape(UNITREE_MOTORS).tolist()
            for a in (q, dq, tau, kp, kd)]
    modes = np.asarray(mode).reshape(UNITREE_MOTORS)
    # one tolist() per column; int() per value only where mode is not an integer array
    modes = modes.tolist() if modes.dtype.kind in 'iu' else [int(m) for m in modes.tolist()]
    motors = [motor_cls(mode=m, q=a, dq=b, tau=c, kp=d, kd=e)
              for m, a, b, c, d, e in zip(modes, *cols)]
    msg = msg_type('unitree_hg/msg/LowCmd')(mode_pr=mode_pr, mode_machine=mode_machine,
                                            motor_cmd=motors)
    return stamp_lowcmd_crc(msg)


def lowstate_msg(msg_type: MsgType, tick: int, mode_machine: int, q: Any, dq: Any,
                 tau_est: Any, quaternion_wxyz: Any = (1.0, 0.0, 0.0, 0.0),
                 gyroscope: Any = (0.0, 0.0, 0.0), accelerometer: Any = (0.0, 0.0, 9.81),
                 mode_pr: int = 0) -> Any:
    """A LowState from per-motor (35,) arrays and the pelvis IMU, with its CRC set."""
    from vidplan_ros.transport.unitree_crc import lowstate_crc
    state_cls = msg_type('unitree_hg/msg/MotorState')
    cols = [np.asarray(a, dtype=np.float64).reshape(UNITREE_MOTORS).tolist()
            for a in (q, dq, tau_est)]
    motors = [state_cls(mode=1, q=a, dq=b, tau_est=c) for a, b, c in zip(*cols)]
    imu = msg_type('unitree_hg/msg/IMUState')(
        quaternion=_floats(quaternion_wxyz), gyroscope=_floats(gyroscope),
        accelerometer=_floats(accelerometer), rpy=[0.0, 0.0, 0.0])
    msg = msg_type('unitree_hg/msg/LowState')(mode_pr=mode_pr, mode_machine=mode_machine,
                                              tick=int(tick) & 0xFFFFFFFF, imu_state=imu,
                                              motor_state=motors)
    msg.crc = lowstate_crc(msg)
    return msg


def lowstate_arrays(msg: Any) -> dict[str, np.ndarray | int]:
    """Per-motor arrays (35,) of a LowState: q, dq, tau_est; plus tick and mode_machine."""
    motors = list(msg.motor_state)
    if len(motors) != UNITREE_MOTORS:
        raise MessageError(f'LowState has {len(motors)} motor states, expected {UNITREE_MOTORS}')
    f64 = np.float64
    out: dict[str, np.ndarray | int] = {
        'q': np.array([m.q for m in motors], dtype=f64),
        'dq': np.array([m.dq for m in motors], dtype=f64),
        'tau_est': np.array([m.tau_est for m in motors], dtype=f64)}
    out['tick'] = int(msg.tick)
    out['mode_machine'] = int(msg.mode_machine)
    return out
