"""The params-YAML loader: flattening, node sections, coercion and clear errors."""

from dataclasses import dataclass, field

import pytest

from vidplan_ros.core.config import (config_to_params, dump_params_yaml, load_config,
                                     read_params_file, require_positive)
from vidplan_ros.core.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    margin_rad: float = 0.1

    def __post_init__(self):
        require_positive(self, 'margin_rad')


@dataclass(frozen=True)
class Demo:
    rate_hz: float = 10.0
    name: str = 'x'
    enabled: bool = True
    count: int = 3
    gains: tuple[float, ...] = (1.0, 2.0)
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self):
        require_positive(self, 'rate_hz', 'gains')


def write(tmp_path, text):
    path = tmp_path / 'params.yaml'
    path.write_text(text)
    return path


def test_wildcard_then_node_section_and_nesting(tmp_path):
    path = write(tmp_path, """
/**:
  ros__parameters:
    rate_hz: 5
    inner: {margin_rad: 0.2}
executor:
  ros__parameters:
    rate_hz: 50.0
    gains: [3, 4.5]
other:
  ros__parameters:
    rate_hz: 1.0
""")
    assert read_params_file(path, 'executor') == {'rate_hz': 50.0, 'inner.margin_rad': 0.2,
                                                  'gains': [3, 4.5]}
    cfg = load_config(Demo, path, node_name='executor')
    assert cfg == Demo(rate_hz=50.0, gains=(3.0, 4.5), inner=Inner(0.2))
    assert isinstance(cfg.gains[0], float)
    assert load_config(Demo, path, node_name='/planner').rate_hz == 5.0  # wildcard only


def test_bad_value_error_names_file_key_value_and_allowed(tmp_path):
    path = write(tmp_path, '/**:\n  ros__parameters:\n    inner:\n      margin_rad: -0.5\n')
    with pytest.raises(ConfigError) as err:
        load_config(Demo, path)
    msg = str(err.value)
    print(msg)
    assert str(path) in msg and "'inner.margin_rad'" in msg and '-0.5' in msg
    assert '> 0' in msg and 'Fix the value' in msg


@pytest.mark.parametrize('text, key, allowed', [
    ('rate_hz: fast', 'rate_hz', 'a number'),
    ('rate_hz: .nan', 'rate_hz', 'a finite number'),
    ('count: 2.5', 'count', 'an integer'),
    ('enabled: 1', 'enabled', 'true or false'),
    ('gains: 3.0', 'gains', 'a list of float'),
    ('gains: [1.0, -2.0]', 'gains', '> 0'),
    ('rate_hx: 3.0', 'rate_hx', 'no such parameter'),
])
def test_type_and_typo_errors(tmp_path, text, key, allowed):
    path = write(tmp_path, f'/**:\n  ros__parameters:\n    {text}\n')
    with pytest.raises(ConfigError) as err:
        load_config(Demo, path)
    assert err.value.key == key and allowed in str(err.value)


def test_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        load_config(Demo, tmp_path / 'missing.yaml')
    with pytest.raises(ConfigError, match='valid YAML'):
        load_config(Demo, write(tmp_path, '/**: [unclosed'))
    with pytest.raises(ConfigError, match='ros__parameters'):
        load_config(Demo, write(tmp_path, 'rate_hz: 3\n'))


def test_overrides_and_dump_round_trip(tmp_path):
    cfg = load_config(Demo, None, overrides={'count': 7, 'inner.margin_rad': 0.3})
    assert cfg.count == 7 and cfg.inner.margin_rad == 0.3
    assert config_to_params(cfg)['gains'] == [1.0, 2.0]
    again = load_config(Demo, write(tmp_path, dump_params_yaml(cfg, 'executor')), 'executor')
    assert again == cfg
