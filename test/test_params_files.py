"""Every file under config/ is a ROS 2 params file that ROS reads as we do (issue 11).

What ROS accepts, from its own parser and rclpy (checked upstream):
- rcl_yaml_param_parser/src/parse.c (rcl 9.2, Jazzy): a file maps node names (or `/**`) to
  `ros__parameters:`; nested maps below that are dotted names (`limits: {margin: 1}` is
  `limits.margin`); values are bool, int64, double, string or a sequence of one of those;
  "Sequence should be of same type" (no `[0.0, 1]`), no maps inside sequences, no nested
  sequences; a scalar's type comes from its text (unquoted `y`/`no`/`on` are booleans, `1` is an
  integer, `1e-3` a double), and an empty sequence `[]` gets no type at all, so the parameter
  arrives unset (rclcpp#1955).
- rclpy node.py declare_parameter: a parameter declared from a default of one type rejects an
  override of another (InvalidParameterTypeException): `rate_hz: 5` for a double field kills
  the node on ROS, so each file's types must be the declared (dataclass field) types.

The structural checks run everywhere; where rclpy imports (the `ros` extra) every file is also
read by rcl itself (a node with `--params-file`) and must give the same names and types as the
PyYAML reading the dds backend and the tools use.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from vidplan_ros.core.config import check_known_params, read_params_file
from vidplan_ros.core.robot_spec import RobotSpec
from vidplan_ros.nn.model_config import ModelConfig
from vidplan_ros.nodes.executor_node import ExecutorNodeConfig
from vidplan_ros.nodes.grounding_node import GroundingNodeConfig
from vidplan_ros.nodes.perception_node import PerceptionNodeConfig
from vidplan_ros.nodes.planner_node import PlannerNodeConfig

CONFIG = Path(__file__).resolve().parents[1] / 'config'
FILES = sorted(p.relative_to(CONFIG).as_posix() for p in CONFIG.rglob('*')
               if p.is_file() and p.suffix in ('.yaml', '.yml'))

# The config dataclass each file configures (a node's parameters, or the object a tool loads).
CONFIG_CLASS: dict[str, type] = {
    'perception.yaml': PerceptionNodeConfig,
    'planner.yaml': PlannerNodeConfig,
    'grounding.yaml': GroundingNodeConfig,        # the grounding node reads both files
    'grounding_node.yaml': GroundingNodeConfig,
    'executor.yaml': ExecutorNodeConfig,
    **{f'robots/{p.name}': RobotSpec for p in (CONFIG / 'robots').glob('*.yaml')},
    **{f'models/{p.name}': ModelConfig for p in (CONFIG / 'models').glob('*.yaml')},
}
# Files for nodes that are not ours (ros2_control's controller_manager and controllers): the
# structure and value rules still hold, their parameter names are the controllers' business.
FOREIGN = {'franka_arm_controller.yaml', 'gazebo_franka_controllers.yaml'}

_SCALAR = {bool: 'bool', int: 'integer', float: 'double', str: 'string'}


def ros_type_of_value(value: Any, where: str) -> str:
    """The ROS parameter type rcl gives a value PyYAML read; a message for anything else."""
    if isinstance(value, list):
        assert value, (f'{where}: an empty list arrives unset in ROS 2 (rcl parse.c gives it no '
                       'type; rclcpp#1955); delete the line to use the default, or list values')
        kinds = {ros_type_of_value(v, f'{where}[{i}]') for i, v in enumerate(value)}
        assert len(kinds) == 1 and not next(iter(kinds)).endswith('_array'), (
            f'{where}: {value!r} mixes {sorted(kinds)}; a ROS array holds one scalar type '
            '(write every double with a decimal point)')
        return kinds.pop() + '_array'
    assert type(value) in _SCALAR, (
        f'{where}: {value!r} ({type(value).__name__}) is not a ROS parameter value: use a bool, '
        'integer, double, string or a list of one of those')
    return _SCALAR[type(value)]


def ros_type_of_field(ftype: Any) -> str:
    if typing.get_origin(ftype) is tuple:
        return _SCALAR[typing.get_args(ftype)[0]] + '_array'
    return _SCALAR[ftype]


def field_types(cls: type, prefix: str = '') -> dict[str, Any]:
    import dataclasses
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(field_types(hints[f.name], f'{prefix}{f.name}.'))
        else:
            out[prefix + f.name] = hints[f.name]
    return out


def sections(rel: str) -> dict[str, dict[str, Any]]:
    """{node name: flat {dotted name: value}} of a params file, checking its structure."""
    doc = yaml.safe_load((CONFIG / rel).read_text())
    assert isinstance(doc, dict) and doc, f'{rel}: a map of node names to ros__parameters'
    out = {}
    for node, body in doc.items():
        assert isinstance(body, dict) and list(body) == ['ros__parameters'], (
            f"{rel}: {node!r} must hold exactly 'ros__parameters:' (got {list(body or {})})")
        params = body['ros__parameters']
        assert isinstance(params, dict) and params, f'{rel}: {node}.ros__parameters is empty'
        out[str(node)] = _flatten(params, f'{rel}: {node}.')
    return out


def _flatten(tree: dict, where: str, prefix: str = '') -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        assert isinstance(key, str) and key, f'{where}{prefix}{key!r}: names are strings'
        if isinstance(value, dict):  # the dotted-name convention rcl reads
            flat.update(_flatten(value, where, f'{prefix}{key}.'))
        else:
            flat[prefix + key] = value
    return flat


def test_every_config_file_is_covered():
    assert set(FILES) == set(CONFIG_CLASS) | FOREIGN, (
        'a params file under config/ that this test does not know: add it to CONFIG_CLASS '
        '(with the dataclass it configures) or FOREIGN')


@pytest.mark.parametrize('rel', FILES)
def test_structure_and_values_are_what_ros_accepts(rel):
    for node, params in sections(rel).items():
        for key, value in params.items():
            ros_type_of_value(value, f'{rel}: {node}.{key}')


@pytest.mark.parametrize('rel', sorted(CONFIG_CLASS))
def test_types_match_the_declared_parameters(rel):
    cls = CONFIG_CLASS[rel]
    declared = {k: ros_type_of_field(t) for k, t in field_types(cls).items()}
    params = read_params_file(CONFIG / rel)
    check_known_params(cls, params, str(CONFIG / rel))  # a typo is an error naming the key
    wrong = {k: (ros_type_of_value(v, k), declared[k]) for k, v in params.items()
             if ros_type_of_value(v, k) != declared[k]}
    assert not wrong, (f'{rel}: parameters whose file type is not the declared type '
                       f'(file, declared): {wrong}; rclpy would reject them')


# --- the same files through ROS's own parser --------------------------------------------------

_RCL_TYPE = {1: 'bool', 2: 'integer', 3: 'double', 4: 'string', 6: 'bool_array',
             7: 'integer_array', 8: 'double_array', 9: 'string_array'}


@pytest.fixture(scope='module')
def rcl():
    rclpy = pytest.importorskip('rclpy', reason='rclpy does not import here (pip install -e '
                                '.[ros]); the PyYAML checks above still ran')
    from rclpy.context import Context
    context = Context()
    rclpy.init(args=[], context=context)
    yield rclpy, context
    rclpy.shutdown(context=context)


@pytest.mark.parametrize('rel', FILES)
def test_ros_reads_each_file_with_the_same_names_and_types(rcl, rel):
    rclpy, context = rcl
    from rclpy.node import Node
    for section, params in sections(rel).items():
        name = 'vidplan_params_check' if section in ('/**', '**') else section.lstrip('/')
        node = Node(name, context=context, use_global_arguments=False,
                    cli_args=['--ros-args', '--params-file', str(CONFIG / rel)])
        try:
            got = {k: _RCL_TYPE.get(p.type_.value, p.type_.name)
                   for k, p in node._parameter_overrides.items()}
        finally:
            node.destroy_node()
        want = {k: ros_type_of_value(v, k) for k, v in params.items()}
        differ = {k: (got.get(k), want.get(k)) for k in set(got) | set(want)
                  if got.get(k) != want.get(k)}
        assert not differ, (f'{rel}: {section}: rcl reads these otherwise than PyYAML '
                            f'(rcl, PyYAML): {differ}; quote strings, write doubles with a '
                            'decimal point')


@pytest.mark.parametrize('value', [[], [1, 2.0], [{'a': 1}], [[1.0]], None, {1, 2}])
def test_the_value_rules_reject_what_ros_cannot_carry(value):
    with pytest.raises(AssertionError):
        ros_type_of_value(value, 'x')


def test_rcl_and_pyyaml_disagree_where_this_test_says(rcl, tmp_path):
    """The reason for the rcl comparison: the same text, two readings."""
    rclpy, context = rcl
    from rclpy.node import Node
    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    name: y\n    eps: 1e-3\n    n: 1\n')
    node = Node('vidplan_params_check', context=context, use_global_arguments=False,
                cli_args=['--ros-args', '--params-file', str(path)])
    try:
        got = {k: _RCL_TYPE[p.type_.value] for k, p in node._parameter_overrides.items()}
    finally:
        node.destroy_node()
    assert got == {'name': 'bool', 'eps': 'double', 'n': 'integer'}
    assert yaml.safe_load(path.read_text())['/**']['ros__parameters'] == {
        'name': 'y', 'eps': '1e-3', 'n': 1}                       # PyYAML: two strings


def test_our_reader_and_writer_treat_an_empty_list_as_ros_does(tmp_path):
    """`[]` reads as unset (the default) without ROS too, and is never written."""
    from dataclasses import dataclass

    from vidplan_ros.core.config import dump_params_yaml, load_config
    from vidplan_ros.core.errors import ConfigError

    @dataclass(frozen=True)
    class Demo:
        cameras: tuple[str, ...] = ()
        gains: tuple[float, ...] = (1.0,)

    path = tmp_path / 'p.yaml'
    path.write_text('/**:\n  ros__parameters:\n    cameras: []\n    gains: []\n')
    assert read_params_file(path) == {}
    assert load_config(Demo, path) == Demo()
    text = dump_params_yaml(Demo())
    assert '[]' not in text and load_config(Demo, _write(tmp_path, text)) == Demo()
    with pytest.raises(ConfigError, match='cannot carry an empty list'):
        dump_params_yaml(Demo(gains=()))


def _write(tmp_path, text):
    path = tmp_path / 'dumped.yaml'
    path.write_text(text)
    return path
