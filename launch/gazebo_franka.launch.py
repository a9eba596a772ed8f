"""An FR3 in Gazebo (gz_ros2_control), driven by the four vidplan nodes on sim time.

    ros2 launch vidplan_ros gazebo_franka.launch.py model:=franka_reach \\
        gz_args:='my_world_with_cameras.sdf -r'

Flow (shared/reference/robots.md §3.1, the gz_ros2_control demos and franka_gazebo_bringup's
gazebo_franka_arm_example_controller.launch.py): Gazebo via ros_gz_sim's gz_sim.launch.py;
robot_state_publisher with the Franka Gazebo description; `ros_gz_sim create` spawns it from
/robot_description; once it has, the spawners start joint_state_broadcaster and `arm_controller`
(a position JointTrajectoryController from config/gazebo_franka_controllers.yaml, whose `type:`
names the class). ros_gz_bridge carries /clock and the camera images. The world must hold the
camera sensors: their Gazebo topics are the *_camera_gz_topic arguments, bridged to
/cameras/<cam>/image_raw for the model's cameras (the bundled franka sets: top, a fixed camera
above the workspace looking down, with the hand's wrist camera for franka_reach and front, beside
the table, for franka_push). Every node runs with use_sim_time.

The description (`description`), as the upstream packages emit it:
  franka_gazebo_bringup  franka_ros2's franka_gazebo_bringup/urdf/franka_arm.gazebo.xacro (checked
                         at franka_ros2 3.5.3, Jazzy, Gazebo Harmonic): with gazebo_effort:=false
                         it emits gz_ros2_control/GazeboSimSystem (position + velocity command
                         interfaces) and gz_ros2_control-system loading franka_gazebo_bringup's
                         config/franka_gazebo_controllers.yaml. Needs franka_gazebo_bringup,
                         franka_hardware, franka_description, gz_ros2_control, ros_gz.
  franka_description     franka_description's robots/fr3/fr3.urdf.xacro with gazebo:=true,
                         ros2_control:=true (checked at franka_description 0.4.0): it emits
                         franka_ign_ros2_control/IgnitionSystem and the
                         franka_ign_ros2_control-system plugin, i.e. franka_ros2's Humble
                         Gazebo Fortress stack (franka_gazebo's franka_ign_ros2_control plus
                         franka_gazebo_bringup for the controllers file); Fortress bridges
                         ignition.msgs.
Either way the controller manager is configured by franka_gazebo_controllers.yaml (no JTC
there), and the JTC comes from this package's file through the spawner.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import (IncludeLaunchDescription, OpaqueFunction, RegisterEventHandler,
                            SetEnvironmentVariable)
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
    'description': ('franka_gazebo_bringup', 'Gazebo description: franka_gazebo_bringup '
                    '(franka_ros2 >= 3.5, Harmonic, gz_ros2_control) or franka_description '
                    '(fr3.urdf.xacro gazebo:=true: franka_ign_ros2_control, Fortress)'),
    'gz_args': ('empty.sdf -r', 'Gazebo arguments: the world (with the camera sensors) and -r '
                'to run'),
    'gz_msgs': ('', "Gazebo message namespace: gz.msgs (Harmonic) or ignition.msgs (Fortress); "
                "'' = the description's (gz.msgs for franka_gazebo_bringup, ignition.msgs for "
                'franka_description)'),
    'arm_controller': ('fr3_arm_controller', 'JointTrajectoryController spawned and driven'),
    'top_camera_gz_topic': ('/top_camera/image', 'Gazebo topic of the top view camera (above '
                            'the workspace, looking down)'),
    'front_camera_gz_topic': ('/front_camera/image', 'Gazebo topic of the front view camera'),
    'wrist_camera_gz_topic': ('/wrist_camera/image', 'Gazebo topic of the wrist view camera'),
}
# description -> (xacro path under its package's share, xacro mappings, Gazebo msgs namespace)
DESCRIPTIONS = {
    'franka_gazebo_bringup': (('urdf', 'franka_arm.gazebo.xacro'),
                              {'gazebo_effort': 'false'}, 'gz.msgs'),
    'franka_description': (('robots', '{robot_type}', '{robot_type}.urdf.xacro'),
                           {'ros2_control': 'true', 'gazebo': 'true', 'gazebo_effort': 'false'},
                           'ignition.msgs'),
}


def generate_launch_description():
    return LaunchDescription([*declare(COMMON_ARGUMENTS, ARGUMENTS),
                              OpaqueFunction(function=launch_setup)])


def robot_description(description: str, robot_type: str, load_gripper: bool) -> str:
    import xacro
    parts, mappings, _ = DESCRIPTIONS[description]
    path = share_path(description, *(p.format(robot_type=robot_type) for p in parts))
    return xacro.process_file(path, mappings={
        'robot_type': robot_type, 'hand': str(load_gripper).lower(), **mappings,
    }).toprettyxml(indent='  ')


def launch_setup(context, *args, **kwargs):
    a = resolve(context, COMMON_ARGUMENTS, ARGUMENTS)
    if a['description'] not in DESCRIPTIONS:
        raise ValueError(f"description:={a['description']}: use one of {list(DESCRIPTIONS)}")
    sim_time = {'use_sim_time': True}
    # Gazebo resolves the meshes' package:// URIs from its resource path (as
    # gazebo_franka_arm_example_controller.launch.py sets it); Fortress reads the IGN_ name.
    meshes = os.path.dirname(share_path('franka_description'))
    resources = [SetEnvironmentVariable(name, meshes) for name in
                 ('GZ_SIM_RESOURCE_PATH', 'IGN_GAZEBO_RESOURCE_PATH')]
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(share_path('ros_gz_sim', 'launch', 'gz_sim.launch.py')),
        launch_arguments={'gz_args': a['gz_args']}.items())
    state_publisher = Node(
        package='robot_state_publisher', executable='robot_state_publisher', output='screen',
        parameters=[{'robot_description': robot_description(
            a['description'], a['robot_type'], as_bool(a['load_gripper'])), **sim_time}])
    spawn = Node(package='ros_gz_sim', executable='create', output='screen',
                 arguments=['-topic', '/robot_description', '-name', a['robot_type'],
                            '-allow_renaming', 'true'])
    controllers = [
        Node(package='controller_manager', executable='spawner', output='screen',
             arguments=['joint_state_broadcaster', '--controller-manager',
                        '/controller_manager']),
        # the controller type is the file's `type:` (no --controller-type since ros2_control
        # 4.15.0, controller_manager/controller_manager/spawner.py)
        Node(package='controller_manager', executable='spawner', output='screen',
             arguments=[a['arm_controller'], '--controller-manager', '/controller_manager',
                        '--param-file', share_path(PACKAGE, 'config',
                                                   'gazebo_franka_controllers.yaml')]),
    ]
    msgs = a['gz_msgs'] or DESCRIPTIONS[a['description']][2]
    gz_cameras = {'top': a['top_camera_gz_topic'], 'front': a['front_camera_gz_topic'],
                  'wrist': a['wrist_camera_gz_topic']}
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
    return [*resources, gazebo, state_publisher, spawn, bridge,
            RegisterEventHandler(OnProcessExit(target_action=spawn, on_exit=controllers)),
            *pipeline_actions(a, use_sim_time=True, robot='franka_fr3',
                              executor_remaps=command)]
