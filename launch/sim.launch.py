"""The embedded-MuJoCo demo on a ROS 2 host: the sim node + the four vidplan nodes.

    ros2 launch vidplan_ros sim.launch.py robot:=franka_fr3 task:=franka/push model:=franka_push

The sim node speaks the robot's own interfaces (franka_ros2 JTC topic + /joint_states, or G1
LowCmd/LowState) and publishes /clock; every vidplan node runs on sim time. The launch ends
when the sim has run `episodes` episodes (0 = forever) or any node exits. Without ROS the same
graph (plus a video-writing monitor) is `vidplan launch sim --robot franka --task push`.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import OpaqueFunction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vidplan_launch_common import (COMMON_ARGUMENTS, declare, node_action,  # noqa: E402
                                   pipeline_actions, resolve)

from vidplan_ros.bringup.graph import model_info, sim_node  # noqa: E402

ARGUMENTS = {
    'robot': ('', "robot spec of the sim ('' = the model set's robot: franka_fr3, unitree_g1)"),
    'task': ('', "sim task: franka/reach, franka/push, g1/reach ('' = the model set's task)"),
    'episodes': ('0', 'episodes to run, then the launch ends (0 = forever)'),
    'seed': ('0', 'seed of the first episode; episode k uses seed + k'),
    'episode_time_s': ('0', 'max sim seconds per episode (0 = the sim node default, 20 s)'),
}


def generate_launch_description():
    return LaunchDescription([*declare(COMMON_ARGUMENTS, ARGUMENTS),
                              OpaqueFunction(function=launch_setup)])


def launch_setup(context, *args, **kwargs):
    a = resolve(context, COMMON_ARGUMENTS, ARGUMENTS)
    info = model_info(a['model'])
    robot = a['robot'] or info.robot
    sim = sim_node(robot, a['task'] or info.task, int(a['episodes']), int(a['seed']),
                   info.cameras, float(a['episode_time_s']), image_size=info.image_size)
    return [node_action(sim), *pipeline_actions(a, use_sim_time=True, robot=robot)]
