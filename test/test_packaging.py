"""package.xml, setup.py data files and console scripts, the CLI, and CI = README command."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
XSD = REPO / 'test' / 'resources' / 'rep149' / 'package_format3.xsd'


def test_package_xml_validates_against_format3_schema():
    xmllint = shutil.which('xmllint')
    assert xmllint, 'xmllint missing: run scripts/setup.sh (installs Debian libxml2-utils)'
    proc = subprocess.run([xmllint, '--noout', '--schema', str(XSD), str(REPO / 'package.xml')],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_package_xml_is_ament_python_with_the_ros_dependencies():
    from catkin_pkg.package import parse_package
    pkg = parse_package(str(REPO / 'package.xml'))
    assert pkg.package_format == 3 and pkg.name == 'vidplan_ros'
    assert [e.content for e in pkg.exports if e.tagname == 'build_type'] == ['ament_python']
    run = {d.name for d in pkg.exec_depends}
    assert {'rclpy', 'sensor_msgs', 'trajectory_msgs', 'control_msgs', 'std_msgs',
            'diagnostic_msgs', 'builtin_interfaces', 'rosgraph_msgs', 'launch',
            'launch_ros'} <= run
    test = {d.name for d in pkg.test_depends}
    assert {'launch_testing', 'launch_testing_ros', 'ament_flake8', 'ament_pep257',
            'ament_xmllint'} <= test
    version = re.search(r"version='([^']+)'", (REPO / 'setup.py').read_text()).group(1)
    assert pkg.version == version


@pytest.mark.slow
def test_wheel_installs_data_into_share_and_console_scripts(tmp_path):
    """What `colcon build` / `pip install .` put into share/vidplan_ros."""
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                           '--no-build-isolation', '-q', '-w', str(tmp_path), str(REPO)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob('vidplan_ros-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    data = [n.split('.data/data/', 1)[1] for n in names if '.data/data/' in n]
    assert 'share/ament_index/resource_index/packages/vidplan_ros' in data
    assert 'share/vidplan_ros/package.xml' in data
    for robot in ('franka_fr3', 'franka_panda', 'unitree_g1'):
        assert f'share/vidplan_ros/config/robots/{robot}.yaml' in data
    entry = next(n for n in names if n.endswith('entry_points.txt'))
    assert 'vidplan = vidplan_ros.cli:main' in zipfile.ZipFile(wheel).read(entry).decode()
    assert not [n for n in names if n.startswith('test/')]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / 'README.md').read_text()
    ci = (REPO / '.ci' / 'run').read_text()
    command = re.search(r'<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```', readme,
                        re.S).group(1).strip()
    assert command in ci.splitlines(), (command, ci)


def test_cli_lists_and_validates_robots(tmp_path):
    vidplan = [sys.executable, '-m', 'vidplan_ros.cli']
    out = subprocess.run(vidplan + ['robots'], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and 'franka_fr3' in out.stdout and 'unitree_g1' in out.stdout
    bad = tmp_path / 'bad.yaml'
    bad.write_text('/**:\n  ros__parameters:\n    name: x\n    joint_names: [a]\n'
                   '    position_min_rad: [1.0]\n    position_max_rad: [0.0]\n')
    out = subprocess.run(vidplan + ['robots', str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and 'bad.yaml' in out.stderr and 'Traceback' not in out.stderr


def test_cli_delegates_resolve_to_modules_with_main():
    import importlib

    from vidplan_ros.cli import DELEGATES
    from vidplan_ros.cli_bench import BENCHES
    for module in [m for m, _ in DELEGATES.values()] + list(BENCHES.values()):
        assert callable(importlib.import_module(module).main), module
