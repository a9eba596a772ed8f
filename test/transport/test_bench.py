"""The transport benchmark runs end to end (two processes over DDS) and reports every case.

Structure only: no timing assertions (the machine is shared).
"""

import math

import pytest

from vidplan_ros.transport import bench

EXPECTED_TYPES = {
    'joint_state': 'sensor_msgs/msg/JointState',
    'joint_trajectory': 'trajectory_msgs/msg/JointTrajectory',
    'lowcmd': 'unitree_hg/msg/LowCmd',
    'lowstate': 'unitree_hg/msg/LowState',
    'image_32x24': 'sensor_msgs/msg/Image',
}


def test_tiny_run_reports_every_case(capsys):
    result = bench.run_transport_bench(duration_s=0.3, sizes=[(32, 24)])
    assert set(result['results']) == set(EXPECTED_TYPES)
    for key, r in result['results'].items():
        assert r['ros_type'] == EXPECTED_TYPES[key]
        assert r['sent'] > 0 and 0 < r['received'] <= r['sent'], key
        assert r['lost'] == r['sent'] - r['received']
        lat = r['latency_us']
        assert set(lat) == {'p50', 'p90', 'p99', 'max', 'mean'}
        for name, value in lat.items():
            assert math.isfinite(value) and value > 0, (key, name, value)
        assert lat['p50'] <= lat['p90'] <= lat['p99'] <= lat['max']
        for name in ('serialize_us', 'deserialize_us'):
            assert math.isfinite(r[name]) and r[name] > 0, (key, name)
        assert r['cdr_bytes'] > 4
    assert result['results']['image_32x24']['cdr_bytes'] > 32 * 24 * 3
    assert result['results']['lowcmd']['cdr_bytes'] == 1004
    assert result['results']['lowstate']['cdr_bytes'] == 2092
    assert result['machine']['cpu_count'] >= 1 and result['machine']['cyclonedds']
    table = bench.format_markdown(result)
    assert all(r['label'] in table for r in result['results'].values())
    assert table.count('\n') == 2 + len(EXPECTED_TYPES)


def test_default_cases_and_cli_parsing():
    keys = [c.key for c in bench.make_cases()]
    assert keys == ['joint_state', 'joint_trajectory', 'lowcmd', 'lowstate', 'image_96x96',
                    'image_640x480']
    rates = {c.key: c.rate_hz for c in bench.make_cases()}
    assert rates['joint_state'] == 1000 and rates['lowcmd'] == rates['lowstate'] == 500
    assert rates['image_640x480'] == 30
    assert bench.parse_sizes('96x96, 640X480') == [(96, 96), (640, 480)]
    with pytest.raises(ValueError, match='WIDTHxHEIGHT'):
        bench.parse_sizes('640')
    with pytest.raises(ValueError, match='unknown bench case'):
        bench.make_cases(keys=['lowcmd', 'twist'])
    args = bench.build_parser().parse_args(['--duration', '2', '--cases', 'lowcmd'])
    assert args.duration == 2.0 and args.cases == 'lowcmd' and args.echo_child is None


def test_main_prints_a_table(capsys):
    assert bench.main(['--duration', '0.2', '--cases', 'lowcmd,lowstate', '--sizes', '']) == 0
    out = capsys.readouterr().out
    assert '| unitree_hg LowCmd | 500 |' in out and '| unitree_hg LowState | 500 |' in out
    assert 'cyclonedds' in out
