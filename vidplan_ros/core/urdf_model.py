"""A small, strict URDF reader: the kinematic tree only (links, joints, origins, axes, limits).

ROS-free and dependency-free (``xml.etree``). It reads what forward/inverse kinematics need and
rejects what would make them wrong: unknown joint types, missing links, two parents for a link,
more than one root, cycles, missing limits on revolute/prismatic joints, non-finite numbers, zero
axes and dangling mimic references. Everything else in a URDF (geometry, inertia tensors,
transmissions, ``<gazebo>``/``<mujoco>`` extensions, ``safety_controller``, ``dynamics``) is
ignored, except each link's mass.

:func:`find_urdf` locates the package's URDFs.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.core.paths import urdf_dir

Vec3 = tuple[float, float, float]


JOINT_TYPES = ('revolute', 'continuous', 'prismatic', 'fixed')
MOVABLE_TYPES = ('revolute', 'continuous', 'prismatic')

SHARE_ENV = 'VIDPLAN_SHARE'  # see vidplan_ros.core.paths


class UrdfError(VidplanError, ValueError):
    """The URDF is malformed or uses something this reader does not support."""


@dataclass(frozen=True)
class JointLimits:
    """Limits of a movable joint. Positions in rad (revolute) or m (prismatic).

    ``lower``/``upper`` are ``-inf``/``inf`` for continuous joints.
    """

    lower: float
    upper: float
    effort: float
    velocity: float


@dataclass(frozen=True)
class Mimic:
    """``q_this = multiplier * q_joint + offset``."""

    joint: str
    multiplier: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class UrdfJoint:
    """One URDF joint. ``axis`` is a unit vector in the joint frame (ignored for fixed joints)."""

    name: str
    type: str
    parent: str
    child: str
    origin_xyz: Vec3
    origin_rpy: Vec3
    axis: Vec3
    limits: JointLimits | None
    mimic: Mimic | None

    @property
    def is_movable(self) -> bool:
        return self.type in MOVABLE_TYPES


@dataclass(frozen=True)
class UrdfLink:
    """One URDF link; ``mass_kg`` is None when the link has no ``<inertial>``."""

    name: str
    mass_kg: float | None


@dataclass(frozen=True)
class UrdfModel:
    """A parsed, validated kinematic tree. Use :func:`parse_urdf` to build one."""

    name: str
    root: str
    links: Mapping[str, UrdfLink]
    joints: Mapping[str, UrdfJoint]
    source: Path | None = None
    _by_child: Mapping[str, UrdfJoint] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_child = MappingProxyType({j.child: j for j in self.joints.values()})
        object.__setattr__(self, '_by_child', by_child)

    def parent_joint(self, link: str) -> UrdfJoint | None:
        """The joint whose child is ``link`` (None for the root)."""
        self._check_link(link)
        return self._by_child.get(link)

    def path(self, root_link: str, tip_link: str) -> tuple[UrdfJoint, ...]:
        """Joints from ``root_link`` down to ``tip_link``, in order from the root side.

        Raises:
            UrdfError: a link is unknown or ``tip_link`` is not below ``root_link``.
        """
        self._check_link(root_link)
        self._check_link(tip_link)
        joints = []
        link = tip_link
        while link != root_link:
            joint = self._by_child.get(link)
            if joint is None:
                raise UrdfError(
                    f'link {tip_link!r} is not below {root_link!r} in {self.name!r}; pick a root '
                    f'that is an ancestor of the tip (the tree root is {self.root!r})')
            joints.append(joint)
            link = joint.parent
        return tuple(reversed(joints))

    def movable_joint_names(self) -> tuple[str, ...]:
        """Names of all non-fixed joints, in file order."""
        return tuple(name for name, j in self.joints.items() if j.is_movable)

    def _check_link(self, link: str) -> None:
        if link not in self.links:
            raise UrdfError(f'no link {link!r} in {self.name!r}; links are: '
                            f'{", ".join(sorted(self.links))}')


def _floats(text: str | None, count: int, default: tuple[float, ...],
            what: str) -> tuple[float, ...]:
    if text is None:
        return default
    try:
        values = tuple(float(v) for v in text.split())
    except ValueError:
        raise UrdfError(f'{what}: expected {count} numbers, got {text!r}') from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise UrdfError(f'{what}: expected {count} finite numbers, got {text!r}')
    return values


def _float_attr(elem: ET.Element, attr: str, what: str, default: float | None = None) -> float:
    text = elem.get(attr)
    if text is None:
        if default is None:
            raise UrdfError(f'{what}: missing required attribute {attr!r}')
        return default
    return _floats(text, 1, (default or 0.0,), f'{what} {attr}')[0]


def _parse_link(elem: ET.Element) -> UrdfLink:
    name = elem.get('name')
    if not name:
        raise UrdfError('<link> without a name')
    mass = None
    inertial = elem.find('inertial')
    if inertial is not None:
        mass_elem = inertial.find('mass')
        if mass_elem is None:
            raise UrdfError(f'link {name!r}: <inertial> without <mass>')
        mass = _float_attr(mass_elem, 'value', f'link {name!r} mass')
        if mass < 0.0:
            raise UrdfError(f'link {name!r}: negative mass {mass}')
    return UrdfLink(name=name, mass_kg=mass)


def _parse_joint(elem: ET.Element) -> UrdfJoint:
    name = elem.get('name')
    if not name:
        raise UrdfError('<joint> without a name')
    what = f'joint {name!r}'
    jtype = elem.get('type')
    if jtype not in JOINT_TYPES:
        raise UrdfError(f'{what}: type {jtype!r} is not supported; use one of {JOINT_TYPES}')
    links = []
    for tag in ('parent', 'child'):
        found = elem.findall(tag)
        if len(found) != 1 or not found[0].get('link'):
            raise UrdfError(f'{what}: needs exactly one <{tag} link="..."/>')
        links.append(found[0].get('link'))
    origin = elem.find('origin')
    zero = (0.0, 0.0, 0.0)
    xyz = _floats(None if origin is None else origin.get('xyz'), 3, zero, f'{what} origin xyz')
    rpy = _floats(None if origin is None else origin.get('rpy'), 3, zero, f'{what} origin rpy')
    axis_elem = elem.find('axis')
    axis = _floats(None if axis_elem is None else axis_elem.get('xyz'), 3, (1.0, 0.0, 0.0),
                   f'{what} axis')  # the URDF default axis is x
    norm = math.sqrt(sum(a * a for a in axis))
    if jtype != 'fixed':
        if norm < 1e-9:
            raise UrdfError(f'{what}: axis must be non-zero')
        axis = tuple(a / norm for a in axis)
    limits = None
    limit_elem = elem.find('limit')
    if jtype in ('revolute', 'prismatic'):
        if limit_elem is None:
            raise UrdfError(f'{what}: a {jtype} joint needs <limit lower upper effort velocity>')
        lower = _float_attr(limit_elem, 'lower', f'{what} limit', 0.0)
        upper = _float_attr(limit_elem, 'upper', f'{what} limit', 0.0)
        if lower > upper:
            raise UrdfError(f'{what}: limit lower {lower} > upper {upper}')
        limits = JointLimits(lower, upper, _float_attr(limit_elem, 'effort', f'{what} limit'),
                             _float_attr(limit_elem, 'velocity', f'{what} limit'))
    elif jtype == 'continuous':
        effort = velocity = math.inf
        if limit_elem is not None:
            effort = _float_attr(limit_elem, 'effort', f'{what} limit', math.inf)
            velocity = _float_attr(limit_elem, 'velocity', f'{what} limit', math.inf)
        limits = JointLimits(-math.inf, math.inf, effort, velocity)
    mimic = None
    mimic_elem = elem.find('mimic')
    if mimic_elem is not None and jtype != 'fixed':
        if not mimic_elem.get('joint'):
            raise UrdfError(f'{what}: <mimic> without joint=')
        mimic = Mimic(mimic_elem.get('joint'),
                      _float_attr(mimic_elem, 'multiplier', f'{what} mimic', 1.0),
                      _float_attr(mimic_elem, 'offset', f'{what} mimic', 0.0))
    return UrdfJoint(name, jtype, links[0], links[1], xyz, rpy,  # type: ignore[arg-type]
                     axis, limits, mimic)


def parse_urdf_string(xml_text: str, source: Path | None = None) -> UrdfModel:
    """Parse and validate URDF text. See :func:`parse_urdf`."""
    where = f' ({source})' if source else ''
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise UrdfError(f'not well-formed XML{where}: {exc}') from None
    if root.tag != 'robot' or not root.get('name'):
        raise UrdfError(f'the top element must be <robot name="...">{where}')
    links: dict = {}
    for elem in root.findall('link'):
        link = _parse_link(elem)
        if link.name in links:
            raise UrdfError(f'duplicate link {link.name!r}{where}')
        links[link.name] = link
    joints: dict = {}
    children: dict = {}
    for elem in root.findall('joint'):
        joint = _parse_joint(elem)
        if joint.name in joints:
            raise UrdfError(f'duplicate joint {joint.name!r}{where}')
        for link in (joint.parent, joint.child):
            if link not in links:
                raise UrdfError(f'joint {joint.name!r} refers to unknown link {link!r}{where}')
        if joint.child in children:
            raise UrdfError(f'link {joint.child!r} is the child of both {children[joint.child]!r} '
                            f'and {joint.name!r}{where}')
        children[joint.child] = joint.name
        joints[joint.name] = joint
    if not links:
        raise UrdfError(f'no links{where}')
    roots = [name for name in links if name not in children]
    if len(roots) != 1:
        found = roots or 'none (a cycle)'
        raise UrdfError(f'expected exactly one root link, found {found}{where}')
    # Every link must hang from the root (this also rules out cycles).
    by_parent: dict = {}
    for joint in joints.values():
        by_parent.setdefault(joint.parent, []).append(joint.child)
    seen, stack = set(), [roots[0]]
    while stack:
        link = stack.pop()
        seen.add(link)
        stack.extend(by_parent.get(link, ()))
    if len(seen) != len(links):
        raise UrdfError(f'links not connected to root {roots[0]!r} (cycle?): '
                        f'{sorted(set(links) - seen)}{where}')
    for joint in joints.values():
        if joint.mimic is None:
            continue
        master = joints.get(joint.mimic.joint)
        if master is None or not master.is_movable or master.name == joint.name:
            raise UrdfError(f'joint {joint.name!r} mimics {joint.mimic.joint!r}, which is not '
                            f'another movable joint{where}')
        if master.mimic is not None:
            raise UrdfError(f'joint {joint.name!r} mimics {master.name!r}, which itself mimics '
                            f'{master.mimic.joint!r}; point it at the driving joint{where}')
    return UrdfModel(root.get('name'), roots[0], MappingProxyType(links),  # type: ignore[arg-type]
                     MappingProxyType(joints), source)


def parse_urdf(source: str | Path) -> UrdfModel:
    """Parse a URDF file (a path) or URDF text (a string starting with ``<``).

    Raises:
        UrdfError: malformed or unsupported content; FileNotFoundError for a missing file.
    """
    if isinstance(source, str) and source.lstrip().startswith('<'):
        return parse_urdf_string(source)
    path = Path(source)
    return parse_urdf_string(path.read_text(encoding='utf-8'), source=path.resolve())


def find_urdf(filename: str) -> Path:
    """Path of ``filename`` in the package's ``urdf/`` directory.

    The directory is :func:`vidplan_ros.core.paths.urdf_dir`: ``$VIDPLAN_SHARE/urdf`` when that
    variable is set, else the repository's ``urdf/``, else the installed package share.
    """
    path = urdf_dir() / filename
    if not path.is_file():
        raise FileNotFoundError(f'{filename!r} not found in {path.parent}; set {SHARE_ENV} to the '
                                f'directory that contains urdf/{filename}')
    return path
