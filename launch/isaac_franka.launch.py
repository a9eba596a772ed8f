"""A Franka in Isaac Sim (its ROS 2 bridge), driven by the four vidplan nodes on sim time.

    ros2 launch vidplan_ros isaac_franka.launch.py model:=franka_reach \\
        top_camera_topic:=/top/rgb front_camera_topic:=/rgb

Isaac Sim's joint-control graph (shared/reference/robots.md §3.2): ROS2 Publish Joint State ->
/joint_states, ROS2 Subscribe Joint State <- /joint_command (sensor_msgs/JointState: names +
positions + velocities) -> Articulation Controller, ROS2 Publish Clock -> /clock, camera helpers
publishing rgb images. The executor uses its joint_state_command interface on
`joint_command_topic`; every node runs with use_sim_time. Isaac's Franka asset uses panda_*
joint names, hence robot:=franka_panda for the executor, which commands panda_* joints. The
model sets are FR3's: perception reads Isaac's panda_* joint states by franka_fr3's
joint_aliases, and the executor takes the fr3_* plans of grounding by franka_panda's
joint_aliases (config/robots/*.yaml; joints are always matched by name).
Camera topics: perception reads /cameras/<cam>/image_raw for the model's cameras (the bundled
franka sets: top, a fixed camera above the workspace looking down, with the hand's wrist camera
for franka_reach and front, beside the table, for franka_push); the *_camera_topic arguments
name the Isaac camera helpers' topics instead. A camera the model does not use is ignored.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import OpaqueFunction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vidplan_launch_common import (COMMON_ARGUMENTS, camera_remappings, declare,  # noqa: E402
                                   model_cameras, pipeline_actions, resolve)

from vidplan_ros.core.robot_spec import load_robot_spec  # noqa: E402

ARGUMENTS = {
    'robot': ('franka_panda', "executor's robot spec: franka_panda (Isaac's panda_* joints) "
              'or franka_fr3'),
    'joint_command_topic': ('/joint_command', 'JointState command topic of the Isaac graph'),
    'joint_states_topic': ('/joint_states', 'JointState topic Isaac publishes'),
    'top_camera_topic': ('/cameras/top/image_raw', "Isaac camera topic of the model's top view "
                         '(above the workspace, looking down)'),
    'front_camera_topic': ('/rgb', "Isaac camera topic of the model's front view"),
    'wrist_camera_topic': ('/wrist/rgb', "Isaac camera topic of the model's wrist view"),
    'image_transport': ('raw', 'raw (sensor_msgs/Image) or compressed (<topic>/compressed)'),
}


def generate_launch_description():
    return LaunchDescription([*declare(COMMON_ARGUMENTS, ARGUMENTS),
                              OpaqueFunction(function=launch_setup)])


def launch_setup(context, *args, **kwargs):
    a = resolve(context, COMMON_ARGUMENTS, ARGUMENTS)
    spec = load_robot_spec(a['robot'])
    joints = [('/joint_states', a['joint_states_topic'])]
    command = [(spec.interfaces.joint_command_topic, a['joint_command_topic'])]
    cameras = camera_remappings(model_cameras(a['model']), {
        'top': a['top_camera_topic'], 'front': a['front_camera_topic'],
        'wrist': a['wrist_camera_topic']})
    return pipeline_actions(a, use_sim_time=True, robot=a['robot'],
                            interface='joint_state_command',
                            perception_remaps=joints + cameras,
                            executor_remaps=joints + command)
