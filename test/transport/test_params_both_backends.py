"""Both backends read a node's parameters by the same rules (issue 11, defect 10): the same
params file gives the same config, a typo is the same error naming the key and the allowed
keys, ROS-level parameters (use_sim_time, start_type_description_service, qos_overrides.*) are
allowed for every node, and an empty list means the default (what ROS 2 does with one)."""

import importlib.util
import textwrap
from dataclasses import dataclass

import pytest

from vidplan_ros.core.errors import ConfigError
from vidplan_ros.transport import create_node

BACKENDS = ['dds', pytest.param('rclpy', marks=pytest.mark.skipif(
    importlib.util.find_spec('rclpy') is None,
    reason='rclpy does not import here: pip install -e .[ros]'))]


@dataclass(frozen=True)
class Limits:
    margin_rad: float = 0.1


@dataclass(frozen=True)
class Cfg:
    rate_hz: float = 10.0
    cameras: tuple[str, ...] = ()
    gains: tuple[float, ...] = (1.0, 2.0)
    limits: Limits = Limits()


def _load(backend, tmp_path, text):
    path = tmp_path / 'params.yaml'
    path.write_text(textwrap.dedent(text))
    node = create_node('vidplan_params_node', ['prog', '--ros-args', '--params-file', str(path)],
                       backend=backend)
    try:
        return node.load_config(Cfg)
    finally:
        node.shutdown()


@pytest.mark.parametrize('backend', BACKENDS)
def test_the_same_file_gives_the_same_config(backend, tmp_path):
    cfg = _load(backend, tmp_path, """
        /**:
          ros__parameters:
            use_sim_time: false
            start_type_description_service: true
            qos_overrides./clock.subscription.depth: 1
            rate_hz: 20.0
            cameras: []
            gains: [3.0, 4.0]
            limits:
              margin_rad: 0.2
        vidplan_params_node:
          ros__parameters:
            rate_hz: 30.0
        other_node:
          ros__parameters:
            not_mine: 1
        """)
    assert cfg == Cfg(rate_hz=30.0, cameras=(), gains=(3.0, 4.0), limits=Limits(0.2))


TYPOS = {'rate_hx': 'rate_hx: 1.0', 'limits.margn_rad': 'limits:\n        margn_rad: 1.0'}


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('key', sorted(TYPOS))
def test_a_typo_is_the_same_error_on_both(backend, key, tmp_path):
    with pytest.raises(ConfigError) as err:
        _load(backend, tmp_path, '/**:\n  ros__parameters:\n    ' + TYPOS[key] + '\n')
    assert err.value.key == key
    assert "allowed parameters: ['cameras', 'gains', 'limits.margin_rad', 'rate_hz']" in str(
        err.value)
