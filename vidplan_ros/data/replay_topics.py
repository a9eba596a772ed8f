"""Which topics of a recorded bag feed `vidplan replay`, and how their messages become arrays.

ROS-free. Real bags name their topics as the user's drivers do (`/front/color/image_raw`,
`/camera_wrist/image/compressed`, `/franka/joint_states` ...), so each input is found in this
order: the name the user gave, the name the model set was trained on (its config.json:
`/cameras/<cam>/image_raw`, its command topic; the robot's `/joint_states`), then a topic of
the right type whose name contains the camera's name (raw before compressed, colour before
depth). Joint topics are checked by the joint names of their first message, never by position.
Every choice is printed (`TopicMap.summary`); what cannot be decided is an error that lists what
is needed and what the bag holds, and says which option settles it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.robot_spec import RobotSpec
from vidplan_ros.transport import convert as cv

__all__ = ['IMAGE', 'COMPRESSED', 'JOINT_STATE', 'LOW_STATE', 'TRAJECTORY', 'ReplayError',
           'TopicChoice', 'TopicMap', 'detect_topics', 'frame_rgb', 'joint_positions',
           'parse_pairs', 'reference_chunk']

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
JOINT_STATE = 'sensor_msgs/msg/JointState'
LOW_STATE = 'unitree_hg/msg/LowState'
TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
NOT_COLOUR = ('depth', 'disparity', 'infra', 'ir', 'thermal', 'mask', 'segmentation')
NOT_STATE = ('command', 'cmd', 'target', 'desired', 'goal', 'setpoint')
NO_REFERENCE = 'none'


class ReplayError(VidplanError):
    """A bag or option that `vidplan replay` cannot use; the message says how to fix it."""


@dataclass(frozen=True)
class TopicChoice:
    """One input topic and why it was chosen."""

    topic: str
    ros_type: str
    count: int
    why: str


@dataclass(frozen=True)
class TopicMap:
    """The inputs of a replay: model camera -> image topic (model order), joints, reference."""

    cameras: Mapping[str, TopicChoice]
    joints: TopicChoice
    reference: TopicChoice | None
    joint_map: Mapping[str, str] = field(default_factory=dict)   # bag joint -> robot joint

    @property
    def inputs(self) -> list[str]:
        out = [c.topic for c in self.cameras.values()] + [self.joints.topic]
        return out + ([self.reference.topic] if self.reference else [])

    def summary(self) -> str:
        lines = [f'  camera {cam:10s} <- {c.topic} ({c.ros_type.split("/")[-1]}, {c.count} '
                 f'msgs; {c.why})' for cam, c in self.cameras.items()]
        j = self.joints
        lines.append(f'  joints            <- {j.topic} ({j.ros_type.split("/")[-1]}, {j.count} '
                     f'msgs; {j.why})')
        r = self.reference
        lines.append(f'  recorded command  <- {r.topic} ({r.count} msgs; {r.why})' if r else
                     '  recorded command  <- none (action error against the recorded joint '
                     'motion only)')
        if self.joint_map:
            lines.append(f'  joint names mapped: {dict(self.joint_map)}')
        return '\n'.join(lines)


def parse_pairs(items: Sequence[str], what: str, example: str) -> dict[str, str]:
    """`['a=b', ...]` -> {a: b}; a clear error for anything else."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key.strip() or not value.strip():
            raise ReplayError(f'{what} {item!r}: give NAME=VALUE, e.g. {example}')
        out[key.strip()] = value.strip()
    return out


def _tokens(topic: str) -> list[str]:
    return [t for t in re.split(r'[/_\-.]+', topic.lower()) if t]


def _listing(topics: Mapping[str, Any]) -> str:
    return ', '.join(f'{t} ({i.ros_type or "?"})' for t, i in topics.items()) or 'no topics'


# --- cameras -----------------------------------------------------------------------------------

def _camera_score(camera: str, own: str, topic: str, ros_type: str) -> tuple[int, str] | None:
    """(score, why) of `topic` as the image of `camera`, whose model set was trained on
    topic `own`, or None when it cannot be."""
    if topic == own and ros_type == IMAGE:
        return 100, "the model's topic"
    if topic == own + '/compressed' and ros_type == COMPRESSED:
        return 90, "the model's topic, compressed"
    tokens = _tokens(topic)
    if any(t.startswith(bad) and (bad != 'ir' or t == 'ir') for t in tokens
           for bad in NOT_COLOUR):
        return None
    cam = _tokens(camera)
    if not cam or not all(c in tokens for c in cam):
        return None
    score = 50 + (5 if ros_type == IMAGE else 0)
    score += 3 if {'color', 'colour', 'rgb'} & set(tokens) else 0
    score += 1 if 'raw' in tokens or 'rect' in tokens else 0
    return score, f'name contains {camera!r}'


def _pick_cameras(topics: Mapping[str, Any], cameras: Mapping[str, str],
                  given: Mapping[str, str]) -> dict[str, TopicChoice]:
    images = {t: i for t, i in topics.items() if i.ros_type in (IMAGE, COMPRESSED)}
    unknown = sorted(set(given) - set(cameras))
    if unknown:
        raise ReplayError(f"--camera names {unknown}, but the model's cameras are "
                          f'{list(cameras)}; give CAMERA=/topic for those')
    chosen: dict[str, TopicChoice] = {}
    for cam, topic in given.items():
        info = topics.get(topic)
        if info is None or info.ros_type not in (IMAGE, COMPRESSED):
            raise ReplayError(f'--camera {cam}={topic}: the bag has no Image or CompressedImage '
                              f'topic {topic}; its image topics: {list(images) or "none"}')
        chosen[cam] = TopicChoice(topic, info.ros_type, info.count, 'given')
    for cam in cameras:
        if cam in chosen:
            continue
        taken = {c.topic for c in chosen.values()}
        scored = sorted(((s, why, t) for t, i in images.items() if t not in taken and i.count
                         for s, why in [_camera_score(cam, cameras[cam], t, i.ros_type)
                                        or (0, '')] if s), reverse=True)
        if len(scored) > 1 and scored[0][0] == scored[1][0]:
            tied = [t for s, _, t in scored if s == scored[0][0]]
            raise ReplayError(f'camera {cam!r} could be any of {tied}; choose one with '
                              f'--camera {cam}=<topic>')
        if scored:
            _, why, topic = scored[0]
            chosen[cam] = TopicChoice(topic, images[topic].ros_type, images[topic].count, why)
    missing = [c for c in cameras if c not in chosen]
    left = [t for t, i in images.items() if i.count and t not in {c.topic for c in
                                                                    chosen.values()}]
    if len(missing) == 1 and len(left) == 1:
        info = images[left[0]]
        chosen[missing[0]] = TopicChoice(left[0], info.ros_type, info.count,
                                         'the only image topic left')
        missing = []
    if missing:
        raise ReplayError(
            f'the bag has no image topic for camera(s) {missing}: the model needs '
            f'{list(cameras)}, each as sensor_msgs/msg/Image or CompressedImage (e.g. '
            f'{cameras[missing[0]]}). The bag holds: {_listing(topics)}. Map a topic '
            f'with --camera {missing[0]}=<topic>, or replay with a model for these cameras')
    return {cam: chosen[cam] for cam in cameras}


# --- joints ------------------------------------------------------------------------------------

def _renamed(names: Sequence[str], joint_map: Mapping[str, str], spec: RobotSpec) -> list[str]:
    """A message's joint names as the robot's: the user's map first, then the spec's aliases
    (Isaac's panda_* for fr3_*) when the message uses those."""
    out = [joint_map.get(str(n), str(n)) for n in names]
    aliases = spec.names_in(out)
    if aliases != spec.joint_names:
        alias = dict(zip(aliases, spec.joint_names))
        out = [alias.get(n, n) for n in out]
    return out


def _pick_joints(topics: Mapping[str, Any], spec: RobotSpec, given: str,
                 peek: Callable[[str], Any], joint_map: Mapping[str, str]) -> TopicChoice:
    if given:
        info = topics.get(given)
        if info is None or info.ros_type not in (JOINT_STATE, LOW_STATE):
            raise ReplayError(f'--joints {given}: the bag has no JointState or LowState topic '
                              f'of that name. The bag holds: {_listing(topics)}')
        candidates = [given]
    else:
        own = spec.interfaces.joint_states_topic or '/joint_states'

        def rank(t: str) -> int:
            return 0 if t == own else 1 if 'joint_states' in t else 2

        candidates = sorted((t for t, i in topics.items() if i.ros_type == JOINT_STATE
                             and i.count and not set(_tokens(t)) & set(NOT_STATE)),
                            key=lambda t: (rank(t), t))
    seen: dict[str, list[str]] = {}
    for topic in candidates:
        info = topics[topic]
        if info.ros_type == LOW_STATE:
            if not spec.unitree.motor_indices:
                raise ReplayError(f'--joints {topic} is a unitree_hg LowState, but robot '
                                  f'{spec.name} has no motor slots; give a JointState topic')
            return TopicChoice(topic, LOW_STATE, info.count, 'given')
        names = _renamed(peek(topic).name, joint_map, spec)
        if all(j in names for j in spec.joint_names):
            why = 'given' if given else f'has the {spec.num_joints} joints of {spec.name}'
            return TopicChoice(topic, JOINT_STATE, info.count, why)
        seen[topic] = names
    lowstate = spec.interfaces.lowstate_topic
    if not given and lowstate and topics.get(lowstate, SimpleNamespace(ros_type='')).ros_type \
            == LOW_STATE and spec.unitree.motor_indices:
        return TopicChoice(lowstate, LOW_STATE, topics[lowstate].count,
                           "the robot's LowState (motor slots of the robot spec)")
    if seen:
        has = '; '.join(f'{t} has {n}' for t, n in seen.items())
        raise ReplayError(
            f"the joint names in the bag differ from robot {spec.name}'s: the robot has "
            f'{list(spec.joint_names)}; {has}. Replay with the model set of the robot that '
            'recorded the bag, or, if they are the same joints under other names, map them '
            'with --joint-map BAG_NAME=ROBOT_NAME ...')
    raise ReplayError(
        f'the bag has no joint states: replay needs a sensor_msgs/msg/JointState topic with '
        f'the joints of {spec.name} (e.g. {spec.interfaces.joint_states_topic or "/joint_states"})'
        f'{" or its unitree_hg LowState" if spec.unitree.motor_indices else ""}. The bag '
        f'holds: {_listing(topics)}. Name another topic with --joints <topic>')


def _pick_reference(topics: Mapping[str, Any], spec: RobotSpec, given: str, defaults:
                    Sequence[str], peek: Callable[[str], Any],
                    joint_map: Mapping[str, str]) -> TopicChoice | None:
    if given == NO_REFERENCE:
        return None
    if given:
        info = topics.get(given)
        if info is None or info.ros_type != TRAJECTORY:
            raise ReplayError(f'--reference {given}: the bag has no JointTrajectory topic of '
                              f'that name; its JointTrajectory topics: '
                              f'{[t for t, i in topics.items() if i.ros_type == TRAJECTORY]}')
        return TopicChoice(given, TRAJECTORY, info.count, 'given')
    for topic in defaults:
        info = topics.get(topic)
        if topic and info is not None and info.ros_type == TRAJECTORY and info.count:
            return TopicChoice(topic, TRAJECTORY, info.count,
                               "the model's or the robot's command topic")
    for topic, info in topics.items():
        if info.ros_type == TRAJECTORY and info.count and all(
                j in _renamed(peek(topic).joint_names, joint_map, spec) for j in spec.joint_names):
            return TopicChoice(topic, TRAJECTORY, info.count,
                               f'a JointTrajectory of the {spec.num_joints} joints')
    return None


def detect_topics(topics: Mapping[str, Any], cameras: Mapping[str, str], spec: RobotSpec,
                  peek: Callable[[str], Any], *, camera_topics: Mapping[str, str] | None = None,
                  joints_topic: str = '', reference_topic: str = '',
                  reference_defaults: Sequence[str] = (),
                  joint_map: Mapping[str, str] | None = None) -> TopicMap:
    """The replay inputs among `topics` ({topic: TopicInfo(ros_type, count)}).

    `cameras` maps the model's camera names, in its view order, to the image topics its
    training data came from (models/<name>/config.json); `peek(topic)` returns the first
    message of a topic (joint names are checked on it); `camera_topics`, `joints_topic` and
    `reference_topic` ('none' = no reference) override the detection; `joint_map` renames the
    bag's joints to the robot's. Raises `ReplayError` saying what is missing.
    """
    joint_map = dict(joint_map or {})
    unknown = sorted(set(joint_map.values()) - set(spec.joint_names))
    if unknown:
        raise ReplayError(f'--joint-map maps to {unknown}, which robot {spec.name} does not '
                          f'have; its joints: {list(spec.joint_names)}')
    return TopicMap(cameras=_pick_cameras(topics, cameras, dict(camera_topics or {})),
                    joints=_pick_joints(topics, spec, joints_topic, peek, joint_map),
                    reference=_pick_reference(topics, spec, reference_topic,
                                              reference_defaults, peek, joint_map),
                    joint_map=joint_map)


# --- messages -> arrays ------------------------------------------------------------------------

def frame_rgb(msg: Any, ros_type: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an Image (rgb8, bgr8, mono8, rgba8, bgra8) or a JPEG/PNG
    CompressedImage; `convert.MessageError` for what cannot be a colour picture."""
    return cv.compressed_image_array(msg) if ros_type == COMPRESSED else cv.image_array(msg)


def joint_positions(msg: Any, ros_type: str, spec: RobotSpec,
                    joint_map: Mapping[str, str]) -> np.ndarray:
    """(n,) joint positions, rad, in the robot spec's order (matched by name)."""
    if ros_type == LOW_STATE:
        return np.asarray(cv.lowstate_arrays(msg)['q'])[list(spec.unitree.motor_indices)]
    renamed = SimpleNamespace(name=_renamed(msg.name, joint_map, spec), position=msg.position,
                              velocity=msg.velocity)
    return cv.joint_state_arrays(renamed, spec.joint_names)[0]


def reference_chunk(msg: Any, spec: RobotSpec, joint_map: Mapping[str, str]
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A recorded JointTrajectory as (times from its stamp (T,) s, positions (T, n) rad)."""
    renamed = SimpleNamespace(joint_names=_renamed(msg.joint_names, joint_map, spec),
                              points=msg.points)
    times, pos, _ = cv.joint_trajectory_arrays(renamed, spec.joint_names)
    return times, pos
