"""A Unitree G1 (upper body) over unitree_hg LowCmd/LowState, driven by the four vidplan nodes.

    ros2 launch vidplan_ros g1.launch.py model:=g1_reach lowcmd:=arm_sdk network_interface:=eth0

The executor commands the arms and waist with unitree_hg/LowCmd (CRC, mode_machine echoed from
LowState) on one of two topics (shared/reference/robots.md §2):
  arm_sdk   rt/arm_sdk: upper-body override while the built-in locomotion keeps balancing;
            the weight in motor_cmd[29].q is ramped in (default, the safe choice)
  lowcmd    rt/lowcmd: whole-body low-level control; release the motion service first
            (MotionSwitcher ReleaseMode), or the robot fights it
The G1 speaks DDS natively: this needs unitree_ros2's unitree_hg messages and rmw_cyclonedds_cpp
(set here); `network_interface` pins Cyclone DDS to the robot's NIC, `domain_id` is 0 on the
robot and 1 in Unitree's simulators. Without ROS: `vidplan launch nodes --model g1_reach`.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import OpaqueFunction, SetEnvironmentVariable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vidplan_launch_common import (COMMON_ARGUMENTS, camera_remappings, declare,  # noqa: E402
                                   model_cameras, pipeline_actions, resolve)

ARGUMENTS = {
    'model': ('g1_reach', 'model set of the G1 (g1_reach) or a model set directory'),
    'robot': ('unitree_g1', "executor's robot spec (config/robots/unitree_g1.yaml or a YAML)"),
    'lowcmd': ('arm_sdk', 'LowCmd topic: arm_sdk (rt/arm_sdk, upper body over the built-in '
               'controller) or lowcmd (rt/lowcmd, whole body; motion service released)'),
    'network_interface': ('', "NIC to the robot for Cyclone DDS, e.g. eth0 ('' = keep "
                          'CYCLONEDDS_URI)'),
    'domain_id': ('0', 'DDS domain: 0 on the robot, 1 in the Unitree simulators'),
    'head_camera_topic': ('/cameras/head/image_raw', "image topic of the model's head view"),
    'front_camera_topic': ('/cameras/front/image_raw', "image topic of the model's front "
                           'view'),
    'image_transport': ('raw', 'raw (sensor_msgs/Image) or compressed (<topic>/compressed)'),
}
INTERFACES = {'arm_sdk': 'unitree_arm_sdk', 'lowcmd': 'unitree_lowcmd'}


def generate_launch_description():
    return LaunchDescription([*declare(COMMON_ARGUMENTS, ARGUMENTS),
                              OpaqueFunction(function=launch_setup)])


def launch_setup(context, *args, **kwargs):
    a = resolve(context, COMMON_ARGUMENTS, ARGUMENTS)
    if a['lowcmd'] not in INTERFACES:
        raise ValueError(f"lowcmd:={a['lowcmd']}: use arm_sdk or lowcmd")
    actions = [SetEnvironmentVariable('RMW_IMPLEMENTATION', 'rmw_cyclonedds_cpp'),
               SetEnvironmentVariable('ROS_DOMAIN_ID', str(int(a['domain_id'])))]
    if a['network_interface']:
        actions.append(SetEnvironmentVariable('CYCLONEDDS_URI', (
            '<CycloneDDS><Domain id="any"><General><Interfaces>'
            f'<NetworkInterface name="{a["network_interface"]}"/>'
            '</Interfaces></General></Domain></CycloneDDS>')))
    cameras = camera_remappings(model_cameras(a['model']), {
        'head': a['head_camera_topic'], 'front': a['front_camera_topic']})
    return actions + pipeline_actions(a, use_sim_time=False, robot=a['robot'],
                                      interface=INTERFACES[a['lowcmd']],
                                      perception_remaps=cameras)
