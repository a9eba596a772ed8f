"""The ROS-free packages import with rclpy and every ROS message package blocked."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROS_FREE = ('core', 'nn', 'runtime', 'eval', 'sim', 'data')

CHILD = textwrap.dedent("""
    import importlib, importlib.abc, pkgutil, sys

    BLOCKED_PREFIXES = ('rclpy', 'launch', 'launch_ros', 'launch_testing', 'ament_index_python',
                        'rosidl_runtime_py', 'rosbag2_py', 'message_filters', 'cv_bridge')

    def blocked(name):
        top = name.split('.')[0]
        return top in BLOCKED_PREFIXES or top.endswith('_msgs') or top in (
            'builtin_interfaces', 'unitree_hg', 'unitree_go')

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                raise ImportError(f'{name} is blocked: ROS-free code must not import it')
            return None

    sys.meta_path.insert(0, Block())
    import vidplan_ros, vidplan_ros.transport
    assert not [m for m in sys.modules if blocked(m)]
    count = 0
    for sub in PACKAGES:
        pkg = importlib.import_module(f'vidplan_ros.{sub}')
        count += 1
        for info in pkgutil.walk_packages(pkg.__path__, f'vidplan_ros.{sub}.'):
            importlib.import_module(info.name)
            count += 1
    leaked = [m for m in sys.modules if blocked(m)]
    assert not leaked, leaked
    print('imported', count)
""")


def test_ros_free_packages_import_without_ros():
    code = f'PACKAGES = {ROS_FREE!r}\n' + CHILD
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_modules = sum(1 for sub in ROS_FREE for _ in (REPO / 'vidplan_ros' / sub).rglob('*.py'))
    assert f'imported {n_modules}' in proc.stdout, proc.stdout


def test_import_vidplan_ros_without_ros():
    proc = subprocess.run([sys.executable, '-c', 'import vidplan_ros, sys; '
                           'print(vidplan_ros.__version__, "rclpy" in sys.modules)'],
                          cwd='/', capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['0.1.0', 'False']
