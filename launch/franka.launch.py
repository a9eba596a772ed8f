"""A real Franka (FR3 or Panda) under franka_ros2, driven by the four vidplan nodes.

    ros2 launch vidplan_ros franka.launch.py model:=franka_push robot_ip:=172.16.0.2 \\
        top_camera_topic:=/top/color/image_raw front_camera_topic:=/front/color/image_raw

The executor streams short JointTrajectory chunks to `<arm_controller>/joint_trajectory` (a
joint_trajectory_controller/JointTrajectoryController) and reads `joint_states_topic`. franka_ros2
can be started here too (`bringup`):
  none     franka_ros2 runs elsewhere (default)
  franka   franka_bringup franka.launch.py (robot_ip, robot_type, load_gripper,
           use_fake_hardware); its controllers.yaml has no trajectory controller, so
           `arm_controller` is spawned from config/franka_arm_controller.yaml (effort JTC,
           the gains of franka_fr3_moveit_config; its `type:` names the controller class, as
           ros2_control >= 4.15 has no `spawner --controller-type`)
  moveit   franka_fr3_moveit_config moveit.launch.py, which spawns fr3_arm_controller itself
           from its own yaml; Jazzy's JTC then rejects trajectories that end moving
           (allow_nonzero_velocity_at_trajectory_end defaults to false there), so this sets
           that parameter on the running controller (it is not read-only)
franka_bringup >= 1.0 selects the arm with `robot_type` (fr3, fp3, fer); `arm_id` is deprecated and
ignored by franka_description's xacros. The old franka_ros2 0.1.x (arm_id, panda_* joints) needs
robot:=franka_panda arm_controller:=panda_arm_controller and bringup:=none.
`command`: topic streams JointTrajectory chunks to <arm_controller>/joint_trajectory; action
sends one control_msgs/FollowJointTrajectory goal per accepted plan to
<arm_controller>/follow_joint_trajectory (result and feedback in /diagnostics; cancelled on
e-stop and on shutdown). The gripper is reached through franka_gripper's actions (~/move,
~/grasp, ~/homing) under the robot spec's gripper node (/franka_gripper).
Camera topics: perception reads /cameras/<cam>/image_raw for the model's cameras (the bundled
franka sets: top, a fixed camera above the workspace looking down, with the hand's wrist camera
for franka_reach and front, beside the table, for franka_push); the *_camera_topic arguments
point them elsewhere (and .../compressed with image_transport:=compressed). A camera the model
does not use is ignored.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import ExecuteProcess, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch_ros.actions import Node

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vidplan_launch_common import (COMMON_ARGUMENTS, PACKAGE, camera_remappings,  # noqa: E402
                                   declare, model_cameras, pipeline_actions, resolve,
                                   share_path)

from vidplan_ros.core.robot_spec import load_robot_spec  # noqa: E402

ARGUMENTS = {
    'robot': ('franka_fr3', "executor's robot spec: franka_fr3 or franka_panda (or a YAML)"),
    'robot_ip': ('172.16.0.2', 'FCI address of the arm (bringup only)'),
    'robot_type': ('fr3', 'franka_ros2 robot_type: fr3, fp3, fer (bringup only)'),
    'arm_controller': ('fr3_arm_controller', 'JointTrajectoryController the executor streams '
                       'to (<arm_controller>/joint_trajectory)'),
    'joint_states_topic': ('/joint_states', 'merged joint states of franka_bringup'),
    'top_camera_topic': ('/cameras/top/image_raw', "image topic of the model's top view "
                         '(above the workspace, looking down)'),
    'front_camera_topic': ('/cameras/front/image_raw', "image topic of the model's front "
                           'view'),
    'wrist_camera_topic': ('/cameras/wrist/image_raw', "image topic of the model's wrist "
                           'view'),
    'image_transport': ('raw', 'raw (sensor_msgs/Image) or compressed (<topic>/compressed)'),
    'command': ('topic', 'topic (stream JointTrajectory chunks) or action (a '
                'FollowJointTrajectory goal per plan)'),
    'bringup': ('none', 'start franka_ros2 too: none, franka or moveit'),
    'load_gripper': ('false', 'bringup: load the Franka Hand'),
    'use_fake_hardware': ('false', 'bringup: mock hardware instead of the robot'),
}


def generate_launch_description():
    return LaunchDescription([*declare(COMMON_ARGUMENTS, ARGUMENTS),
                              OpaqueFunction(function=launch_setup)])


def launch_setup(context, *args, **kwargs):
    a = resolve(context, COMMON_ARGUMENTS, ARGUMENTS)
    if a['bringup'] not in ('none', 'franka', 'moveit'):
        raise ValueError(f"bringup:={a['bringup']}: use none, franka or moveit")
    if a['bringup'] == 'franka' and a['arm_controller'] != 'fr3_arm_controller':
        raise ValueError(f"arm_controller:={a['arm_controller']}: bringup:=franka spawns "
                         'fr3_arm_controller (config/franka_arm_controller.yaml names it)')
    if a['command'] not in COMMANDS:
        raise ValueError(f"command:={a['command']}: use topic or action")
    spec = load_robot_spec(a['robot'])
    joints = [('/joint_states', a['joint_states_topic'])]
    arm = a['arm_controller'].strip('/')
    command = [(spec.interfaces.joint_trajectory_topic, f'/{arm}/joint_trajectory'),
               (spec.interfaces.follow_joint_trajectory_action,
                f'/{arm}/follow_joint_trajectory')]
    cameras = camera_remappings(model_cameras(a['model']), {
        'top': a['top_camera_topic'], 'front': a['front_camera_topic'],
        'wrist': a['wrist_camera_topic']})
    actions = bringup_actions(a)
    actions += pipeline_actions(a, use_sim_time=False, robot=a['robot'],
                                interface=COMMANDS[a['command']],
                                perception_remaps=joints + cameras,
                                executor_remaps=joints + command)
    return actions


# `command` argument -> executor interface (core/robot_spec.py COMMAND_INTERFACES)
COMMANDS = {'topic': 'joint_trajectory', 'action': 'follow_joint_trajectory'}


def allow_moving_end(controller: str) -> ExecuteProcess:
    """Set allow_nonzero_velocity_at_trajectory_end on a JTC someone else spawned, once it is
    up (ros2_controllers jazzy joint_trajectory_controller_parameters.yaml: default false, not
    read_only; the JTC re-reads changed parameters in update())."""
    node = f'/{controller.strip("/")}'
    script = (f'for i in $(seq 60); do ros2 param set {node} '
              'allow_nonzero_velocity_at_trajectory_end true && exit 0; sleep 1; done; '
              f'echo "could not set {node} allow_nonzero_velocity_at_trajectory_end" >&2; exit 1')
    return ExecuteProcess(cmd=['bash', '-c', script], name='allow_moving_trajectory_end',
                          output='screen')


def bringup_actions(a):
    if a['bringup'] == 'none':
        return []
    hardware = {'robot_ip': a['robot_ip'], 'load_gripper': a['load_gripper'],
                'use_fake_hardware': a['use_fake_hardware']}
    if a['bringup'] == 'moveit':
        return [IncludeLaunchDescription(
            PythonLaunchDescriptionSource(share_path('franka_fr3_moveit_config', 'launch',
                                                     'moveit.launch.py')),
            launch_arguments=hardware.items()),
            allow_moving_end(a['arm_controller'])]
    return [
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(share_path('franka_bringup', 'launch',
                                                     'franka.launch.py')),
            launch_arguments={**hardware, 'robot_type': a['robot_type']}.items()),
        Node(package='controller_manager', executable='spawner', output='screen',
             arguments=[a['arm_controller'], '--controller-manager', '/controller_manager',
                        '--param-file', share_path(PACKAGE, 'config',
                                                   'franka_arm_controller.yaml')]),
    ]
