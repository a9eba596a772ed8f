"""An FR3 in Gazebo (gz_ros2_control), driven by the four vidplan nodes on sim time.

    ros2 launch vidplan_ros gazebo_franka.launch.py model:=franka_reach \\
        gz_args:='my_world_with_cameras.sdf -r'

Flow (shared/reference/robots.md §3.1, the gz_ros2_control demos): Gazebo via ros_gz_sim's
gz_sim.launch.py; robot_state_publisher with franka_description's xacro (gazebo:=true,
ros2_control:=true: the gz_ros2_control/GazeboSimSystem plugin, position + velocity command
interfaces); `ros_gz_sim create` spawns it from /robot_description; once it has, the spawners
start joint_state_broadcaster and `arm_controller` (a position JointTrajectoryController from
config/gazebo_franka_controllers.yaml). ros_gz_bridge carries /clock and the camera images
(Gazebo Harmonic `gz.msgs`; Fortress: gz_msgs:=ignition.msgs). The world must hold the camera
sensors: their Gazebo topics are the *_camera_gz_topic arguments, bridged to
/cameras/<cam>/image_raw. Every node runs with use_sim_time.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import Node

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vidplan_launch_common import (COMMON_ARGUMENTS, PACKAGE, as_bool, declare,  # noqa: E402
                                   model_cameras, pipeline_actions, resolve, share_path)

from vidplan_ros.core.robot_spec import load_robot_spec  # noqa: E402

ARGUMENTS = {
    'robot_type': ('fr3', 'franka_description robot: fr3 (joints fr3_joint1..7)'),
    'load_gripper': ('false', 'add the Franka Hand to the description'),
    'gz_args': ('empty.sdf -r', 'Gazebo arguments: the world (with the camera sensors) and -r '
                'to run'),
    'gz_msgs': ('gz.msgs', 'Gazebo message namespace: gz.msgs (Harmonic) or ignition.msgs '
                '(Fortress)'),
    'arm_controller': ('fr3_arm_controller', 'JointTrajectoryController spawned and driven'),
    'front_camera_gz_topic': ('/front_camera/image', 'Gazebo topic of the front view camera'),
    'wrist_camera_gz_topic': ('/wrist_camera/image', 'Gazebo topic of the wrist view camera'),
}


def generate_launch_description():
    return LaunchDescription([*declare(COMMON_ARGUMENTS, ARGUMENTS),
                              OpaqueFunction(function=launch_setup)])


def robot_description(robot_type: str, load_gripper: bool) -> str:
    import xacro
    path = share_path('franka_description', 'robots', robot_type,
                      f'{robot_type}.urdf.xacro')
    return xacro.process_file(path, mappings={
        'hand': str(load_gripper).lower(), 'ros2_control': 'true', 'gazebo': 'true',
        'gazebo_effort': 'false'}).toprettyxml(indent='  ')


def launch_setup(context, *args, **kwargs):
    a = resolve(context, COMMON_ARGUMENTS, ARGUMENTS)
    sim_time = {'use_sim_time': True}
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(share_path('ros_gz_sim', 'launch', 'gz_sim.launch.py')),
        launch_arguments={'gz_args': a['gz_args']}.items())
    state_publisher = Node(
        package='robot_state_publisher', executable='robot_state_publisher', output='screen',
        parameters=[{'robot_description': robot_description(
            a['robot_type'], as_bool(a['load_gripper'])), **sim_time}])
    spawn = Node(package='ros_gz_sim', executable='create', output='screen',
                 arguments=['-topic', '/robot_description', '-name', a['robot_type'],
                            '-allow_renaming', 'true'])
    controllers = [
        Node(package='controller_manager', executable='spawner', output='screen',
             arguments=['joint_state_broadcaster', '--controller-manager',
                        '/controller_manager']),
        Node(package='controller_manager', executable='spawner', output='screen',
             arguments=[a['arm_controller'], '--controller-manager', '/controller_manager',
                        '--param-file', share_path(PACKAGE, 'config',
                                                   'gazebo_franka_controllers.yaml'),
                        '--controller-type',
                        'joint_trajectory_controller/JointTrajectoryController']),
    ]
    msgs = a['gz_msgs']
    gz_cameras = {'front': a['front_camera_gz_topic'], 'wrist': a['wrist_camera_gz_topic']}
    bridged = [cam for cam in model_cameras(a['model']) if cam in gz_cameras]
    bridge = Node(
        package='ros_gz_bridge', executable='parameter_bridge', output='screen',
        arguments=[f'/clock@rosgraph_msgs/msg/Clock[{msgs}.Clock'] + [
            f'{gz_cameras[cam]}@sensor_msgs/msg/Image[{msgs}.Image' for cam in bridged],
        remappings=[(gz_cameras[cam], f'/cameras/{cam}/image_raw') for cam in bridged],
        parameters=[sim_time])
    spec = load_robot_spec('franka_fr3')
    command = [(spec.interfaces.joint_trajectory_topic,
                f"/{a['arm_controller'].strip('/')}/joint_trajectory")]
    return [gazebo, state_publisher, spawn, bridge,
            RegisterEventHandler(OnProcessExit(target_action=spawn, on_exit=controllers)),
            *pipeline_actions(a, use_sim_time=True, robot='franka_fr3',
                              executor_remaps=command)]
